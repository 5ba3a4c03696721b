"""The Swift module Sam3Neck's public API, as the compiler sees it, against the list checked in
beside this file: the public surface is a promise, so any change to it shows up here and is made
on purpose (run with --update, and review the diff of Sam3Neck.public-api.txt).

    python3 Tests/api/check_public_api.py [--update]      (from the repository root)

Runs `swift package dump-symbol-graph --minimum-access-level public` (a debug build) and lists
each public symbol of Sam3Neck as "kind path: declaration".
"""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXPECTED = pathlib.Path(__file__).with_name("Sam3Neck.public-api.txt")


def public_symbols():
    out = subprocess.run(["swift", "package", "dump-symbol-graph", "--minimum-access-level", "public"],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"check_public_api: swift package dump-symbol-graph failed:\n{out.stdout}{out.stderr}")
    folder = next(line.split("Files written to ", 1)[1].strip()
                  for line in out.stdout.splitlines() if "Files written to " in line)
    graph = json.loads((pathlib.Path(folder) / "Sam3Neck.symbols.json").read_text())
    rows = set()
    for s in graph["symbols"]:
        if s["accessLevel"] not in ("public", "open"):
            continue
        declaration = "".join(f["spelling"] for f in s.get("declarationFragments", []))
        rows.add(f"{s['kind']['identifier']} {'.'.join(s['pathComponents'])}: {declaration}")
    return sorted(rows)


def main():
    rows = public_symbols()
    if "--update" in sys.argv[1:]:
        EXPECTED.write_text("\n".join(rows) + "\n")
        print(f"check_public_api: wrote {len(rows)} symbols to {EXPECTED.relative_to(ROOT)}")
        return
    expected = EXPECTED.read_text().splitlines()
    added = sorted(set(rows) - set(expected))
    removed = sorted(set(expected) - set(rows))
    if added or removed:
        lines = [f"+ {r}" for r in added] + [f"- {r}" for r in removed]
        sys.exit("check_public_api: the public API of Sam3Neck changed (+ new, - gone):\n  "
                 + "\n  ".join(lines) + "\nIf this is intended, run: python3 Tests/api/check_public_api.py --update")
    print(f"check_public_api: the public API of Sam3Neck is the {len(rows)} symbols of {EXPECTED.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
