"""sam3neck.picture: the panels' data, the matplotlib figure drawn from it (titles, colour bars,
the heat maps' values), atomic PNG writing and the message naming the `viz` extra when matplotlib
is missing. Needs matplotlib (a test dependency), not the native library."""

import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from sam3neck import _extras, _paths, picture


def test_channel_norm():
    x = np.zeros((2, 2, 3), np.float32)
    x[0, 0, 0], x[1, 0, 0] = 3, 4
    x[1, 1, 2] = -2
    np.testing.assert_allclose(picture.channel_norm(x), [[5, 0, 0], [0, 0, 2]])
    with pytest.raises(ValueError, match="C, h, w"):
        picture.channel_norm(np.ones((2, 2)))


def test_panels_titles_and_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 4))
    f0, f3 = rng.standard_normal((2, 24, 16)), rng.standard_normal((2, 3, 2))
    got = picture.panels(x, [(0, 4.0, f0), (3, 0.5, f3)])
    assert [t for t, _ in got] == ["input 6x4", "level 0  x4  24x16", "level 3  x0.5  3x2"]
    for (_, v), a in zip(got, (x, f0, f3)):
        np.testing.assert_allclose(v, np.sqrt((a**2).sum(axis=0)), rtol=1e-12)
    with pytest.raises(ValueError, match="C, H, W"):
        picture.panels(np.ones((6, 4)), [])


def test_figure_titles_colour_bars_and_data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 4))
    f = rng.standard_normal((2, 20, 16))
    f[:, 0, 0] = np.nan
    fig = picture.figure(x, [(0, 4.0, f)], title="a.npy")
    assert fig._suptitle.get_text() == "a.npy"
    shown = [ax for ax in fig.axes if ax.images]
    heat, rgb = shown[:2], shown[2:]
    assert [ax.get_title() for ax in heat] == ["input 5x4", "level 0  x4  20x16"]
    assert [ax.get_title() for ax in rgb] == ["input: principal components (own basis)", "principal components as RGB"]
    assert rgb[1].get_xlabel() == "x (pixels, scale 4)" and rgb[0].get_ylabel() == "y (pixels, trunk grid)"
    np.testing.assert_array_equal(rgb[1].images[0].get_array(), picture.pca_rgb([f])[0])
    bars = [ax for ax in fig.axes if not ax.images]
    assert len(bars) == 2 and all("L2 norm" in ax.get_ylabel() for ax in bars)
    shown = heat[1].images[0]
    data = shown.get_array()
    assert data.mask[0, 0] and data.mask.sum() == 1  # the NaN pixel is masked (drawn magenta)
    np.testing.assert_allclose(np.ma.getdata(data)[1:], np.sqrt((f[:, 1:] ** 2).sum(axis=0)))
    # each panel scaled from its own min to its max
    lo, hi = shown.get_clim()
    assert (lo, hi) == (data.min(), data.max())
    assert shown.get_cmap().name.startswith("viridis")
    np.testing.assert_allclose(shown.get_cmap().get_bad(), [1.0, 0.0, 1.0, 1.0])


def test_pca_rgb_one_basis_for_every_level():
    """The levels share one basis and one scaling: a level that is another upsampled (each feature
    vector repeated 2 x 2) gets exactly its colours; values lie in [0, 1]; a non-finite pixel is
    magenta and moves nothing else; the components are the data's principal ones (a level whose
    pixels vary along one direction only shows that variation in red alone)."""
    rng = np.random.default_rng(2)
    f = rng.standard_normal((8, 6, 5))
    up = np.repeat(np.repeat(f, 2, axis=1), 2, axis=2)
    big, small = picture.pca_rgb([up, f])
    assert big.shape == (12, 10, 3) and small.shape == (6, 5, 3)
    np.testing.assert_array_equal(big[::2, ::2], small)
    assert big.min() >= 0 and big.max() <= 1
    g = f.copy()
    g[3, 2, 1] = np.nan
    with_nan, small2 = picture.pca_rgb([g, f])
    np.testing.assert_array_equal(with_nan[2, 1], picture.MAGENTA)
    line = np.zeros((4, 3, 7))
    line[1] = np.arange(21).reshape(3, 7)  # all variation along channel 1
    (rgb,) = picture.pca_rgb([line])
    assert np.ptp(rgb[..., 0]) > 0.9 and np.ptp(rgb[..., 1]) == 0 and np.ptp(rgb[..., 2]) == 0
    assert np.all(np.diff(rgb[..., 0].ravel()) >= 0)  # sign chosen so the component grows with channel 1
    with pytest.raises(ValueError, match="one C"):
        picture.pca_rgb([f, np.ones((3, 2, 2))])


def test_write_png_is_atomic(tmp_path, monkeypatch):
    fig = picture.figure(np.ones((2, 3, 3)), [])
    path = tmp_path / "a.png"
    picture.write_png(path, fig, dpi=50)
    first = path.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).shape[:2] == (round(7.2 * 50), round(3.4 * 50))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(_paths.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        picture.write_png(path, fig, dpi=80)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"] and path.read_bytes() == first


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(_extras.MissingExtraError, match=r"needs matplotlib.*pip install 'sam3neck\[viz\]'"):
        picture.figure(np.ones((2, 3, 3)), [])
    assert picture.panels(np.ones((2, 3, 3)), [])[0][0] == "input 3x3"  # no matplotlib needed


def test_import_needs_only_numpy():
    """Importing the package and its modules (CLI included) loads none of the optional packages."""
    code = (
        "import sys, sam3neck, sam3neck.picture, sam3neck.runner, sam3neck.__main__;"
        "bad = [m for m in ('matplotlib', 'tqdm', 'dask', 'onnx', 'onnxruntime', 'openvino',"
        " 'torch', 'safetensors') if m in sys.modules]; print(bad)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
