"""`python -m sam3neck run`: single files, folders, errors (bad .npy headers and sizes among them),
atomic outputs, progress display, --png, positional arguments and exit statuses. Needs the native
library (like test_neck.py), tqdm and matplotlib (the progress and viz extras)."""

import argparse
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from sam3neck import checkpoint, picture, reference, runner
from sam3neck.__main__ import main

TOL = reference.TOLERANCE["default"]
POS_TOL = reference.POSITION_TOLERANCE
C, D = 16, 8


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(path, C, D, seed=7)
    return path, checkpoint.canonical(checkpoint.load_safetensors(path), prefix=checkpoint.DEFAULT_PREFIX)


def _x(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _run(*argv):
    return main(["run", *[str(a) for a in argv]])


def _check_npz(path, weights, x, layout="NCHW", levels=(0, 1, 2, 3), with_pos=False, tol=TOL):
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
            assert err <= tol, f"level {i}: {err:.2e}"
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
    rc = _run(
        "--weights",
        path,
        "--input",
        tmp_path / "g.npy",
        "--out",
        tmp_path / "g.npz",
        "--layout",
        "nhwc",
        "--levels",
        "3,1",
        "--with-pos",
        "--precision",
        "strict",
        "--threads",
        "1",
    )
    assert rc == 0
    _check_npz(tmp_path / "g.npz", w, x, "NHWC", (1, 3), with_pos=True)


def test_precision_fast(ck, tmp_path):
    path, w = ck
    x = _x((2, C, 5, 6), 12)
    np.save(tmp_path / "p.npy", x)
    assert (
        _run("--weights", path, "--input", tmp_path / "p.npy", "--out", tmp_path / "p.npz", "--precision", "fast") == 0
    )
    _check_npz(tmp_path / "p.npz", w, x, tol=reference.TOLERANCE["fast"])
    with pytest.raises(SystemExit) as e:  # an unknown mode is a usage error naming the three
        _run("--weights", path, "--input", tmp_path / "p.npy", "--out", tmp_path / "q.npz", "--precision", "turbo")
    assert e.value.code == 2
    assert not (tmp_path / "q.npz").exists()


@pytest.mark.parametrize("command", ["run", "demo"])
def test_precision_help_names_every_mode_and_bound(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse's line breaks undone
    assert "--precision {default,strict,fast}" in text
    for mode in ("default", "strict", "fast"):
        bound = f"{reference.TOLERANCE[mode]:.0e}".replace("e-0", "e-")
        assert re.search(rf"\b{mode} \((error )?<= {bound}\b", text), (mode, bound, text)
    assert "bfloat16 products" in text


def test_out_is_a_folder(ck, tmp_path):
    path, w = ck
    x = _x((C, 4, 4), 3)
    np.save(tmp_path / "h.npy", x)
    (tmp_path / "o").mkdir()
    assert _run("--weights", path, "--input", tmp_path / "h.npy", "--out", tmp_path / "o") == 0
    _check_npz(tmp_path / "o" / "h.npz", w, x)


def test_sam2_neck_and_prefix(ck, tmp_path):
    path, _ = ck
    w2 = checkpoint.canonical(checkpoint.load_safetensors(path), "sam2_convs", checkpoint.DEFAULT_PREFIX)
    x = _x((C, 4, 6), 4)
    np.save(tmp_path / "s.npy", x)
    assert (
        _run(
            "--weights",
            path,
            "--input",
            tmp_path / "s.npy",
            "--out",
            tmp_path / "s.npz",
            "--neck",
            "sam2",
            "--prefix",
            checkpoint.DEFAULT_PREFIX,
        )
        == 0
    )
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
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    bad["cut.npy"] = (
        r"truncated or bad header: shape \(16, 8, 8\) of float32 needs 4096 bytes of data, but the file holds only 1984"
    )
    np.save(tmp_path / "tiny.npy", np.zeros((C, 1, 3), np.float32))
    bad["tiny.npy"] = "level 3 .* needs a grid of at least 2[x×]2"
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
    assert (
        _run("--weights", tmp_path / "w.safetensors", "--input", tmp_path / "a.npy", "--out", tmp_path / "o.npz") == 1
    )
    assert "w.safetensors: no such checkpoint file" in capsys.readouterr().err
    (tmp_path / "broken.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}      ")
    assert (
        _run("--weights", tmp_path / "broken.safetensors", "--input", tmp_path / "a.npy", "--out", tmp_path / "o.npz")
        == 1
    )
    assert "broken.safetensors: cannot load the neck" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_folder_mode(ck, tmp_path, capsys):
    path, w = ck
    src = tmp_path / "in"
    src.mkdir()
    good = {"a": _x((C, 6, 6), 10), "b": _x((2, C, 4, 5), 11), "c": _x((C, 6, 6), 12), "e": _x((C, 4, 5), 13)}
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


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_with_tqdm():
    # tqdm is a test dependency (the progress extra): imported, not skipped
    import tqdm  # noqa: F401

    s = Tty()
    bar = runner.Progress(3, s)
    assert bar.enabled and bar.bar is not None
    bar.update(0, "a.npy")
    bar.update(1, "b.npy")
    bar.message("error: b.npy: bad")
    bar.update(3)
    bar.close()
    text = s.getvalue()
    assert "\r" in text and "error: b.npy: bad\n" in text
    assert "3/3" in text and "100%" in text  # tqdm's count and percentage
    assert "a.npy" in text and "b.npy" in text


def test_progress_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    s = Tty()
    bar = runner.Progress(3, s)
    assert bar.enabled and bar.bar is None
    bar.update(0, "a.npy")
    bar.update(1, "b.npy")
    bar.message("error: b.npy: bad")
    bar.update(3)
    bar.close()
    assert s.getvalue() == ("sam3neck run: 1/3 files done\nerror: b.npy: bad\nsam3neck run: 3/3 files done\n")
    plain = io.StringIO()  # not a terminal: only messages
    bar = runner.Progress(3, plain)
    assert not bar.enabled
    bar.update(1, "x")
    bar.message("only this")
    bar.close()
    assert plain.getvalue() == "only this\n"


def test_folder_progress_on_a_terminal(ck, tmp_path):
    path, _ = ck
    src = tmp_path / "in"
    src.mkdir()
    for k in "ab":
        np.save(src / f"{k}.npy", _x((C, 4, 4)))
    args = argparse.Namespace(
        weights=str(path),
        input=str(src),
        out=str(tmp_path / "o"),
        input_pos=None,
        out_pos=None,
        neck="sam3",
        prefix=None,
        levels=[0],
        layout="NCHW",
        threads=0,
        precision="default",
        with_pos=False,
        png=None,
    )
    s = Tty()
    assert runner.run_cli(args, stderr=s) == 0
    assert "2/2" in s.getvalue() and "2 files: 2 written" in s.getvalue()


def _norm(a):
    """L2 norm over axis 0, by a loop over channels (not picture.channel_norm)."""
    total = np.zeros(a.shape[1:], np.float64)
    for c in range(a.shape[0]):
        total += a[c].astype(np.float64) ** 2
    return np.sqrt(total)


def _capture_figures(monkeypatch):
    figures = []
    real = picture.figure

    def keep(*a, **k):
        fig = real(*a, **k)
        figures.append(fig)
        return fig

    monkeypatch.setattr(picture, "figure", keep)
    return figures


def _check_figure(fig, png, title, arrays):
    """The figure drawn into png: the title, one heat map per (name, [C, h, w]) in arrays with
    exactly the channel norm of that array, each with a colour bar, and below each its principal
    components as RGB (the levels in one basis: picture.pca_rgb of them together)."""
    import matplotlib.image

    from sam3neck import picture

    assert fig._suptitle.get_text() == title
    shown = [ax for ax in fig.axes if ax.images and ax.get_title()]
    heat, rgb = shown[: len(arrays)], shown[len(arrays) :]
    assert [ax.get_title() for ax in heat] == [name for name, _ in arrays]
    for ax, (name, a) in zip(heat, arrays):
        np.testing.assert_allclose(np.ma.getdata(ax.images[0].get_array()), _norm(a), rtol=1e-12)
    want = picture.pca_rgb([arrays[0][1]]) + picture.pca_rgb([a for _, a in arrays[1:]])
    assert len(rgb) == len(arrays)
    for ax, w in zip(rgb, want):
        np.testing.assert_allclose(ax.images[0].get_array(), w, atol=1e-12)
    assert len(fig.axes) == 3 * len(arrays)  # a colour bar per heat map
    img = matplotlib.image.imread(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and img.ndim == 3
    # 3.4 inches a panel across, two rows of 3.6 (picture.figure)
    assert abs(img.shape[1] / img.shape[0] - 3.4 * len(arrays) / 7.2) < 0.05
    assert len(np.unique(img.reshape(-1, img.shape[2]), axis=0)) > 50


def test_png_single_and_folder(ck, tmp_path, monkeypatch):
    path, _ = ck
    figures = _capture_figures(monkeypatch)
    x = _x((2, C, 5, 4), 20)
    np.save(tmp_path / "batch.npy", x)
    png = tmp_path / "p.png"
    assert (
        _run(
            "--weights",
            path,
            "--input",
            tmp_path / "batch.npy",
            "--out",
            tmp_path / "b.npz",
            "--levels",
            "0,2",
            "--png",
            png,
        )
        == 0
    )
    with np.load(tmp_path / "b.npz") as z:  # the first image, exactly as drawn from the outputs
        _check_figure(
            figures[-1],
            png,
            "batch.npy  (image 1 of 2)",
            [("input 5x4", x[0]), ("level 0  x4  20x16", z["level0"][0]), ("level 2  x1  5x4", z["level2"][0])],
        )

    # a folder: the first file that ran is drawn (a.npy fails, so b.npy)
    src = tmp_path / "in"
    src.mkdir()
    np.save(src / "a.npy", np.zeros((C, 6, 4), np.int16))
    np.save(src / "b.npy", _x((C, 6, 4), 22))
    np.save(src / "c.npy", _x((C, 3, 3), 23))
    png = tmp_path / "f.png"
    assert _run("--weights", path, "--input", src, "--out", tmp_path / "o", "--png", png) == 1
    with np.load(tmp_path / "o" / "b.npz") as z:
        sizes = ["24x16", "12x8", "6x4", "3x2"]
        _check_figure(
            figures[-1],
            png,
            "b.npy",
            [("input 6x4", np.load(src / "b.npy"))]
            + [(f"level {i}  x{4.0 / 2**i:g}  {sizes[i]}", z[f"level{i}"]) for i in range(4)],
        )


def test_png_nhwc_draws_the_input_channels_first(ck, tmp_path, monkeypatch):
    path, _ = ck
    figures = _capture_figures(monkeypatch)
    x = _x((4, 6, C), 30)
    np.save(tmp_path / "n.npy", x)
    png = tmp_path / "n.png"
    assert (
        _run(
            "--weights",
            path,
            "--input",
            tmp_path / "n.npy",
            "--out",
            tmp_path / "n.npz",
            "--layout",
            "NHWC",
            "--levels",
            "2",
            "--png",
            png,
        )
        == 0
    )
    with np.load(tmp_path / "n.npz") as z:
        _check_figure(
            figures[-1], png, "n.npy", [("input 4x6", x.transpose(2, 0, 1)), ("level 2  x1  4x6", z["level2"])]
        )


def test_png_without_matplotlib_names_the_extra(ck, tmp_path, monkeypatch, capsys):
    path, _ = ck
    np.save(tmp_path / "a.npy", _x((C, 4, 4)))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert _run("--weights", path, tmp_path / "a.npy", tmp_path / "a.npz", "--png", tmp_path / "a.png") == 1
    err = capsys.readouterr().err
    assert "needs matplotlib" in err and "pip install 'sam3neck[viz]'" in err
    assert not (tmp_path / "a.npz").exists() and not (tmp_path / "a.png").exists()  # nothing ran


def test_python_dash_m_entry_point(ck, tmp_path):
    path, w = ck
    x = _x((C, 3, 4), 40)
    np.save(tmp_path / "m.npy", x)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(runner.__file__))] + env.get("PYTHONPATH", "").split(os.pathsep)
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sam3neck",
            "run",
            "--weights",
            str(path),
            "--input",
            str(tmp_path / "m.npy"),
            "--out",
            str(tmp_path / "m.npz"),
            "--levels",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    _check_npz(tmp_path / "m.npz", w, x, levels=(2,))
    r = subprocess.run(
        [sys.executable, "-m", "sam3neck", "run", "--weights", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 2 and "--input" in r.stderr  # argparse: a usage error


# ------------------------------------------------------------------------------------------------
# .npy headers that lie: every claimed size is checked against the file before anything is read
# ------------------------------------------------------------------------------------------------


def _npy(path, header, data=b"", version=(1, 0), length=None):
    """A .npy file written byte by byte: magic, version, header length (`length` if given, else
    the header's), the header text (a Python dict literal) and `data`."""
    text = header.encode("latin1")
    text += b" " * (-(len(text) + 1 + (10 if version[0] == 1 else 12)) % 64) + b"\n"
    n = len(text) if length is None else length
    size = n.to_bytes(2 if version[0] == 1 else 4, "little")
    path.write_bytes(b"\x93NUMPY" + bytes(version) + size + text + data)


def _lying_inputs(tmp_path):
    """{name: expected message} for files whose header or size is wrong."""
    bad = {}
    # the case: a header claiming a huge shape over a few bytes of data (once a MemoryError)
    _npy(
        tmp_path / "huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1024, 100000, 100000), }", b"\0" * 16
    )
    bad["huge.npy"] = (
        r"truncated or bad header: shape \(1024, 100000, 100000\) of float32 needs "
        r"40960000000000 bytes of data, but the file holds only 16 after its header"
    )
    _npy(tmp_path / "neg.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (16, -4, 4), }", b"\0" * 64)
    bad["neg.npy"] = r"impossible shape \(16, -4, 4\) in the .npy header \(negative size\)"
    _npy(tmp_path / "overflow.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (16, 4294967296, 4294967296), }")
    bad["overflow.npy"] = r"impossible shape \(16, 4294967296, 4294967296\) .* would need 2.36e\+21 bytes"
    _npy(
        tmp_path / "hlen.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 2, 2), }",
        b"\0" * 256,
        version=(2, 0),
        length=0xFFFFFFF0,
    )
    bad["hlen.npy"] = r"bad .npy header: it claims 4294967280 bytes of header, but the file has only \d+"
    _npy(tmp_path / "keys.npy", "{'descr': '<f4', 'fortran_order': False, }", b"\0" * 64)
    bad["keys.npy"] = r"bad .npy header: Header does not contain the correct keys"
    _npy(tmp_path / "syntax.npy", "{'descr': '<f4', 'shape': (16, 2", b"\0" * 64)
    bad["syntax.npy"] = r"bad .npy header: cannot parse it \(TokenError"
    _npy(
        tmp_path / "version.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 1, 1), }",
        b"\0" * 64,
        version=(9, 0),
    )
    bad["version.npy"] = r"bad .npy header: format version 9.0"
    (tmp_path / "short.npy").write_bytes(b"\x93NUMPY\x01\x00\x76")
    bad["short.npy"] = r"bad .npy header: the file ends inside the header \(9 bytes\)"
    _npy(tmp_path / "long.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 2, 2), }", b"\0" * 260)
    bad["long.npy"] = r"4 bytes after the data that shape \(16, 2, 2\) of float32 describes \(256 bytes\)"
    np.save(tmp_path / "u8.npy", np.zeros((C, 4, 4), np.uint8))
    bad["u8.npy"] = r"dtype uint8 is not a floating-point type"
    return bad


def test_lying_headers_single_files(ck, tmp_path, capsys):
    path, _ = ck
    for name, reason in _lying_inputs(tmp_path).items():
        assert _run("--weights", path, tmp_path / name, tmp_path / "o.npz") == 1, name
        err = capsys.readouterr().err
        assert re.search(f"error: {re.escape(str(tmp_path / name))}: {reason}", err), (name, err)
        assert "Traceback" not in err and not (tmp_path / "o.npz").exists()


def test_too_large_for_memory(ck, tmp_path, capsys, monkeypatch):
    path, _ = ck
    np.save(tmp_path / "big.npy", _x((C, 4, 4)))  # 1024 bytes of data
    monkeypatch.setattr(runner, "memory_bytes", lambda: 1000)
    assert _run("--weights", path, tmp_path / "big.npy", tmp_path / "big.npz") == 1
    assert (
        f"error: {tmp_path / 'big.npy'}: too large: 1024 bytes of data, more than this machine's memory (1000 bytes)"
    ) in capsys.readouterr().err
    monkeypatch.setattr(runner, "memory_bytes", lambda: 1024)
    assert _run("--weights", path, tmp_path / "big.npy", tmp_path / "big.npz") == 0


def test_folder_bad_files_first_good_ones_still_run(ck, tmp_path, capsys):
    path, w = ck
    src = tmp_path / "in"
    src.mkdir()
    bad = _lying_inputs(src)  # all sort before the good ones
    cut = np.zeros((C, 8, 8), np.float32)
    np.save(src / "cut.npy", cut)
    (src / "cut.npy").write_bytes((src / "cut.npy").read_bytes()[:-100])
    bad["cut.npy"] = r"truncated or bad header: shape \(16, 8, 8\) of float32 needs 4096 bytes"
    good = {"x1": _x((C, 5, 4), 50), "x2": np.asfortranarray(_x((C, 5, 4), 51)), "x3": _x((2, C, 3, 3), 52)}
    for k, v in good.items():
        np.save(src / f"{k}.npy", v)
    out = tmp_path / "out"
    assert _run("--weights", path, src, out) == 1
    err = capsys.readouterr().err
    for name, reason in bad.items():
        assert re.search(f"error: {re.escape(str(src / name))}: {reason}", err), (name, err)
    for k, v in good.items():
        _check_npz(out / f"{k}.npz", w, np.ascontiguousarray(v))
    assert sorted(p.name for p in out.iterdir()) == ["x1.npz", "x2.npz", "x3.npz"]
    n = len(bad) + len(good)
    assert f"{n} files: 3 written to {out}, {len(bad)} failed" in err and "Traceback" not in err


def test_run_file_reports_memory_errors_per_file(ck, tmp_path, capsys, monkeypatch):
    """A MemoryError while running one file (a real shortage, not a lying header) is that file's
    failure; the next file still runs."""
    path, w = ck
    src = tmp_path / "in"
    src.mkdir()
    np.save(src / "a.npy", _x((C, 4, 4), 60))
    np.save(src / "b.npy", _x((C, 4, 4), 61))
    real = runner.read_features

    def short_of_memory_for_a(p, *a, **k):
        if os.path.basename(p) == "a.npy":
            raise MemoryError()
        return real(p, *a, **k)

    monkeypatch.setattr(runner, "read_features", short_of_memory_for_a)
    assert _run("--weights", path, src, tmp_path / "out") == 1
    assert f"error: {src / 'a.npy'}: out of memory" in capsys.readouterr().err
    _check_npz(tmp_path / "out" / "b.npz", w, np.load(src / "b.npy"))


# ------------------------------------------------------------------------------------------------
# arguments and exit statuses
# ------------------------------------------------------------------------------------------------


def test_positional_input_and_output(ck, tmp_path, capsys):
    path, w = ck
    x = _x((C, 4, 5), 70)
    np.save(tmp_path / "p.npy", x)
    assert _run("--weights", path, tmp_path / "p.npy", tmp_path / "p.npz") == 0
    _check_npz(tmp_path / "p.npz", w, x)
    assert _run(tmp_path / "p.npy", "--weights", path, "--out", tmp_path / "q.npz") == 0  # mixed
    _check_npz(tmp_path / "q.npz", w, x)
    assert _run("--weights", path, "--output", tmp_path / "r.npz", "--input", tmp_path / "p.npy") == 0
    _check_npz(tmp_path / "r.npz", w, x)
    capsys.readouterr()
    for argv, message in [
        (
            ["--weights", path, tmp_path / "p.npy", tmp_path / "s.npz", "--input", tmp_path / "p.npy"],
            "INPUT given twice",
        ),
        (
            ["--weights", path, tmp_path / "p.npy", tmp_path / "s.npz", "--out", tmp_path / "t.npz"],
            "OUTPUT given twice",
        ),
        (["--weights", path, tmp_path / "p.npy"], "required: OUTPUT (or --out)"),
        (["--weights", path], "required: INPUT (or --input)"),
        (["--weights", path, "a", "b", "c"], "unrecognized arguments: c"),
    ]:
        with pytest.raises(SystemExit) as e:
            _run(*argv)
        assert e.value.code == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "s.npz").exists() and not (tmp_path / "t.npz").exists()


def test_version_and_usage_exit_statuses(capsys):
    import sam3neck

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"sam3neck {sam3neck.__version__}\n"
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main([]) == 2
    assert "exit status:" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# --input-dtype, --output-dtype, --output-layout
# ------------------------------------------------------------------------------------------------


def _neck_outputs(path, x4, layout="NCHW", **io):
    """The Levels of Neck on x4 (already of the input type) with the given I/O options."""
    from sam3neck import Neck

    with Neck(path) as neck:
        b, h, w = (x4.shape[0], *x4.shape[2:]) if layout == "NCHW" else x4.shape[:3]
        neck.compile(h, w, batch=b, layout=layout, **io)
        return neck.run(x4)


def test_run_float16_in_bfloat16_sequence_out(ck, tmp_path, capsys):
    from sam3neck import dtypes

    path, w = ck
    x = _x((C, 5, 3), 40)
    np.save(tmp_path / "f.npy", x)
    out = tmp_path / "f.npz"
    assert (
        _run(
            "--weights",
            path,
            tmp_path / "f.npy",
            out,
            "--input-dtype",
            "float16",
            "--output-dtype",
            "bfloat16",
            "--output-layout",
            "SEQUENCE",
            "--with-pos",
        )
        == 0
    )
    err = capsys.readouterr().err
    assert f"note: {tmp_path / 'f.npy'}: float32 rounded to float16" in err
    assert "level0 [240, 8]" in err  # (4*5)*(4*3) tokens of d=8, no batch axis (3-D input)
    x16 = x.astype(np.float16)[None]
    want = _neck_outputs(path, x16, input_dtype="float16", output_dtype="bfloat16", output_layout="sequence")
    ref = reference.forward(w, x16.astype(np.float32), output_layout="sequence")
    with np.load(out) as z:
        assert sorted(z.files) == sorted([f"level{i}" for i in range(4)] + [f"pos{i}" for i in range(4)] + ["note"])
        assert "uint16 bit patterns" in str(z["note"]) and "<< 16" in str(z["note"])
        for lv, (feat, pos) in zip(want, ref):
            got = z[f"level{lv.level}"]
            assert got.dtype == np.uint16 and got.shape == (feat.shape[0], feat.shape[2])
            np.testing.assert_array_equal(got, lv.features.view(np.uint16)[:, 0])
            np.testing.assert_array_equal(z[f"pos{lv.level}"], lv.pos.view(np.uint16)[:, 0])
            wide = (got.astype(np.uint32) << 16).view(np.float32)  # the note's one line
            assert reference.normalised_error(wide, feat[:, 0]) <= reference.OUTPUT_TOLERANCE["bfloat16"]
            np.testing.assert_array_equal(wide, dtypes.to_float32(got))


def test_run_bfloat16_bits_in_float16_nhwc_out(ck, tmp_path, capsys):
    from sam3neck import dtypes

    path, w = ck
    x = _x((2, C, 4, 6), 41)
    bits = dtypes.to_bfloat16_bits(x)
    np.save(tmp_path / "b.npy", bits)
    out = tmp_path / "b.npz"
    assert (
        _run(
            "--weights",
            path,
            tmp_path / "b.npy",
            out,
            "--input-dtype",
            "bfloat16",
            "--output-dtype",
            "float16",
            "--output-layout",
            "nhwc",
            "--levels",
            "1,3",
        )
        == 0
    )
    assert "note:" not in capsys.readouterr().err  # bits taken as they are
    want = _neck_outputs(
        path, bits, input_dtype="bfloat16", output_dtype="float16", output_layout="NHWC", levels=(1, 3)
    )
    with np.load(out) as z:
        assert sorted(z.files) == ["level1", "level3"]
        for lv in want:
            got = z[f"level{lv.level}"]
            assert got.dtype == np.float16 and got.shape == (2, 8, 12, D)[:1] + lv.features.shape[1:]
            np.testing.assert_array_equal(got, lv.features)
    # a uint16 file is bfloat16 bits only with --input-dtype bfloat16
    assert _run("--weights", path, tmp_path / "b.npy", out) == 1
    assert "dtype uint16 is not a floating-point type" in capsys.readouterr().err
    np.save(tmp_path / "i.npy", bits.view(np.int16))
    assert _run("--weights", path, tmp_path / "i.npy", out, "--input-dtype", "bfloat16") == 1
    assert "(or uint16 bfloat16 bits)" in capsys.readouterr().err


def test_run_io_options_are_checked(ck, tmp_path, capsys):
    path, _ = ck
    np.save(tmp_path / "f.npy", _x((C, 4, 4)))
    for flag, value in [("--input-dtype", "float64"), ("--output-dtype", "int8"), ("--output-layout", "tokens")]:
        with pytest.raises(SystemExit) as e:
            _run("--weights", path, tmp_path / "f.npy", tmp_path / "o.npz", flag, value)
        assert e.value.code == 2
        assert "invalid choice" in capsys.readouterr().err


def test_png_of_a_sequence_bfloat16_run(ck, tmp_path, monkeypatch):
    path, _ = ck
    figures = _capture_figures(monkeypatch)
    x = _x((C, 5, 4), 42)
    np.save(tmp_path / "s.npy", x)
    png = tmp_path / "s.png"
    assert (
        _run(
            "--weights",
            path,
            tmp_path / "s.npy",
            tmp_path / "s.npz",
            "--levels",
            "0,3",
            "--input-dtype",
            "bfloat16",
            "--output-dtype",
            "bfloat16",
            "--output-layout",
            "sequence",
            "--png",
            png,
        )
        == 0
    )
    from sam3neck import dtypes

    with np.load(tmp_path / "s.npz") as z:  # drawn from the outputs, widened and as [d, h, w]
        l0 = dtypes.to_float32(z["level0"]).reshape(20, 16, D).transpose(2, 0, 1)
        l3 = dtypes.to_float32(z["level3"]).reshape(2, 2, D).transpose(2, 0, 1)
        _check_figure(
            figures[-1],
            png,
            "s.npy",
            [
                ("input 5x4", dtypes.to_float32(dtypes.to_bfloat16_bits(x))),
                ("level 0  x4  20x16", l0),
                ("level 3  x0.5  2x2", l3),
            ],
        )
