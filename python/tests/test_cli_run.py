"""`python -m sam3neck run`: single files, folders, errors, atomic outputs, the progress bar and
--png. Needs the native library (like test_neck.py)."""

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from sam3neck import checkpoint, picture, reference, runner
from sam3neck.__main__ import main
from test_picture import decode_png

TOL = 1e-4  # normalised error bound of the "default" precision (test_neck.TOLS)
POS_TOL = 1e-5  # position encodings, max abs error (test_neck.POS_TOL)
C, D = 16, 8


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(path, C, D, seed=7)
    return path, reference.neck_weights(checkpoint.load_safetensors(path))


def _x(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _run(*argv):
    return main(["run", *[str(a) for a in argv]])


def _check_npz(path, weights, x, layout="NCHW", levels=(0, 1, 2, 3), with_pos=False):
    """The .npz at path against reference.forward on x (3-D or 4-D, as the file held)."""
    squeeze = x.ndim == 3
    x4 = x[None] if squeeze else x
    xr = x4 if layout == "NCHW" else x4.transpose(0, 3, 1, 2)
    ref = reference.forward(weights, xr.astype(np.float32), levels=levels)
    with np.load(path) as z:
        keys = sorted(z.files)
        want = sorted([f"level{i}" for i in levels] + ([f"pos{i}" for i in levels] if with_pos else []))
        assert keys == want
        for i, (feat, pos) in zip(sorted(levels), ref):
            got = z[f"level{i}"]
            assert got.dtype == np.float32
            assert got.shape == (feat.shape[1:] if squeeze else feat.shape)
            err = reference.normalised_error(got, feat[0] if squeeze else feat)
            assert err <= TOL, f"level {i}: {err:.2e}"
            if with_pos:
                p = z[f"pos{i}"]
                assert p.shape == (pos.shape[1:] if squeeze else pos.shape)
                assert np.max(np.abs(p - (pos[0] if squeeze else pos))) <= POS_TOL


def _no_temp_files(folder):
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_single_file_3d(ck, tmp_path, capsys):
    path, w = ck
    x = _x((C, 6, 5), 1)
    np.save(tmp_path / "f.npy", x)
    out = tmp_path / "out" / "f.npz"  # the folder is created
    assert _run("--weights", path, "--input", tmp_path / "f.npy", "--out", out) == 0
    _check_npz(out, w, x)
    err = capsys.readouterr().err
    assert "f.npy [16, 6, 5] ->" in err and "level0 [8, 24, 20]" in err and "\r" not in err
    _no_temp_files(out.parent)
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # a plain file's permissions


def test_single_file_batch_nhwc_levels_pos(ck, tmp_path):
    path, w = ck
    x = _x((2, 7, 4, C), 2)
    np.save(tmp_path / "g.npy", x)
    rc = _run("--weights", path, "--input", tmp_path / "g.npy", "--out", tmp_path / "g.npz",
              "--layout", "nhwc", "--levels", "3,1", "--with-pos", "--precision", "strict",
              "--threads", "1")
    assert rc == 0
    _check_npz(tmp_path / "g.npz", w, x, "NHWC", (1, 3), with_pos=True)


def test_out_is_a_folder(ck, tmp_path):
    path, w = ck
    x = _x((C, 4, 4), 3)
    np.save(tmp_path / "h.npy", x)
    (tmp_path / "o").mkdir()
    assert _run("--weights", path, "--input", tmp_path / "h.npy", "--out", tmp_path / "o") == 0
    _check_npz(tmp_path / "o" / "h.npz", w, x)


def test_sam2_neck_and_prefix(ck, tmp_path):
    path, _ = ck
    w2 = reference.neck_weights(checkpoint.load_safetensors(path), "sam2_convs")
    x = _x((C, 4, 6), 4)
    np.save(tmp_path / "s.npy", x)
    assert _run("--weights", path, "--input", tmp_path / "s.npy", "--out", tmp_path / "s.npz",
                "--neck", "sam2", "--prefix", checkpoint.DEFAULT_PREFIX) == 0
    _check_npz(tmp_path / "s.npz", w2, x)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, ">f4"])
def test_other_float_dtypes_are_converted(ck, tmp_path, capsys, dtype):
    path, w = ck
    x = _x((C, 5, 5), 5).astype(dtype)
    np.save(tmp_path / "d.npy", x)
    assert _run("--weights", path, "--input", tmp_path / "d.npy", "--out", tmp_path / "d.npz") == 0
    _check_npz(tmp_path / "d.npz", w, x.astype(np.float32))
    err = capsys.readouterr().err
    if np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize != 4:
        assert f"note: {tmp_path / 'd.npy'}: {np.dtype(dtype)} converted to float32" in err
    else:
        assert "note" not in err  # float32 in the other byte order is just swapped


