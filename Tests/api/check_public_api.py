"""The Swift module Sam3Neck's public API, as the compiler sees it, against the list checked in
beside this file: the public surface is a promise, so any change to it shows up here and is made
on purpose (run with --update, and review the diff of Sam3Neck.public-api.txt).

    python3 Tests/api/check_public_api.py [--update]      (from the repository root)

Runs `swift package dump-symbol-graph --minimum-access-level public` (a debug build) and checks,
from the symbol graph of Sam3Neck (Sam3Neck.symbols.json, and Sam3Neck@OTHER.symbols.json for
public extensions of other modules' types):

1. The list: each public symbol as "kind path: declaration", and each relationship of a public
   symbol other than memberOf (which the path already says) as
   "relationship.KIND path: target [where constraints]" — conformsTo, inheritsFrom,
   requirementOf, optionalRequirementOf, defaultImplementationOf, overrides. The target is the
   symbol's path when it is Sam3Neck's, else the graph's targetFallback (e.g. Swift.Sendable),
   else its precise id. So dropping a conformance (Sendable, Hashable, CaseIterable, ...) from a
   public type fails the check just as removing a method does; --update writes the list anew.
2. Doc comments: every public symbol declared in Sam3Neck's sources has a doc comment of its own
   (`docComment` from Sam3Neck, not one inherited from a protocol of another module). Symbols the
   compiler makes have no declaration to document and are left out: those of a protocol's
   extension (`::SYNTHESIZED::` in the precise id: `!=`, `hashValue`) and implicit ones, which
   have no source location (a raw-value enum's `init(rawValue:)`).
3. CompileOptions: each public stored property (a field a caller sets) is an option of the C ABI,
   a field of `sam3_neck_compile_params` or `sam3_neck_io_params` in include/sam3_neck.h
   (compared without case and underscores: `levelsMask` is `levels_mask`). Tuning knobs that
   tests and tools set are `package`, so that they are no promise to a Swift user.
"""

import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXPECTED = pathlib.Path(__file__).with_name("Sam3Neck.public-api.txt")
HEADER = ROOT / "include" / "sam3_neck.h"
MODULE = "Sam3Neck"
# The C structs whose fields are the options CompileOptions mirrors.
OPTION_STRUCTS = ("sam3_neck_compile_params", "sam3_neck_io_params")


