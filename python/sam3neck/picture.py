"""Pictures of a neck run without any imaging library: a PNG encoder (zlib + struct), a 5x7 bitmap
font, a viridis-like colormap and a side-by-side panel layout.

What `python -m sam3neck run --png FILE` draws: for the input and each computed level, the L2 norm
over channels at every pixel as a heat map, every panel resized (nearest) to one size, side by
side, each labelled ("input 72x72", "level 0  x4  288x288") with the range of its values.

Nothing here computes the neck; the arrays come from the library.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ._atomic import atomic_writer

__all__ = [
    "encode_png",
    "write_png",
    "GLYPHS",
    "text_size",
    "draw_text",
    "colormap",
    "channel_norm",
    "Panel",
    "compose",
    "neck_picture",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# ------------------------------------------------------------------------------------------------
# PNG
# ------------------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(pixels: np.ndarray, level: int = 6) -> bytes:
    """The PNG image (8 bits per sample, no interlace) of `pixels`: uint8 [H, W] (grey) or
    [H, W, 3] (RGB). Every row uses filter type 0 (none); the data is one zlib stream in one IDAT
    chunk. `level` is the zlib compression level."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise TypeError(f"pixels must be uint8, got {a.dtype}")
    if a.ndim == 2:
        color_type, channels = 0, 1
    elif a.ndim == 3 and a.shape[2] == 3:
        color_type, channels = 2, 3
    else:
        raise ValueError(f"pixels must be [H, W] or [H, W, 3], got shape {a.shape}")
    h, w = a.shape[:2]
    if h < 1 or w < 1 or h > 2**31 - 1 or w > 2**31 - 1:
        raise ValueError(f"image size must be 1..2^31-1 on each side, got {w}x{h}")
    rows = np.ascontiguousarray(a).reshape(h, w * channels)
    raw = np.zeros((h, 1 + w * channels), dtype=np.uint8)  # column 0: filter type 0 per row
    raw[:, 1:] = rows
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + _chunk(b"IEND", b""))


def write_png(path: Union[str, "os.PathLike[str]"], pixels: np.ndarray) -> None:
    """Writes encode_png(pixels) to `path` atomically (a temporary file renamed into place)."""
    data = encode_png(pixels)
    with atomic_writer(path) as f:
        f.write(data)


# ------------------------------------------------------------------------------------------------
# 5x7 bitmap font
# ------------------------------------------------------------------------------------------------