def _bad_inputs(tmp_path):
    bad = {}
    np.save(tmp_path / "int.npy", np.zeros((C, 4, 4), np.int32))
    bad["int.npy"] = "dtype int32 is not a floating-point type"
    np.save(tmp_path / "cplx.npy", np.zeros((C, 4, 4), np.complex64))
    bad["cplx.npy"] = "dtype complex64 is not a floating-point type"
    np.save(tmp_path / "chan.npy", np.zeros((C + 1, 4, 4), np.float32))
    bad["chan.npy"] = "17 channels .* trunk_dim is 16"
    np.save(tmp_path / "nhwc.npy", np.zeros((4, 4, C), np.float32))
    bad["nhwc.npy"] = "looks like NHWC: pass --layout NHWC"
    np.save(tmp_path / "flat.npy", np.zeros((C, 16), np.float32))
    bad["flat.npy"] = r"shape \(16, 16\) is not \[C, H, W\] or \[B, C, H, W\]"
    (tmp_path / "junk.npy").write_bytes(b"this is not numpy")
    bad["junk.npy"] = "not a .npy file"
    np.save(tmp_path / "cut.npy", np.zeros((C, 8, 8), np.float32))
    data = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:len(data) // 2])
    bad["cut.npy"] = "unreadable .npy data"
    np.save(tmp_path / "tiny.npy", np.zeros((C, 1, 3), np.float32))
    bad["tiny.npy"] = "level 3 .* needs a grid of at least 2x2"
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    bad["obj.npy"] = "dtype object is not a floating-point type"
    return bad


def test_bad_single_files(ck, tmp_path, capsys):
    path, _ = ck
    bad = _bad_inputs(tmp_path)
    for name, reason in bad.items():
        out = tmp_path / (name + ".npz")
        assert _run("--weights", path, "--input", tmp_path / name, "--out", out) == 1, name
        err = capsys.readouterr().err
        assert f"error: {tmp_path / name}: " in err, err
        assert re.search(reason, err), (name, err)
        assert not out.exists()
    _no_temp_files(tmp_path)


def test_missing_input_and_weights(ck, tmp_path, capsys):
    path, _ = ck
    assert _run("--weights", path, "--input", tmp_path / "nope.npy", "--out", tmp_path / "o.npz") == 1
    assert f"{tmp_path / 'nope.npy'}: no such file" in capsys.readouterr().err
    np.save(tmp_path / "a.npy", _x((C, 3, 3)))
    assert _run("--weights", tmp_path / "w.safetensors", "--input", tmp_path / "a.npy", "--out",
                tmp_path / "o.npz") == 1
    assert "w.safetensors: no such checkpoint file" in capsys.readouterr().err
    (tmp_path / "broken.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}      ")
    assert _run("--weights", tmp_path / "broken.safetensors", "--input", tmp_path / "a.npy",
                "--out", tmp_path / "o.npz") == 1
    assert "broken.safetensors: cannot load the neck" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_folder_mode(ck, tmp_path, capsys):
    path, w = ck
    src = tmp_path / "in"
    src.mkdir()
    good = {"a": _x((C, 6, 6), 10), "b": _x((2, C, 4, 5), 11), "c": _x((C, 6, 6), 12),
            "e": _x((C, 4, 5), 13)}
    for k, v in good.items():
        np.save(src / f"{k}.npy", v)
    np.save(src / "d.npy", np.zeros((C, 6, 6), np.int64))  # bad, in the middle
    (src / "notes.txt").write_text("ignored")
    (src / "sub.npy").mkdir()  # a folder named like a file: ignored
    out = tmp_path / "out"
    assert _run("--weights", path, "--input", src, "--out", out) == 1  # d failed
    for k, v in good.items():
        _check_npz(out / f"{k}.npz", w, v)
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "b.npz", "c.npz", "e.npz"]
    err = capsys.readouterr().err
    assert f"error: {src / 'd.npy'}: dtype int64" in err
    # shapes (1,6,6) (2,4,5) (1,4,5): three compiles for five files, not one per change of shape
    assert f"5 files: 4 written to {out}, 1 failed; compiled 3 shape(s)" in err
    assert "\r" not in err  # stderr is not a terminal: no progress bar
    # all good: exit status 0
    (src / "d.npy").unlink()
    assert _run("--weights", path, "--input", src, "--out", out) == 0


def test_folder_mode_errors(ck, tmp_path, capsys):
    path, _ = ck
    (tmp_path / "empty").mkdir()
    assert _run("--weights", path, "--input", tmp_path / "empty", "--out", tmp_path / "o") == 1
    assert "no .npy files" in capsys.readouterr().err
    src = tmp_path / "in"
    src.mkdir()
    np.save(src / "a.npy", _x((C, 3, 3)))
    (tmp_path / "file").write_text("x")
    assert _run("--weights", path, "--input", src, "--out", tmp_path / "file") == 1
    assert "is not a folder" in capsys.readouterr().err