def load_graph():
    """Sam3Neck's symbols and relationships, from every symbol graph file of the module."""
    out = subprocess.run(
        ["swift", "package", "dump-symbol-graph", "--minimum-access-level", "public"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(f"check_public_api: swift package dump-symbol-graph failed:\n{out.stdout}{out.stderr}")
    folder = pathlib.Path(
        next(
            line.split("Files written to ", 1)[1].strip()
            for line in out.stdout.splitlines()
            if "Files written to " in line
        )
    )
    files = [folder / f"{MODULE}.symbols.json"] + sorted(folder.glob(f"{MODULE}@*.symbols.json"))
    symbols, relationships = [], []
    for path in files:
        graph = json.loads(path.read_text())
        symbols += graph["symbols"]
        relationships += graph["relationships"]
    return symbols, relationships


def is_public(symbol):
    return symbol["accessLevel"] in ("public", "open")


def path_of(symbol):
    return ".".join(symbol["pathComponents"])


def declaration(symbol):
    return "".join(f["spelling"] for f in symbol.get("declarationFragments", []))


def constraints(items):
    """` where A: B, C == D` for a relationship's swiftConstraints (conditional conformances)."""
    if not items:
        return ""
    ops = {"conformance": ":", "superclass": ":", "sameType": " =="}
    return " where " + ", ".join(f"{c['lhs']}{ops.get(c['kind'], ' ' + c['kind'])} {c['rhs']}" for c in items)


def api_rows(symbols, relationships):
    public = {s["identifier"]["precise"]: s for s in symbols if is_public(s)}
    every = {s["identifier"]["precise"]: s for s in symbols}
    rows = {f"{s['kind']['identifier']} {path_of(s)}: {declaration(s)}" for s in public.values()}
    for r in relationships:
        if r["kind"] == "memberOf" or r["source"] not in public:
            continue
        target = every.get(r["target"])
        name = path_of(target) if target else r.get("targetFallback") or r["target"]
        rows.add(
            f"relationship.{r['kind']} {path_of(public[r['source']])}: {name}{constraints(r.get('swiftConstraints'))}"
        )
    return sorted(rows)


def undocumented(symbols):
    """Public symbols declared in Sam3Neck's sources without a doc comment of their own."""
    missing = []
    for s in symbols:
        if not is_public(s) or "::SYNTHESIZED::" in s["identifier"]["precise"] or "location" not in s:
            continue
        doc = s.get("docComment")
        if doc and doc.get("module", MODULE) == MODULE and any(l["text"].strip() for l in doc["lines"]):
            continue
        file = s["location"]["uri"].replace(f"file://{ROOT}/", "")
        line = s["location"]["position"]["line"] + 1
        missing.append((file, line, f"{file}:{line}: {s['kind']['identifier']} {path_of(s)}"))
    return [m[2] for m in sorted(missing)]


def header_struct_fields(text, name):
    """The field names of `typedef struct name { ... } name;` in the C header (None if absent)."""
    m = re.search(r"typedef\s+struct\s+" + name + r"\s*\{(.*?)\}\s*" + name + r"\s*;", text, re.S)
    if not m:
        return None
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    return {re.sub(r"\[.*", "", decl.split()[-1]).lstrip("*") for decl in body.split(";") if decl.strip()}


def option_problems(symbols):
    """Public stored properties of CompileOptions that are no option of the C header."""
    text = HEADER.read_text()
    fields = set()
    problems = []
    for struct in OPTION_STRUCTS:
        found = header_struct_fields(text, struct)
        if found is None:
            problems.append(f"{HEADER.relative_to(ROOT)} has no struct {struct} (OPTION_STRUCTS of this script)")
        else:
            fields |= {f.replace("_", "").lower() for f in found}
    stored = [
        s
        for s in symbols
        if is_public(s)
        and s["kind"]["identifier"] == "swift.property"
        and s["pathComponents"][:-1] == ["CompileOptions"]
        and "{" not in declaration(s)
    ]
    if not stored:
        problems.append("CompileOptions has no public stored property: is the symbol graph read right?")
    for s in stored:
        name = s["pathComponents"][-1]
        if name.lower() not in fields:
            problems.append(
                f"CompileOptions.{name} is public but no field of {' or '.join(OPTION_STRUCTS)}: "
                "a caller's option belongs in the C header too; a tuning knob is `package`"
            )
    return problems


def main():
    symbols, relationships = load_graph()
    rows = api_rows(symbols, relationships)
    failures = []
    if "--update" in sys.argv[1:]:
        EXPECTED.write_text("\n".join(rows) + "\n")
        print(f"check_public_api: wrote {len(rows)} symbols and relationships to {EXPECTED.relative_to(ROOT)}")
    else:
        expected = EXPECTED.read_text().splitlines()
        added = sorted(set(rows) - set(expected))
        removed = sorted(set(expected) - set(rows))
        if added or removed:
            lines = [f"+ {r}" for r in added] + [f"- {r}" for r in removed]
            failures.append(
                "the public API of Sam3Neck changed (+ new, - gone):\n  "
                + "\n  ".join(lines)
                + "\nIf this is intended, run: python3 Tests/api/check_public_api.py --update"
            )
    missing = undocumented(symbols)
    if missing:
        failures.append(
            "public symbols without a doc comment (write one: what it is, and why a caller "
            "would use it):\n  " + "\n  ".join(missing)
        )
    failures += option_problems(symbols)
    if failures:
        sys.exit("check_public_api: FAIL: " + "\ncheck_public_api: FAIL: ".join(failures))
    print(
        f"check_public_api: the public API of Sam3Neck is the {len(rows)} symbols and relationships of "
        f"{EXPECTED.relative_to(ROOT)}; each public declaration has a doc comment; each public "
        "CompileOptions field is an option of the C header"
    )


if __name__ == "__main__":
    main()