# Each glyph: 7 rows of 5 columns, "#" = ink, sitting on the baseline; g j p q y , ; have two more
# rows below it (descenders). Drawn in a 6x10 cell (one column and row of space).
_FONT_TEXT = {
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "###.. #..#. #...# #...# #...# #..#. ###..",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "a": "..... ..... .###. ....# .#### #...# .####",
    "b": "#.... #.... #.##. ##..# #...# #...# ####.",
    "c": "..... ..... .###. #.... #.... #...# .###.",
    "d": "....# ....# .##.# #..## #...# #...# .####",
    "e": "..... ..... .###. #...# ##### #.... .###.",
    "f": "..##. .#..# .#... ###.. .#... .#... .#...",
    "g": "..... ..... .#### #...# #...# #...# .#### ....# .###.",
    "h": "#.... #.... #.##. ##..# #...# #...# #...#",
    "i": "..#.. ..... .##.. ..#.. ..#.. ..#.. .###.",
    "j": "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..",
    "k": "#.... #.... #..#. #.#.. ##... #.#.. #..#.",
    "l": ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "m": "..... ..... ##.#. #.#.# #.#.# #...# #...#",
    "n": "..... ..... #.##. ##..# #...# #...# #...#",
    "o": "..... ..... .###. #...# #...# #...# .###.",
    "p": "..... ..... ####. #...# #...# #...# ####. #.... #....",
    "q": "..... ..... .#### #...# #...# #...# .#### ....# ....#",
    "r": "..... ..... #.##. ##..# #.... #.... #....",
    "s": "..... ..... .#### #.... .###. ....# ####.",
    "t": ".#... .#... ###.. .#... .#... .#..# ..##.",
    "u": "..... ..... #...# #...# #...# #..## .##.#",
    "v": "..... ..... #...# #...# #...# .#.#. ..#..",
    "w": "..... ..... #...# #...# #.#.# #.#.# .#.#.",
    "x": "..... ..... #...# .#.#. ..#.. .#.#. #...#",
    "y": "..... ..... #...# #...# #...# #...# .#### ....# .###.",
    "z": "..... ..... ##### ...#. ..#.. .#... #####",
    " ": "..... ..... ..... ..... ..... ..... .....",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ",": "..... ..... ..... ..... ..... .##.. .##.. ..#.. .#...",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    ";": "..... .##.. .##.. ..... ..... .##.. .##.. ..#.. .#...",
    "-": "..... ..... ..... ##### ..... ..... .....",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    "=": "..... ..... ##### ..... ##### ..... .....",
    "_": "..... ..... ..... ..... ..... ..... #####",
    "/": "..... ....# ...#. ..#.. .#... #.... .....",
    "|": "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    "[": ".###. .#... .#... .#... .#... .#... .###.",
    "]": ".###. ...#. ...#. ...#. ...#. ...#. .###.",
    "%": "##... ##..# ...#. ..#.. .#... #..## ...##",
    "'": "..#.. ..#.. .#... ..... ..... ..... .....",
    "<": "...#. ..#.. .#... #.... .#... ..#.. ...#.",
    ">": ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
    "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
    "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
    "*": "..... ..#.. #.#.# .###. #.#.# ..#.. .....",
}

#: A hollow box, drawn for characters the font does not have.
_MISSING = "##### #...# #...# #...# #...# #...# #####"


def _glyph(text: str) -> np.ndarray:
    rows = text.split()
    if len(rows) not in (7, 9) or any(len(r) != 5 or set(r) - {"#", "."} for r in rows):
        raise ValueError(f"a glyph must be 7 (or 9) rows of 5 '#'/'.' characters, got {text!r}")
    rows += ["....."] * (9 - len(rows))
    return np.array([[c == "#" for c in r] for r in rows], dtype=bool)


#: char -> bool [9, 5] bitmap (rows 7 and 8: descenders).
GLYPHS: Dict[str, np.ndarray] = {ch: _glyph(t) for ch, t in _FONT_TEXT.items()}
_MISSING_GLYPH = _glyph(_MISSING)

GLYPH_W, GLYPH_H = 5, 9
CELL_W, CELL_H = 6, 10  # glyph plus one column / row of spacing


def text_size(text: str, scale: int = 1) -> Tuple[int, int]:
    """(width, height) in pixels of `text` drawn at `scale` (one line; no trailing spacing)."""
    if not text:
        return 0, 0
    return (len(text) * CELL_W - 1) * scale, GLYPH_H * scale


def draw_text(image: np.ndarray, text: str, x: int, y: int,
              color: Union[int, Tuple[int, int, int]] = (0, 0, 0), scale: int = 1) -> int:
    """Draws one line of `text` into image (uint8 [H, W, 3] or [H, W]) with its top-left corner at
    (x, y), each font pixel a scale x scale square; ink outside the image is clipped. Characters
    the font lacks are drawn as a hollow box. Returns the x just after the text."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    h, w = image.shape[:2]
    for ch in text:
        g = GLYPHS.get(ch, _MISSING_GLYPH)
        big = np.repeat(np.repeat(g, scale, axis=0), scale, axis=1)
        y0, x0 = max(y, 0), max(x, 0)
        y1, x1 = min(y + big.shape[0], h), min(x + big.shape[1], w)
        if y1 > y0 and x1 > x0:
            mask = big[y0 - y:y1 - y, x0 - x:x1 - x]
            image[y0:y1, x0:x1][mask] = color
        x += CELL_W * scale
    return x - scale


# ------------------------------------------------------------------------------------------------
# colormap
# ------------------------------------------------------------------------------------------------

#: Nine samples of matplotlib's viridis (at 0, 1/8, ..., 1), interpolated linearly in between:
#: dark purple -> blue -> green -> yellow, lightness increasing monotonically.
VIRIDIS = np.array([
    (68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (110, 206, 88), (253, 231, 37),
], dtype=np.float64)

#: The colour of NaN / ±Inf values in a heat map.
NONFINITE_COLOR = (255, 0, 255)


def colormap(t: np.ndarray, table: np.ndarray = VIRIDIS) -> np.ndarray:
    """uint8 RGB [..., 3] for values t in [0, 1] (clipped), interpolated linearly in `table`.
    NaN maps to NONFINITE_COLOR."""
    t = np.asarray(t, dtype=np.float64)
    bad = ~np.isfinite(t)
    u = np.clip(np.where(bad, 0.0, t), 0.0, 1.0) * (len(table) - 1)
    i = np.minimum(np.floor(u).astype(np.int64), len(table) - 2)
    f = (u - i)[..., None]
    rgb = table[i] * (1.0 - f) + table[i + 1] * f
    out = np.rint(rgb).astype(np.uint8)
    out[bad] = NONFINITE_COLOR
    return out


# ------------------------------------------------------------------------------------------------
# panels
# ------------------------------------------------------------------------------------------------

def channel_norm(x: np.ndarray) -> np.ndarray:
    """The L2 norm over the channel axis of a [C, h, w] array: float64 [h, w]."""
    a = np.asarray(x)
    if a.ndim != 3:
        raise ValueError(f"expected [C, h, w], got shape {a.shape}")
    a = a.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt(np.einsum("chw,chw->hw", a, a))


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-2):
        return f"{v:.2e}"
    return f"{v:.3g}"


class Panel:
    """One heat map with its label: `title` (e.g. "level 0  x4  288x288") and `values` [h, w]."""

    def __init__(self, title: str, values: np.ndarray):
        """values: any 2-D array of real numbers (NaN/Inf allowed, drawn in NONFINITE_COLOR)."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.size == 0:
            raise ValueError(f"panel {title!r}: values must be a non-empty [h, w], got {v.shape}")
        self.title = title
        self.values = v

    def subtitle(self) -> str:
        """"|v| 0.12 .. 3.4" (plus the count of non-finite values, if any)."""
        ok = np.isfinite(self.values)
        bad = int(self.values.size - ok.sum())
        if not ok.any():
            return f"all {bad} non-finite"
        text = f"{_fmt(float(self.values[ok].min()))} .. {_fmt(float(self.values[ok].max()))}"
        return text + (f"  {bad} NaN/Inf" if bad else "")

    def colours(self) -> np.ndarray:
        """uint8 [h, w, 3]: values scaled from their finite min (dark) to max (yellow)."""
        v = self.values
        ok = np.isfinite(v)
        if not ok.any():
            return colormap(np.full(v.shape, np.nan))
        lo, hi = float(v[ok].min()), float(v[ok].max())
        t = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
        return colormap(np.where(ok, t, np.nan))


def _resize_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = (np.arange(height) * img.shape[0]) // height
    cols = (np.arange(width) * img.shape[1]) // width
    return img[rows][:, cols]


BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)
GREY = (110, 110, 110)


