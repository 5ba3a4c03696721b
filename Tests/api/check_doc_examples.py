"""The code examples of Sam3Neck's documentation compile against its public API.

    python3 Tests/api/check_doc_examples.py      (from the repository root; run by make test-api)

Collects every fenced code block of Swift from the doc comments (`///`) of Sources/Sam3Neck and
from the DocC catalog Sources/Sam3Neck/Sam3Neck.docc (a fence marked `swift`, or, in a doc
comment, with no language: DocC reads those as Swift), wraps each in a throwing function of its
own in one file that imports only Sam3Neck, and type-checks that file with swiftc against the
module of a debug build (`swift build --target Sam3Neck`). The file is compiled as a client's
would be: without the package's name, so `package` and internal declarations are out of reach,
with -warnings-as-errors, in Swift 6 mode. `#sourceLocation` points each error at the line of the
doc comment or article it comes from.

Before that, it type-checks one example that must not compile (a call that does not exist), so
a compile step that passes everything fails here instead of going unnoticed.
"""

import pathlib
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = ROOT / "Sources" / "Sam3Neck"
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")


def fenced_blocks(lines, swift_by_default):
    """(first line number, lines) of each fenced Swift block of `lines` ((line number, text))."""
    blocks, fence, body, start, wanted = [], None, [], 0, False
    for number, text in lines:
        stripped = text.strip()
        if fence is None:
            m = FENCE.match(stripped)
            if m:
                fence, body, start = m.group(1), [], number + 1
                wanted = m.group(2) == "swift" or (m.group(2) == "" and swift_by_default)
            continue
        if stripped.startswith(fence) and stripped.strip(fence[0]) == "":
            if wanted:
                blocks.append((start, body))
            fence = None
            continue
        body.append(text)
    if fence is not None:
        sys.exit(f"check_doc_examples: a code block opened at line {start - 1} is never closed")
    return blocks


def doc_comment_runs(path):
    """The runs of consecutive `///` lines of a Swift file, as (line number, text after ///)."""
    runs, run = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r"\s*///(.*)$", line)
        if m:
            text = m.group(1)
            run.append((number, text[1:] if text.startswith(" ") else text))
        elif run:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    return runs


def examples():
    """(path, first line, lines) of every Swift example in Sam3Neck's documentation."""
    found = []
    for path in sorted(SOURCES.rglob("*.swift")):
        for run in doc_comment_runs(path):
            found += [(path, start, body) for start, body in fenced_blocks(run, swift_by_default=True)]
    for path in sorted(SOURCES.rglob("*.docc/**/*.md")):
        lines = list(enumerate(path.read_text().splitlines(), 1))
        found += [(path, start, body) for start, body in fenced_blocks(lines, swift_by_default=False)]
    return found


def program(blocks):
    """One Swift file: each example the body of a throwing function, its lines mapped back."""
    out = ["import Sam3Neck", ""]
    for i, (path, start, body) in enumerate(blocks):
        out += [
            f"func docExample{i}() throws {{",
            f'#sourceLocation(file: "{path}", line: {start})',
            *body,
            "#sourceLocation()",
            "}",
            "",
        ]
    return "\n".join(out)


def swift(*args):
    r = subprocess.run(["swift", *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"check_doc_examples: swift {' '.join(args)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def typecheck(source, folder, modules):
    """swiftc -typecheck of `source` as a client of Sam3Neck: (exit status, compiler output)."""
    file = folder / "doc_examples.swift"
    file.write_text(source)
    # Sam3Neck's module imports the C targets CKernels (whose module map SwiftPM generates; this
    # one says the same) and COpenBLAS (its own module map), so a client's compile finds them.
    (folder / "CKernels.modulemap").write_text(
        f'module CKernels {{\n    umbrella "{ROOT}/Sources/CKernels/include"\n    export *\n}}\n'
    )
    # OpenBLAS's include folder, as SwiftPM adds it for COpenBLAS (none where pkg-config is absent).
    try:
        cflags = subprocess.run(["pkg-config", "--cflags", "openblas"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        cflags = ""
    command = [
        "swiftc",
        "-typecheck",
        "-swift-version",
        "6",
        "-warnings-as-errors",
        "-I",
        str(modules),
        "-I",
        str(ROOT / "Sources" / "COpenBLAS"),
        "-Xcc",
        f"-fmodule-map-file={folder / 'CKernels.modulemap'}",
        *[a for flag in shlex.split(cflags) for a in ("-Xcc", flag)],
        str(file),
    ]
    r = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def main():
    blocks = examples()
    if not blocks:
        sys.exit("check_doc_examples: found no Swift example in Sources/Sam3Neck: is the extraction broken?")
    swift("build", "--target", "Sam3Neck")
    modules = pathlib.Path(swift("build", "--show-bin-path").strip()) / "Modules"
    if not (modules / "Sam3Neck.swiftmodule").exists():
        sys.exit(f"check_doc_examples: no Sam3Neck.swiftmodule in {modules} after swift build")
    with tempfile.TemporaryDirectory(prefix="sam3neck-doc-examples-") as tmp:
        folder = pathlib.Path(tmp)
        bad = [
            (
                SOURCES / "Neck.swift",
                1,
                ['let neck = try Neck(path: "sam3.safetensors")', "try neck.runWithoutCompiling()"],
            )
        ]
        status, output = typecheck(program(bad), folder, modules)
        if status == 0 or "error:" not in output:
            sys.exit(
                "check_doc_examples: an example calling a method that does not exist type-checked "
                f"(status {status}): this check cannot fail as it is run\n{output}"
            )
        status, output = typecheck(program(blocks), folder, modules)
    where = ", ".join(f"{path.relative_to(ROOT)}:{start}" for path, start, _ in blocks)
    if status != 0:
        sys.exit(
            f"check_doc_examples: FAIL: the Swift examples of the documentation do not compile "
            f"against Sam3Neck's public API ({where}):\n{output}"
        )
    print(
        f"check_doc_examples: the {len(blocks)} Swift examples of Sam3Neck's documentation compile "
        f"against its public API ({where})"
    )


if __name__ == "__main__":
    main()
