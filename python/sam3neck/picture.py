"""Pictures of a neck run, drawn with matplotlib (the `viz` extra: `pip install 'sam3neck[viz]'`).

What `sam3neck run --png FILE` draws: for the input and each computed level of one image, the L2
norm over channels at every pixel as a viridis heat map with its own colour bar (each panel is
scaled from its own min to its max), titled ("input 72x72", "level 0  x4  288x288"), side by side
under a title naming the file. Non-finite values are drawn in magenta.

Nothing here computes the neck; the arrays come from the library. Only `channel_norm` and
`panels` work without matplotlib.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ._atomic import atomic_writer
from ._extras import require

__all__ = ["channel_norm", "panels", "figure", "write_png"]

#: What a missing matplotlib is reported as needed for.
FEATURE = "drawing a picture (sam3neck run --png)"


def channel_norm(x: np.ndarray) -> np.ndarray:
    """The L2 norm over the channel axis of a [C, h, w] array: float64 [h, w]."""
    a = np.asarray(x)
    if a.ndim != 3:
        raise ValueError(f"expected [C, h, w], got shape {a.shape}")
    a = a.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt(np.einsum("chw,chw->hw", a, a))


def panels(x: np.ndarray, levels: Sequence[Tuple[int, float, np.ndarray]]) -> List[Tuple[str, np.ndarray]]:
    """(title, channel norm [h, w]) for the input x [C, H, W] and each (level, scale, features
    [d, h, w]) of `levels`, in that order."""
    xa = np.asarray(x)
    if xa.ndim != 3:
        raise ValueError(f"x must be [C, H, W], got shape {xa.shape}")
    out = [(f"input {xa.shape[1]}x{xa.shape[2]}", channel_norm(xa))]
    for level, scale, feats in levels:
        f = np.asarray(feats)
        out.append((f"level {level}  x{scale:g}  {f.shape[1]}x{f.shape[2]}", channel_norm(f)))
    return out


def figure(x: np.ndarray, levels: Sequence[Tuple[int, float, np.ndarray]], title: Optional[str] = None):
    """The matplotlib Figure of one image's run (see the module's description): one heat map and
    colour bar per panel of `panels(x, levels)`. Needs matplotlib (no pyplot, no display)."""
    require("matplotlib", "viz", FEATURE)
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    items = panels(x, levels)
    cmap = colormaps["viridis"].with_extremes(bad="magenta")
    fig = Figure(figsize=(3.4 * len(items), 3.9), layout="constrained")
    for ax, (name, values) in zip(fig.subplots(1, len(items), squeeze=False)[0], items):
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.75, label="L2 norm over channels")
    if title:
        fig.suptitle(title)
    return fig


def write_png(path: Union[str, "os.PathLike[str]"], fig, dpi: int = 100) -> None:
    """Saves `fig` as a PNG at `path`, atomically (nothing half-written is ever left there)."""
    with atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
