"""sam3neck.picture: the PNG encoder (decoded back here by hand), the bitmap font, the colormap and
the panel layout. Needs neither the native library nor any imaging package."""

import struct
import zlib

import numpy as np
import pytest

from sam3neck import _atomic, picture


def decode_png(data: bytes):
    """A minimal PNG reader for what encode_png writes (8-bit grey or RGB, filter 0, one or more
    IDAT chunks); checks the signature, every chunk's CRC and the chunk order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"CRC of {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    w, h, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0)
    channels = {0: 1, 2: 3}[color]
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    stride = 1 + w * channels
    assert len(raw) == h * stride
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride)
    assert np.all(rows[:, 0] == 0), "filter type 0 on every row"
    pixels = rows[:, 1:].reshape(h, w, channels)
    return (w, h, color), pixels[:, :, 0] if channels == 1 else pixels


def test_png_round_trip_rgb():
    px = np.zeros((3, 2, 3), np.uint8)
    px[0, 0] = (255, 0, 0)
    px[1, 1] = (0, 255, 0)
    px[2, 0] = (0, 0, 255)
    px[2, 1] = (1, 2, 3)
    data = picture.encode_png(px)
    (w, h, color), back = decode_png(data)
    assert (w, h, color) == (2, 3, 2)
    np.testing.assert_array_equal(back, px)
    # the IHDR of a 2 x 3 RGB image, byte for byte
    assert data[8:33] == (b"\x00\x00\x00\x0dIHDR" + struct.pack(">IIBBBBB", 2, 3, 8, 2, 0, 0, 0)
                          + struct.pack(">I", zlib.crc32(b"IHDR" + struct.pack(">IIBBBBB", 2, 3, 8, 2, 0, 0, 0))))


def test_png_round_trip_grey_and_large():
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    (w, h, color), back = decode_png(picture.encode_png(px, level=1))
    assert (w, h, color) == (53, 37, 0)
    np.testing.assert_array_equal(back, px)


def test_png_argument_checks():
    with pytest.raises(TypeError, match="uint8"):
        picture.encode_png(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        picture.encode_png(np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError, match="size"):
        picture.encode_png(np.zeros((0, 2, 3), np.uint8))


def test_write_png_is_atomic(tmp_path, monkeypatch):
    px = np.full((4, 5, 3), 9, np.uint8)
    path = tmp_path / "a.png"
    picture.write_png(path, px)
    assert decode_png(path.read_bytes())[1][0, 0, 0] == 9
    # a failure while writing leaves the old file and no temporary file
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(_atomic.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        picture.write_png(path, np.zeros((4, 5, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    assert decode_png(path.read_bytes())[1][0, 0, 0] == 9


def test_font_glyphs():
    assert all(g.shape == (9, 5) and g.dtype == bool for g in picture.GLYPHS.values())
    needed = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,:;-+=_/|()[]%x"
    assert not [c for c in needed if c not in picture.GLYPHS]
    # no two characters share a bitmap (else a label could read two ways)
    seen = {}
    for ch, g in picture.GLYPHS.items():
        key = g.tobytes()
        assert key not in seen, f"{ch!r} and {seen.get(key)!r} look the same"
        seen[key] = ch
    assert not picture.GLYPHS[" "].any()
    assert picture.GLYPHS["p"][7:].any() and not picture.GLYPHS["b"][7:].any()  # descenders


def test_draw_text_pixels():
    img = np.zeros((12, 20), np.uint8)
    end = picture.draw_text(img, "1.", 1, 2, color=255)
    assert end == 1 + 2 * 6 - 1
    one = picture.GLYPHS["1"]
    np.testing.assert_array_equal(img[2:11, 1:6] == 255, one)
    np.testing.assert_array_equal(img[2:11, 7:12] == 255, picture.GLYPHS["."])
    assert not img[:, 12:].any() and not img[:2].any()
    # scale 2: each font pixel a 2x2 square; clipped at the border without error
    big = np.zeros((30, 30, 3), np.uint8)
    picture.draw_text(big, "7", 0, 0, color=(1, 2, 3), scale=2)
    np.testing.assert_array_equal(big[:18:2, :10:2, 0] == 1, picture.GLYPHS["7"])
    np.testing.assert_array_equal(big[1:18:2, 1:10:2, 2] == 3, picture.GLYPHS["7"])
    picture.draw_text(big, "8888", 25, 25, scale=2)
    picture.draw_text(big, "8", -3, -3)
    assert picture.text_size("ab", 2) == ((2 * 6 - 1) * 2, 18)
    # a character the font lacks is a box, not a gap
    box = np.zeros((9, 5), np.uint8)
    picture.draw_text(box, "\u00e9", 0, 0, color=1)
    assert box[0].all() and box[6].all() and box[:7, 0].all()


def test_colormap():
    ends = picture.colormap(np.array([0.0, 1.0]))
    np.testing.assert_array_equal(ends, [[68, 1, 84], [253, 231, 37]])  # viridis' ends
    np.testing.assert_array_equal(picture.colormap(np.array([-5.0, 7.0])), ends)  # clipped
    mid = picture.colormap(np.array([0.5, 1 / 16]))
    np.testing.assert_array_equal(mid[0], [38, 130, 142])
    np.testing.assert_array_equal(mid[1], [70, 20, 102])  # halfway between the first two samples
    np.testing.assert_array_equal(picture.colormap(np.array([np.nan]))[0], picture.NONFINITE_COLOR)
    ramp = picture.colormap(np.linspace(0, 1, 200)).astype(float)
    lum = ramp @ [0.2126, 0.7152, 0.0722]
    assert np.all(np.diff(lum) >= -0.5)  # perceptual: lightness never goes down


def test_channel_norm_and_panel():
    x = np.zeros((2, 2, 3), np.float32)
    x[0, 0, 0], x[1, 0, 0] = 3, 4
    x[1, 1, 2] = -2
    np.testing.assert_allclose(picture.channel_norm(x), [[5, 0, 0], [0, 0, 2]])
    p = picture.Panel("t", [[0.0, 1.0], [np.nan, 2.0]])
    c = p.colours()
    np.testing.assert_array_equal(c[0, 0], [68, 1, 84])
    np.testing.assert_array_equal(c[1, 1], [253, 231, 37])
    np.testing.assert_array_equal(c[1, 0], picture.NONFINITE_COLOR)
    assert p.subtitle() == "0 .. 2  1 NaN/Inf"
    assert picture.Panel("c", np.full((2, 2), 7.0)).colours()[0, 0].tolist() == [68, 1, 84]


def test_compose_layout():
    a = picture.Panel("input 4x4", np.arange(16.0).reshape(4, 4))
    b = picture.Panel("level 0  x4  16x16", np.ones((16, 16)))
    img = picture.compose([a, b], title="T", min_side=32, max_side=64)
    assert img.dtype == np.uint8 and img.ndim == 3
    # every panel drawn at the largest one's size (16 -> 32 at an integer zoom of 2), nearest:
    # find panel a's top-left corner by its darkest colour and check its blocks are 8x8
    dark = np.all(img == [68, 1, 84], axis=2)
    ys, xs = np.nonzero(dark)
    y0, x0 = ys.min(), xs.min()
    assert dark[y0:y0 + 8, x0:x0 + 8].all() and not dark[y0 + 8, x0] and not dark[y0, x0 + 8]
    yellow = np.all(img == [253, 231, 37], axis=2)
    yy, xx = np.nonzero(yellow[y0:y0 + 32])
    assert (yy.max() - yy.min() + 1, xx.min()) == (8, x0 + 24)  # a's last value, bottom right
    # large panels zoom down by an integer factor
    big = picture.compose([picture.Panel("x", np.zeros((300, 150)))], max_side=128)
    dark = np.all(big == [68, 1, 84], axis=2)
    ys, xs = np.nonzero(dark)
    y0, x0 = ys.min(), xs.min()
    assert dark[y0:y0 + 100, x0:x0 + 50].all() and not dark[y0 + 100, x0] and not dark[y0, x0 + 50]


def test_neck_picture_labels():
    x = np.ones((3, 6, 4), np.float32)
    lv = [(0, 4.0, np.ones((2, 24, 16))), (3, 0.5, np.ones((2, 3, 2)))]
    img = picture.neck_picture(x, lv)
    assert img.shape[1] > 3 * 24 and img.shape[0] > 24
    with pytest.raises(ValueError, match="C, H, W"):
        picture.neck_picture(np.ones((6, 4)), lv)
