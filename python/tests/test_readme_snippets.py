"""The code blocks of README.md and docs/ are copied from tested files: every code block of the
sections below appears, line for line (indentation aside), in the file named; the whole examples
appear verbatim in their docs page. examples/cli.sh and examples/trunk_handoff.py run here
(test_distributed.py runs neck_on_dask.py; make test builds and runs the C, C++, Python and Swift
examples, and Tests/install/run.sh checks docs/c-cpp.md's copies of the C and C++ ones).
Needs the native library."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sam3neck import checkpoint, reference

ROOT = Path(__file__).resolve().parents[2]
TOL = reference.TOLERANCE["default"]


def _section_blocks(title, doc="README.md"):
    """The fenced code blocks of the section titled `title` (any heading level) of `doc`, up to
    the next heading of the same or a higher level (lines inside code blocks are no headings)."""
    lines = (ROOT / doc).read_text().splitlines()
    blocks, level, fence = [], None, None
    for line in lines:
        if line.startswith("```"):
            if fence is None:
                fence = []
            else:
                if level is not None:
                    blocks.append("\n".join(fence) + "\n")
                fence = None
            continue
        if fence is not None:
            fence.append(line)
            continue
        m = re.match(r"(#+) (.*)$", line)
        if m:
            if level is not None and len(m.group(1)) <= level:
                break
            if level is None and m.group(2) == title:
                level = len(m.group(1))
    assert level is not None, f"{doc} has no section {title!r}"
    return blocks


def _contiguous_in(block, path):
    want = [line.strip() for line in block.strip("\n").splitlines()]
    have = [line.strip() for line in path.read_text().splitlines()]
    return any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1))


SWIFT_MAIN = "examples/swift/Sources/neck-example/main.swift"


@pytest.mark.parametrize(
    "doc,title,sources",
    [
        ("README.md", "Python", ["examples/example.py"]),
        ("README.md", "C", ["examples/example.c"]),
        ("README.md", "C++", ["examples/example.cpp"]),
        ("README.md", "Swift", [SWIFT_MAIN]),
        ("README.md", "Command line", ["examples/cli.sh"]),
        ("docs/python.md", "Use", ["examples/example.py"]),
        ("docs/python.md", "Command line", ["examples/cli.sh"]),
        ("docs/python.md", "On a cluster", ["examples/neck_on_dask.py"] * 2),
        ("docs/python.md", "A real checkpoint and a real input", ["examples/trunk_handoff.py"]),
        ("docs/c-cpp.md", "C example", ["examples/example.c"]),
        ("docs/c-cpp.md", "C++ example", ["examples/example.cpp"]),
        ("docs/swift.md", "Swift guide", ["examples/swift/Package.swift", SWIFT_MAIN]),
    ],
)
def test_snippets_are_copied_from_tested_files(doc, title, sources):
    blocks = _section_blocks(title, doc)
    assert len(blocks) == len(sources), f"{doc} {title!r}: {len(blocks)} code blocks, expected {len(sources)}"
    for block, source in zip(blocks, sources):
        assert _contiguous_in(block, ROOT / source), f"{doc} {title!r} block not in {source}:\n{block}"


@pytest.mark.parametrize(
    "doc,source",
    [
        ("docs/python.md", "examples/example.py"),
        ("docs/c-cpp.md", "examples/example.c"),
        ("docs/c-cpp.md", "examples/example.cpp"),
        ("docs/swift.md", SWIFT_MAIN),
    ],
)
def test_docs_show_whole_examples(doc, source):
    assert (ROOT / source).read_text().rstrip("\n") in (ROOT / doc).read_text(), (
        f"{doc} does not show {source} as it is (copy the file into it)"
    )


def test_contiguity_check_can_fail():
    block = _section_blocks("Command line")[0]
    assert not _contiguous_in(block.replace("0,1,2", "0,1"), ROOT / "examples/cli.sh")
    swift = _section_blocks("Swift")[0]
    assert not _contiguous_in(swift.replace("16, width: 16", "16, width: 8"), ROOT / SWIFT_MAIN)


def test_sections_end_at_the_next_heading_of_their_level():
    # README's "Swift" (###) holds one block; its parent "Examples" (##) holds all four.
    assert len(_section_blocks("Swift")) == 1
    assert len(_section_blocks("Examples")) == 4


def test_cli_script_runs(tmp_path):
    c, d = 16, 8
    checkpoint.write_synthetic_checkpoint(tmp_path / "sam3.safetensors", c, d, seed=5)
    w = checkpoint.canonical(
        checkpoint.load_safetensors(tmp_path / "sam3.safetensors"), prefix=checkpoint.DEFAULT_PREFIX
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((c, 6, 4)).astype(np.float32)
    np.save(tmp_path / "feats.npy", x)
    (tmp_path / "features").mkdir()
    ys = {f"y{k}": rng.standard_normal((c, 3 + k, 4)).astype(np.float32) for k in range(2)}
    for name, y in ys.items():
        np.save(tmp_path / "features" / f"{name}.npy", y)
    env = dict(os.environ, PYTHON=sys.executable)
    pkg = str(ROOT / "python")
    env["PYTHONPATH"] = os.pathsep.join([pkg] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    r = subprocess.run(
        ["bash", str(ROOT / "examples" / "cli.sh"), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "feats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(tmp_path / "feats.npz") as z:
        for i, (feat, _) in enumerate(reference.forward(w, x[None])):
            assert reference.normalised_error(z[f"level{i}"], feat[0]) <= TOL
    with np.load(tmp_path / "tokens.npz") as z:  # bfloat16 sequence output, as uint16 bits
        assert "uint16 bit patterns" in str(z["note"])
        ref = reference.forward(w, x[None], output_layout="sequence")
        for i, (feat, _) in enumerate(ref):
            got = (z[f"level{i}"].astype(np.uint32) << 16).view(np.float32)
            assert got.shape == (feat.shape[0], feat.shape[2])
            assert reference.normalised_error(got, feat[:, 0]) <= reference.OUTPUT_TOLERANCE["bfloat16"]
    for name, y in ys.items():
        with np.load(tmp_path / "pyramids" / f"{name}.npz") as z:
            assert sorted(z.files) == ["level0", "level1", "level2"]
            for i, (feat, _) in enumerate(reference.forward(w, y[None], levels=(0, 1, 2))):
                assert reference.normalised_error(z[f"level{i}"], feat[0]) <= TOL


def test_trunk_handoff_runs(tmp_path):
    """examples/trunk_handoff.py: a trunk output saved as .npy goes through the neck."""
    c, d = 16, 8
    ck = tmp_path / "sam3.safetensors"
    checkpoint.write_synthetic_checkpoint(ck, c, d, seed=2)
    np.save(tmp_path / "trunk.npy", np.random.default_rng(1).standard_normal((2, c, 6, 4)))  # float64
    env = dict(os.environ)
    pkg = str(ROOT / "python")
    env["PYTHONPATH"] = os.pathsep.join([pkg] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "trunk_handoff.py"), str(ck), str(tmp_path / "trunk.npy")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines == [
        "0 4.0 (2, 8, 24, 16) (1, 8, 24, 16)",
        "1 2.0 (2, 8, 12, 8) (1, 8, 12, 8)",
        "2 1.0 (2, 8, 6, 4) (1, 8, 6, 4)",
        "3 0.5 (2, 8, 3, 2) (1, 8, 3, 2)",
    ], r.stdout
