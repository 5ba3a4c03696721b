"""Pictures of a neck run, drawn with matplotlib (the `viz` extra: `pip install 'sam3neck[viz]'`).

What `sam3neck run --png FILE` draws, for the input and each computed level of one image, in two
rows under a title naming the file:
- the L2 norm over channels at every pixel, a viridis heat map with its own colour bar (each panel
  scaled from its own min to its max), titled ("input 72x72", "level 0  x4  288x288");
- the view feature-map papers and tools use: the first three principal components of the features
  as red, green and blue (`pca_rgb`). The levels share one basis, fitted on all their pixels at
  once, and one scaling, so the same feature vector has the same colour at every scale; the input
  (other channels) gets its own. Axes count the level's pixels and name its scale.
Non-finite values are drawn in magenta.

Nothing here computes the neck; the arrays come from the library. Only `channel_norm`, `panels`
and `pca_rgb` work without matplotlib.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ._paths import atomic_writer
from ._extras import require

__all__ = ["channel_norm", "panels", "pca_rgb", "figure", "write_png"]

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


#: Pixels per array that fit the principal components (a regular subsample beyond it: the basis
#: is a 3 x C summary; more pixels change it by little and cost an einsum over them).
PCA_FIT_PIXELS = 65536
MAGENTA = (1.0, 0.0, 1.0)


def pca_rgb(arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
    """RGB images [h, w, 3] in [0, 1], one per [C, h, w] array of `arrays` (all with the same C):
    each pixel's C values projected on the first three principal components of all the arrays'
    pixels together (one mean, one basis, each component's sign chosen so that its largest
    coefficient is positive), each component mapped from its 1st to its 99th percentile over all
    the arrays to [0, 1] (clipped). So equal feature vectors get equal colours in every array.
    Pixels with a non-finite value are magenta, and fit nothing. Fewer than three channels or
    components: the missing ones are 0.5 (grey)."""
    if not arrays:
        return []
    mats = []
    for a in arrays:
        a = np.asarray(a)
        if a.ndim != 3 or a.shape[0] != np.asarray(arrays[0]).shape[0]:
            raise ValueError(f"expected [C, h, w] arrays with one C, got shapes {[np.shape(x) for x in arrays]}")
        mats.append(a.reshape(a.shape[0], -1).T.astype(np.float64))  # pixels x C
    finite = [np.isfinite(m).all(axis=1) for m in mats]
    fit = [m[ok][:: max(1, int(ok.sum()) // PCA_FIT_PIXELS)] for m, ok in zip(mats, finite)]
    pool = np.concatenate(fit) if fit else np.zeros((0, mats[0].shape[1]))
    c = mats[0].shape[1]
    out_shape = [np.asarray(a).shape[1:] for a in arrays]
    if len(pool) == 0:
        return [np.broadcast_to(np.array(MAGENTA), s + (3,)).copy() for s in out_shape]
    mean = pool.mean(axis=0)
    centred = pool - mean
    # The top three eigenvectors of the covariance (C x C, C <= a few thousand).
    values, vectors = np.linalg.eigh(centred.T @ centred)
    basis = vectors[:, ::-1][:, : min(3, c)]
    basis = basis * np.where(basis[np.abs(basis).argmax(axis=0), np.arange(basis.shape[1])] < 0, -1.0, 1.0)
    projected = centred @ basis
    lo, hi = np.percentile(projected, 1, axis=0), np.percentile(projected, 99, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    images = []
    for m, ok, shape in zip(mats, finite, out_shape):
        rgb = np.full((m.shape[0], 3), 0.5)
        with np.errstate(invalid="ignore", over="ignore"):
            rgb[:, : basis.shape[1]] = np.clip(((np.where(ok[:, None], m, 0.0) - mean) @ basis - lo) / span, 0.0, 1.0)
        rgb[~ok] = MAGENTA
        images.append(rgb.reshape(shape + (3,)))
    return images


def figure(x: np.ndarray, levels: Sequence[Tuple[int, float, np.ndarray]], title: Optional[str] = None):
    """The matplotlib Figure of one image's run (see the module's description): per panel of
    `panels(x, levels)` a heat map with its colour bar, and below it the principal components as
    RGB (`pca_rgb`: the levels in one basis, the input in its own). Needs matplotlib (no pyplot, no
    display)."""
    require("matplotlib", "viz", FEATURE)
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    items = panels(x, levels)
    cmap = colormaps["viridis"].with_extremes(bad="magenta")
    fig = Figure(figsize=(3.4 * len(items), 7.2), layout="constrained")
    axes = fig.subplots(2, len(items), squeeze=False)
    for ax, (name, values) in zip(axes[0], items):
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.75, label="L2 norm over channels")
    rgbs = pca_rgb([x]) + pca_rgb([f for _, _, f in levels])
    scales = [None] + [scale for _, scale, _ in levels]
    for ax, rgb, scale in zip(axes[1], rgbs, scales):
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title("input: principal components (own basis)" if scale is None else "principal components as RGB")
        unit = "trunk grid" if scale is None else f"scale {scale:g}"
        ax.set_xlabel(f"x (pixels, {unit})")
        ax.set_ylabel(f"y (pixels, {unit})")
    if title:
        fig.suptitle(title)
    return fig


def write_png(path: Union[str, "os.PathLike[str]"], fig, dpi: int = 100) -> None:
    """Saves `fig` as a PNG at `path`, atomically (nothing half-written is ever left there)."""
    with atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
