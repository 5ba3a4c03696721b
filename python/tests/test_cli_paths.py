"""Every path the command line reads or writes follows the checkpoint loader's rules (sam3_neck.h,
"Untrusted checkpoints"; sam3neck/_paths.py): only regular files are read, opened without
blocking (a FIFO is refused at once, never waited on); outputs go into existing folders and only
ever replace regular files (never a folder, FIFO or device). Each refusal is one line
`sam3neck <verb>: error: <path>: <cause>`, no traceback; in a folder the other files still run and
the exit status is 1. The FIFO cases run in a child process with a timeout, so a hang fails the
test instead of stopping the suite. Needs the native library (like test_neck.py)."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from sam3neck import _paths, checkpoint, runner
from sam3neck.__main__ import main

C, D = 16, 8
HANG = 60  # seconds: far beyond what any of these takes; past it the child is a hang


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(path, C, D, seed=7)
    return path


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _cli(*argv):
    """The command in a child process; a hang past HANG seconds fails the test."""
    env = dict(os.environ)
    env.pop("WEIGHTS", None)
    try:
        return subprocess.run(
            [sys.executable, "-m", "sam3neck", *[str(a) for a in argv]],
            capture_output=True,
            text=True,
            env=env,
            timeout=HANG,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"sam3neck {' '.join(map(str, argv))} hung (> {HANG} s)")


def _errors(p, verb="run"):
    """The `error:` lines of stderr, after checking there is no traceback."""
    assert "Traceback" not in p.stderr, p.stderr
    return [line for line in p.stderr.splitlines() if line.startswith(f"sam3neck {verb}: error: ")]


def _one_error(p, path, *words, verb="run"):
    """Exit status 1 and exactly one error line, `sam3neck VERB: error: PATH: ...` with `words`."""
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    errors = _errors(p, verb)
    assert len(errors) == 1, p.stderr
    assert errors[0].startswith(f"sam3neck {verb}: error: {path}: "), errors[0]
    for w in words:
        assert str(w) in errors[0], (w, errors[0])
    return errors[0]


def _fifo(path):
    os.mkfifo(path)
    return path


def _device_link(path, device="/dev/null"):
    """A link to a character device: as an output it must be refused; were it not, the rename
    would replace the link, never the device (these tests may run as root)."""
    os.symlink(device, path)
    return path


def _still(path, kind):
    assert kind(os.lstat(path).st_mode), path


@pytest.fixture
def x_npy(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, _x((C, 4, 4)))
    return p


# ------------------------------------------------------------------------------------------------
# inputs: regular files only, never waited on
# ------------------------------------------------------------------------------------------------


def test_fifo_input_is_refused_not_waited_on(ck, tmp_path):
    fifo = _fifo(tmp_path / "f.npy")
    p = _cli("run", "--weights", ck, fifo, tmp_path / "o.npz")
    _one_error(p, fifo, "is a FIFO (named pipe), not a regular file")
    assert not (tmp_path / "o.npz").exists()
    _still(fifo, stat.S_ISFIFO)


@pytest.mark.parametrize("link", [False, True], ids=["device", "link-to-device"])
def test_character_device_input_is_refused(ck, tmp_path, link):
    src = _device_link(tmp_path / "z.npy", "/dev/zero") if link else "/dev/zero"
    p = _cli("run", "--weights", ck, src, tmp_path / "o.npz")
    _one_error(p, src, "is a character device, not a regular file")
    assert not (tmp_path / "o.npz").exists()


def test_readers_refuse_a_folder_where_a_file_is_expected(tmp_path):
    folder = tmp_path / "d.npy"
    folder.mkdir()
    with pytest.raises(runner.InputError, match=f"{folder}: is a folder, not a regular file"):
        runner.read_features(folder, C)
    with pytest.raises(runner.InputError, match=f"{folder}: is a folder, not a regular file"):
        runner.probe_features(folder, C)
    with pytest.raises(_paths.PathError, match="is a folder, not a regular file"):
        checkpoint.load_safetensors(folder)
    with pytest.raises(_paths.PathError, match="is a folder, not a regular file"):
        checkpoint.read_safetensors_file_header(folder)


def test_python_readers_refuse_a_fifo_at_once(tmp_path):
    """read_features, probe_features and the checkpoint reader, in a child (a hang fails)."""
    fifo = _fifo(tmp_path / "f.npy")
    code = (
        "import sys\n"
        "from sam3neck import checkpoint, runner, _paths\n"
        "p = sys.argv[1]\n"
        "for f in (lambda: runner.read_features(p, 16), lambda: runner.probe_features(p, 16)):\n"
        "    try: f()\n"
        "    except runner.InputError as e: print(e)\n"
        "for f in (checkpoint.load_safetensors, checkpoint.read_safetensors_file_header,\n"
        "          lambda q: checkpoint.load_safetensors(q, names=['a'])):\n"
        "    try: f(p)\n"
        "    except _paths.PathError as e: print(e)\n"
    )
    try:
        p = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=HANG)
    except subprocess.TimeoutExpired:
        pytest.fail("a reader waited on a FIFO")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines == [f"{fifo}: is a FIFO (named pipe), not a regular file: only regular files are read"] * 5, p.stdout


def test_missing_input_and_a_file_on_its_path(ck, tmp_path):
    (tmp_path / "afile").write_text("x")
    missing = tmp_path / "afile" / "x.npy"  # a file where a folder should be
    with pytest.raises(runner.InputError, match=f"{missing}: no such file: .*afile is a file, not a folder"):
        runner.read_features(missing, C)


# ------------------------------------------------------------------------------------------------
# outputs: existing folders, regular files only
# ------------------------------------------------------------------------------------------------


def test_output_whose_parent_is_a_regular_file(ck, tmp_path, x_npy):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = blocker / "o.npz"
    _one_error(
        _cli("run", "--weights", ck, x_npy, out),
        out,
        "cannot make the output's folder",
        f"{blocker} is a file, not a folder",
    )
    deeper = blocker / "sub" / "o.npz"
    _one_error(_cli("run", "--weights", ck, x_npy, deeper), deeper, f"{blocker} is a file, not a folder")
    assert blocker.read_text() == "x"


def test_output_that_is_an_existing_folder(ck, tmp_path, x_npy):
    # an OUTPUT folder receives <stem>.npz (test_cli_run.py); that path being a folder is refused
    (tmp_path / "o" / "x.npz").mkdir(parents=True)
    _one_error(
        _cli("run", "--weights", ck, x_npy, tmp_path / "o"), tmp_path / "o" / "x.npz", "is a folder, not a regular file"
    )
    assert (tmp_path / "o" / "x.npz").is_dir() and not os.listdir(tmp_path / "o" / "x.npz")


def test_output_that_is_a_fifo_or_a_device(ck, tmp_path, x_npy):
    fifo = _fifo(tmp_path / "pipe.npz")
    _one_error(_cli("run", "--weights", ck, x_npy, fifo), fifo, "is a FIFO (named pipe), not a regular file")
    _still(fifo, stat.S_ISFIFO)
    dev = _device_link(tmp_path / "null.npz")
    _one_error(_cli("run", "--weights", ck, x_npy, dev), dev, "is a character device, not a regular file")
    _still(dev, stat.S_ISLNK)
    _still("/dev/null", stat.S_ISCHR)
    assert sorted(os.listdir(tmp_path)) == ["null.npz", "pipe.npz", "x.npy"]  # no temporary files


def test_output_that_cannot_be_written(ck, tmp_path, x_npy):
    """/proc takes no new files, whoever runs the test (as root the refusal comes from the write
    itself, after the run; otherwise from the permission check before it)."""
    out = "/proc/sam3neck-test-output.npz"
    p = _cli("run", "--weights", ck, x_npy, out)
    assert p.returncode == 1, p.stderr
    errors = _errors(p)
    assert len(errors) == 1 and errors[0].startswith(f"sam3neck run: error: {out}: cannot be written: "), p.stderr


def test_existing_regular_output_is_replaced(ck, tmp_path, x_npy):
    out = tmp_path / "o.npz"
    out.write_text("old")
    p = _cli("run", "--weights", ck, x_npy, out)
    assert p.returncode == 0, p.stderr
    with np.load(out) as z:
        assert "level0" in z.files


@pytest.mark.parametrize("case", ["folder", "parent-file", "fifo", "device"])
def test_png_path_is_checked_before_running(ck, tmp_path, x_npy, case):
    pytest.importorskip("matplotlib")
    if case == "folder":
        png = tmp_path / "p.png"
        png.mkdir()
        cause = "is a folder, not a regular file"
    elif case == "parent-file":
        (tmp_path / "afile").write_text("x")
        png = tmp_path / "afile" / "p.png"
        cause = f"{tmp_path / 'afile'} is a file, not a folder"
    elif case == "fifo":
        png = _fifo(tmp_path / "p.png")
        cause = "is a FIFO (named pipe)"
    else:
        png = _device_link(tmp_path / "p.png")
        cause = "is a character device"
    p = _cli("run", "--weights", ck, x_npy, tmp_path / "o.npz", "--png", png)
    _one_error(p, png, cause, "(--png)")
    assert len(p.stderr.strip().splitlines()) == 1  # refused before anything ran
    assert not (tmp_path / "o.npz").exists()


# ------------------------------------------------------------------------------------------------
# a folder of good and bad inputs: the good ones are written, one line per bad one, status 1
# ------------------------------------------------------------------------------------------------


def test_folder_of_good_and_bad_inputs(ck, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    good = {"a": _x((C, 4, 4), 1), "c": _x((C, 5, 4), 2), "f": _x((C, 4, 4), 3)}
    for k, v in good.items():
        np.save(src / f"{k}.npy", v)
    bad = {
        src / "b.npy": "is a FIFO (named pipe), not a regular file",
        src / "d.npy": "is a character device, not a regular file",
        src / "e.npy": "no such file",  # a dangling link
        out / "g.npz": "is a folder, not a regular file",  # its output is a folder
        out / "h.npz": "is a FIFO (named pipe), not a regular file",  # its output is a FIFO
    }
    _fifo(src / "b.npy")
    _device_link(src / "d.npy", "/dev/zero")
    os.symlink(tmp_path / "gone.npy", src / "e.npy")
    np.save(src / "g.npy", _x((C, 4, 4), 4))
    (out / "g.npz").mkdir()
    np.save(src / "h.npy", _x((C, 4, 4), 5))
    _fifo(out / "h.npz")
    (src / "sub.npy").mkdir()  # a folder named like a file: not an input (test_cli_run.py)
    p = _cli("run", "--weights", ck, src, out)
    assert p.returncode == 1, p.stderr
    errors = _errors(p)
    assert len(errors) == len(bad), p.stderr
    for path, cause in bad.items():
        assert [e for e in errors if e.startswith(f"sam3neck run: error: {path}: {cause}")], (path, p.stderr)
    assert f"8 files: 3 written to {out}, 5 failed" in p.stderr
    for k, v in good.items():
        with np.load(out / f"{k}.npz") as z:
            assert z["level2"].shape == (D,) + v.shape[1:]
    _still(out / "h.npz", stat.S_ISFIFO)
    assert (out / "g.npz").is_dir()
    assert sorted(os.listdir(out)) == ["a.npz", "c.npz", "f.npz", "g.npz", "h.npz"]


def test_write_refused_behind_the_neck_is_one_line_and_the_rest_go_on(ck, tmp_path, capsys, monkeypatch):
    """A refusal that comes only when writing (the write-behind stage): that file is reported by
    its output path, the others are written, the status is 1."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for k in "abc":
        np.save(src / f"{k}.npy", _x((C, 4, 4)))
    real = _paths.tempfile.mkstemp

    def mkstemp(prefix="", suffix="", dir=None):
        if prefix.startswith(".b.npz."):
            raise PermissionError(13, "Permission denied")
        return real(prefix=prefix, suffix=suffix, dir=dir)

    monkeypatch.setattr(_paths.tempfile, "mkstemp", mkstemp)
    assert main(["run", "--weights", str(ck), str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert errors == [f"sam3neck run: error: {out / 'b.npz'}: cannot be written: Permission denied"]
    assert sorted(os.listdir(out)) == ["a.npz", "c.npz"]
    assert f"3 files: 2 written to {out}, 1 failed" in err


# ------------------------------------------------------------------------------------------------
# the other verbs
# ------------------------------------------------------------------------------------------------


def test_fifo_checkpoint_is_refused_by_every_verb(ck, tmp_path, x_npy):
    fifo = _fifo(tmp_path / "w.safetensors")
    _one_error(
        _cli("run", "--weights", fifo, x_npy, tmp_path / "o.npz"), fifo, "is a FIFO (named pipe), not a regular file"
    )
    _one_error(_cli("demo", "--weights", fifo), fifo, "is a FIFO (named pipe), not a regular file", verb="demo")
    p = _cli("inspect", fifo)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().startswith("sam3neck inspect: ") and "is a FIFO" in p.stderr
    p = _cli("bench", "--weights", fifo, "--no-peers", "--quick", "--json", tmp_path / "b.json")
    _one_error(p, fifo, "is a FIFO (named pipe), not a regular file", verb="bench")
    _still(fifo, stat.S_ISFIFO)


@pytest.mark.parametrize("case", ["fifo", "device", "folder", "parent-file"])
def test_bench_json_path_is_checked_before_the_benchmark(ck, tmp_path, case):
    if case == "fifo":
        path, cause = _fifo(tmp_path / "b.json"), "is a FIFO (named pipe), not a regular file"
    elif case == "device":
        path, cause = _device_link(tmp_path / "b.json"), "is a character device"
    elif case == "folder":
        path, cause = tmp_path / "b.json", "is a folder, not a regular file"
        path.mkdir()
    else:
        (tmp_path / "afile").write_text("x")
        path, cause = tmp_path / "afile" / "b.json", f"{tmp_path / 'afile'} is a file, not a folder"
    p = _cli("bench", "--weights", ck, "--no-peers", "--quick", "--json", path)
    _one_error(p, path, cause, verb="bench")
    assert len(p.stderr.strip().splitlines()) == 1 and not p.stdout  # nothing was timed


# ------------------------------------------------------------------------------------------------
# the two helpers themselves
# ------------------------------------------------------------------------------------------------


def test_writers_never_replace_what_is_not_a_regular_file(tmp_path):
    fifo = _fifo(tmp_path / "f")
    dev = _device_link(tmp_path / "d")
    (tmp_path / "dir").mkdir()
    for target in (fifo, dev, tmp_path / "dir"):
        with pytest.raises(_paths.PathError, match="not a regular file"):
            runner.write_npz(target, {"a": np.zeros(2)})
        with pytest.raises(_paths.PathError, match="not a regular file"):
            checkpoint.save_safetensors(target, {"a": np.zeros(2, np.float32)})
    _still(fifo, stat.S_ISFIFO)
    _still(dev, stat.S_ISLNK)
    assert sorted(os.listdir(tmp_path)) == ["d", "dir", "f"]  # no temporary files left


def test_a_folder_made_at_the_target_while_writing_is_not_replaced(tmp_path):
    target = tmp_path / "o.npz"
    with pytest.raises(_paths.PathError, match="is a folder"):
        with _paths.atomic_writer(target) as f:
            f.write(b"data")
            target.mkdir()
    assert target.is_dir() and os.listdir(tmp_path) == ["o.npz"]


def test_open_for_reading_is_blocking_once_open(tmp_path):
    p = tmp_path / "r.bin"
    p.write_bytes(b"abc")
    with _paths.open_for_reading(p) as f:
        assert os.get_blocking(f.fileno()) and f.read() == b"abc"


def test_path_error_pickles(tmp_path):
    import pickle

    e = _paths.PathError(tmp_path / "x", "is a FIFO (named pipe), not a regular file", 17)
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) == f"{tmp_path / 'x'}: is a FIFO (named pipe), not a regular file"
    assert isinstance(back, OSError) and back.errno == 17
