"""Every path a person types on the command line fails in one line (no traceback) with the exit
status the CLI documents; a file that is not a checkpoint at all says so, showing its first bytes;
help texts are plain text; the demo's timing line. Needs the native library (like test_neck.py)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from sam3neck import Neck, Sam3NeckError, _lib, checkpoint
from sam3neck.__main__ import main

C, D = 16, 8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("errs")
    ck = d / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(ck, C, D, seed=3)
    text = d / "notes.txt"
    text.write_text("These are my notes, not weights.\nSecond line.\n")
    noise = d / "noise.bin"
    b = bytearray(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    b[0], b[7], b[8] = 0x00, 0xF0, 0x00  # not "PK", not a pickle; a length of exabytes, no '{'
    noise.write_bytes(bytes(b))
    x = d / "x.npy"
    np.save(x, np.random.default_rng(0).standard_normal((C, 4, 4)).astype(np.float32))
    return {"ck": ck, "text": text, "noise": noise, "x": x, "dir": d}


def _cli(*argv, env=None):
    e = dict(os.environ)
    e.pop("WEIGHTS", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sam3neck", *[str(a) for a in argv]], capture_output=True, text=True, env=e, timeout=300
    )


def _one_line(p, *words, status=1):
    """The command failed with `status` and one stderr line holding every word (no traceback)."""
    assert p.returncode == status, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for w in words:
        assert str(w) in lines[0], (w, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------------
# the checkpoint loader: not a checkpoint at all
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["text", "noise"])
def test_non_checkpoint_file_says_so(files, name):
    path = files[name]
    with pytest.raises(Sam3NeckError) as e:
        Neck(path)
    assert e.value.status == _lib.ERR_FORMAT
    msg = e.value.message
    assert str(path) in msg
    assert "not a recognised checkpoint (neither safetensors nor a PyTorch zip; first bytes " in msg
    assert "header length" not in msg
    if name == "text":
        assert 'first bytes "These are my not"...' in msg
    else:
        assert re.search(r'first bytes "\\x00[^"]*"\.\.\.', msg), msg


def test_short_and_empty_files(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    (tmp_path / "s.pt").write_bytes(b"hi\n")
    with pytest.raises(Sam3NeckError, match="the file is empty"):
        Neck(tmp_path / "e.pt")
    with pytest.raises(Sam3NeckError, match=r'not a recognised checkpoint .*first bytes "hi\\n"'):
        Neck(tmp_path / "s.pt")


def test_damaged_safetensors_keeps_its_message(files, tmp_path):
    """A safetensors file whose header length runs past its end is still read as safetensors."""
    data = bytearray(files["ck"].read_bytes())
    bad = tmp_path / "bad.safetensors"
    for length, words in ((len(data) + 100, "runs past the end"), (1 << 40, "exceeds the")):
        data[:8] = length.to_bytes(8, "little")
        bad.write_bytes(bytes(data))
        with pytest.raises(Sam3NeckError, match=f"safetensors .*header length {length} {words}") as e:
            Neck(bad)
        assert e.value.status == _lib.ERR_FORMAT


# ------------------------------------------------------------------------------------------------
# one line for every path the commands take
# ------------------------------------------------------------------------------------------------


def test_demo_missing_weights(tmp_path):
    missing = tmp_path / "nope.pt"
    _one_line(_cli("demo", "--weights", missing), "sam3neck demo: error:", missing, "no such checkpoint file")
    # $WEIGHTS (what make demo WEIGHTS=... passes as --weights) is the same path
    _one_line(_cli("demo", env={"WEIGHTS": str(missing)}), "sam3neck demo: error:", missing)


@pytest.mark.parametrize("name", ["text", "noise"])
def test_demo_non_checkpoint(files, name):
    _one_line(
        _cli("demo", "--weights", files[name]), "sam3neck demo: error:", files[name], "not a recognised checkpoint"
    )


def test_demo_bad_grid_is_one_line(files):
    _one_line(
        _cli("demo", "--weights", files["ck"], "--height", "1", "--width", "1", "--runs", "1"),
        "sam3neck demo: error:",
        "cannot compile",
    )


def test_bench_missing_and_non_checkpoint_weights(files, tmp_path):
    missing = tmp_path / "nope.pt"
    json_path = tmp_path / "b.json"
    _one_line(
        _cli("bench", "--weights", missing, "--no-peers", "--quick", "--json", json_path),
        "sam3neck bench: error:",
        missing,
        "no such checkpoint file",
    )
    _one_line(
        _cli("bench", "--weights", files["text"], "--no-peers", "--quick", "--json", json_path),
        "sam3neck bench: error:",
        files["text"],
        "not a recognised checkpoint",
    )
    _one_line(
        _cli("bench", "--weights", files["ck"], "--no-peers", "--quick", "--json", tmp_path / "no" / "such" / "b.json"),
        "sam3neck bench: error:",
        tmp_path / "no" / "such",
        "no such folder",
    )
    assert not json_path.exists()


def test_run_paths(files, tmp_path):
    missing = tmp_path / "nope.pt"
    _one_line(
        _cli("run", "--weights", missing, files["x"], tmp_path / "o.npz"),
        "sam3neck run: error:",
        missing,
        "no such checkpoint file",
    )
    _one_line(
        _cli("run", "--weights", files["text"], files["x"], tmp_path / "o.npz"),
        "sam3neck run: error:",
        files["text"],
        "not a recognised checkpoint",
    )
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    _one_line(
        _cli("run", "--weights", files["ck"], files["x"], blocker / "sub" / "o.npz"),
        "sam3neck run: error:",
        blocker / "sub",
        "cannot make the output's folder",
    )


def test_inspect_paths(files, tmp_path):
    missing = tmp_path / "nope.pt"
    _one_line(_cli("inspect", missing), "sam3neck inspect:", missing)
    _one_line(_cli("inspect", files["noise"]), "sam3neck inspect:", files["noise"], "not a recognised checkpoint")


# ------------------------------------------------------------------------------------------------
# help texts and the demo's output
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["--help"], ["demo", "--help"], ["run", "--help"], ["inspect", "--help"], ["bench", "--help"], ["version"]]
)
def test_help_is_plain_text(argv):
    p = _cli(*argv)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip(), argv
    assert "`" not in p.stdout + p.stderr, p.stdout


def test_demo_times_seven_runs_and_names_the_reference(files, capsys):
    assert main(["demo", "--weights", str(files["ck"]), "--height", "6", "--width", "5", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    m = re.search(
        r"run: median ([\d.]+) ms, min ([\d.]+) ms over (\d+) timed runs after 1 "
        r"warm-up run",
        out,
    )
    assert m, out
    assert int(m.group(3)) == 7 and float(m.group(2)) <= float(m.group(1))
    assert re.search(r"float64 reference in [\d.]+ s \(\d+% of this demo's [\d.]+ s\)", out), out
    assert "note: the check against the float64 NumPy reference takes" in out
    assert "the neck's own time is the run line above" in out