def test_failed_write_leaves_nothing(ck, tmp_path, monkeypatch):
    path, _ = ck
    np.save(tmp_path / "a.npy", _x((C, 4, 4)))
    real = np.savez

    def half_then_fail(f, **arrays):
        real(f, **arrays)
        raise OSError("disk full")

    monkeypatch.setattr(runner.np, "savez", half_then_fail)
    from sam3neck import Neck
    with Neck(path) as neck:
        with pytest.raises(OSError, match="disk full"):
            runner.run_file(neck, tmp_path / "a.npy", tmp_path / "a.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
    monkeypatch.setattr(runner.np, "savez", real)
    assert _run("--weights", path, "--input", tmp_path / "a.npy", "--out", tmp_path / "a.npz") == 0


def test_progress_bar():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    s = Tty()
    bar = runner.Progress(3, s)
    assert bar.enabled
    bar.update(0, "a.npy")
    bar.update(1, "b.npy")
    bar.message("error: b.npy: bad")
    bar.update(3)
    bar.close()
    text = s.getvalue()
    assert text.count("\r") >= 4 and text.endswith("\n")
    assert "[" + "-" * 24 + "] 0/3   0%  a.npy" in text
    assert "[" + "#" * 8 + "-" * 16 + "] 1/3  33%" in text and "eta" in text
    assert "\nerror: b.npy: bad\n" in text.replace("\r", "\n")
    assert "[" + "#" * 24 + "] 3/3 100%" in text
    plain = io.StringIO()
    bar = runner.Progress(3, plain)
    assert not bar.enabled
    bar.update(1, "x")
    bar.message("only this")
    bar.close()
    assert plain.getvalue() == "only this\n"


def test_png_single_and_folder(ck, tmp_path):
    path, _ = ck
    x = _x((2, C, 5, 4), 20)
    np.save(tmp_path / "batch.npy", x)
    png = tmp_path / "p.png"
    assert _run("--weights", path, "--input", tmp_path / "batch.npy", "--out", tmp_path / "b.npz",
                "--levels", "0,2", "--png", png) == 0
    (w, h, color), pixels = decode_png(png.read_bytes())
    assert color == 2
    with np.load(tmp_path / "b.npz") as z:
        want = picture.neck_picture(x[0], [(0, 4.0, z["level0"][0]), (2, 1.0, z["level2"][0])],
                                    title="batch.npy  (image 1 of 2)")
    np.testing.assert_array_equal(pixels, want)  # the first image, exactly as drawn from the outputs

    # a folder: the first file that ran is drawn (a.npy fails, so b.npy)
    src = tmp_path / "in"
    src.mkdir()
    np.save(src / "a.npy", np.zeros((C, 6, 4), np.int16))
    np.save(src / "b.npy", _x((C, 6, 4), 22))
    np.save(src / "c.npy", _x((C, 3, 3), 23))
    png = tmp_path / "f.png"
    assert _run("--weights", path, "--input", src, "--out", tmp_path / "o", "--png", png) == 1
    with np.load(tmp_path / "o" / "b.npz") as z:
        want = picture.neck_picture(np.load(src / "b.npy"),
                                    [(i, 4.0 / 2**i, z[f"level{i}"]) for i in range(4)],
                                    title="b.npy")
    np.testing.assert_array_equal(decode_png(png.read_bytes())[1], want)


def test_png_nhwc_draws_the_input_channels_first(ck, tmp_path):
    path, _ = ck
    x = _x((4, 6, C), 30)
    np.save(tmp_path / "n.npy", x)
    png = tmp_path / "n.png"
    assert _run("--weights", path, "--input", tmp_path / "n.npy", "--out", tmp_path / "n.npz",
                "--layout", "NHWC", "--levels", "2", "--png", png) == 0
    with np.load(tmp_path / "n.npz") as z:
        want = picture.neck_picture(x.transpose(2, 0, 1), [(2, 1.0, z["level2"])], title="n.npy")
    np.testing.assert_array_equal(decode_png(png.read_bytes())[1], want)


def test_python_dash_m_entry_point(ck, tmp_path):
    path, w = ck
    x = _x((C, 3, 4), 40)
    np.save(tmp_path / "m.npy", x)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(runner.__file__))] + env.get("PYTHONPATH", "").split(os.pathsep))
    r = subprocess.run([sys.executable, "-m", "sam3neck", "run", "--weights", str(path), "--input",
                        str(tmp_path / "m.npy"), "--out", str(tmp_path / "m.npz"), "--levels", "2"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    _check_npz(tmp_path / "m.npz", w, x, levels=(2,))
    r = subprocess.run([sys.executable, "-m", "sam3neck", "run", "--weights", str(path)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "--input" in r.stderr  # argparse: a usage error