def compose(panels: Sequence[Panel], title: Optional[str] = None,
            panel_size: Optional[Tuple[int, int]] = None, min_side: int = 160, max_side: int = 320,
            scale: int = 2) -> np.ndarray:
    """Lays the panels out side by side: uint8 RGB [H, W, 3].

    Every heat map is resized (nearest) to one size: `panel_size` (h, w), else the largest panel's
    size zoomed by an integer factor (up or down) into about min_side..max_side. Above each: its title and value
    range (font scale `scale`); above all: `title`; below: a colour bar and a note on the scaling.
    """
    if not panels:
        raise ValueError("no panels to draw")
    if panel_size is None:
        # the largest panel at an integer zoom (k x up, or 1/k down) so that its pixels stay
        # regular (no moire from uneven nearest-neighbour steps)
        bh, bw = max(panels, key=lambda p: p.values.size).values.shape
        side = max(bh, bw)
        if side < min_side:
            k = -(-min_side // side)
            panel_size = (bh * k, bw * k)
        elif side > max_side:
            k = -(-side // max_side)
            panel_size = (max(1, bh // k), max(1, bw // k))
        else:
            panel_size = (bh, bw)
    ph, pw = panel_size
    margin, gap, line = 12, 28, CELL_H * scale
    texts = [(p.title, p.subtitle()) for p in panels]
    col_w = [max(pw, text_size(t, scale)[0], text_size(s, scale)[0]) for t, s in texts]
    note = "per-pixel L2 norm over channels; each panel scaled from its own min to its max"
    note_w = text_size(note, 1)[0]
    bar_w = 200
    top = margin + (line + 6 if title else 0)
    label_h = 2 * line + 4
    width = max(margin * 2 + sum(col_w) + gap * (len(panels) - 1),
                margin * 2 + max(note_w, bar_w + 2 * CELL_W * 4),
                margin * 2 + (text_size(title, scale)[0] if title else 0))
    height = top + label_h + ph + 10 + 12 + 4 + CELL_H + margin
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    if title:
        draw_text(img, title, margin, margin, INK, scale)
    x = margin
    for p, (t, s), cw in zip(panels, texts, col_w):
        draw_text(img, t, x, top, INK, scale)
        draw_text(img, s, x, top + line, GREY, scale)
        y = top + label_h
        img[y:y + ph, x:x + pw] = _resize_nearest(p.colours(), ph, pw)
        x += cw + gap
    # colour bar: "min" [gradient] "max", then the note
    y = top + label_h + ph + 10
    x = draw_text(img, "min", margin, y + 2, INK, 1) + 4
    img[y:y + 12, x:x + bar_w] = colormap(np.linspace(0.0, 1.0, bar_w))[None, :, :]
    draw_text(img, "max", x + bar_w + 4, y + 2, INK, 1)
    draw_text(img, note, margin, y + 12 + 4, GREY, 1)
    return img


def neck_picture(x: np.ndarray, levels: Sequence[Tuple[int, float, np.ndarray]],
                 title: Optional[str] = None) -> np.ndarray:
    """The picture of one image's run: x is its input [C, H, W]; levels holds (level, scale,
    features [d, h, w]) per computed level. Returns uint8 RGB [H, W, 3] (see compose)."""
    xa = np.asarray(x)
    if xa.ndim != 3:
        raise ValueError(f"x must be [C, H, W], got shape {xa.shape}")
    panels = [Panel(f"input {xa.shape[1]}x{xa.shape[2]}", channel_norm(xa))]
    for level, scale, feats in levels:
        f = np.asarray(feats)
        panels.append(Panel(f"level {level}  x{scale:g}  {f.shape[1]}x{f.shape[2]}", channel_norm(f)))
    return compose(panels, title=title)
