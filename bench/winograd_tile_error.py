"""Which Winograd tile could the 3x3 convs of levels 1 and 2 use in each precision mode? A float32
emulation in NumPy, at SAM 3's real widths, of F(m x m, 3 x 3) for m = 2, 3, 4 and several point
sets, against the float64 reference conv (issue 12's question: can strict use a bigger tile than
F(2x2, 3x3) and stay at its error?).

    PYTHONPATH=python python3 bench/winograd_tile_error.py WEIGHTS [GRID]

The conv's input is the float64 reference chain up to the conv (dconv_2x2 then conv_1x1 for level
1, conv_1x1 for level 2) on a seeded normal input of GRID x GRID x 1024 (default 12), rounded to
float32 once. The weights are transformed in float64 and rounded once (as the library does at
compile); the input transform, the alpha^2 products (NumPy float32 matmul) and the output
transform run in float32. The printed error is the README's measure, max|out - ref| / max|ref|.
The emulation is not the library's code: its F(2x2, 3x3) and F(4x4, 3x3) errors sit next to the
library's own (`make demo`, README "Accuracy") as the calibration. The transforms are built from
their points by Lavin's construction (A^T rows p^i, G rows p^k / prod(p - q), the point at
infinity last) with B^T solved from the correlation identity, so every tile here is the textbook one.
"""

import sys
from fractions import Fraction

import numpy as np

from sam3neck import reference
from sam3neck.checkpoint import load_safetensors


def transforms(points, m, r=3):
    """A^T (m x alpha), G (alpha x r), B^T (alpha x alpha) of F(m, r) on the finite `points` and infinity."""
    alpha = m + r - 1
    if len(points) != alpha - 1:
        raise ValueError(f"F({m}, {r}) needs {alpha - 1} finite points, got {len(points)}")
    p = [Fraction(x) for x in points]
    at, g = np.zeros((m, alpha)), np.zeros((alpha, r))
    for j, pj in enumerate(p):
        norm = Fraction(1)
        for l, pl in enumerate(p):
            if l != j:
                norm *= pj - pl
        at[:, j] = [float(pj**i) for i in range(m)]
        g[j] = [float(pj**k / norm) for k in range(r)]
    at[m - 1, alpha - 1] = g[alpha - 1, r - 1] = 1
    # sum_j A^T[i, j] G[j, k] B^T[j, l] = [l == i + k] for all i < m, k < r, l < alpha
    rows = np.zeros((m * r * alpha, alpha * alpha))
    rhs = np.zeros(m * r * alpha)
    for n, (i, k, l) in enumerate((i, k, l) for i in range(m) for k in range(r) for l in range(alpha)):
        rows[n, np.arange(alpha) * alpha + l] = at[i] * g[:, k]
        rhs[n] = float(l == i + k)
    bt = np.linalg.lstsq(rows, rhs, rcond=None)[0]
    if not np.allclose(rows @ bt, rhs, atol=1e-12):
        raise ArithmeticError(f"no B^T for points {points}")
    return at, g, bt.reshape(alpha, alpha)


def winograd_conv3x3(z, w, b, m, points):
    """z [H, W, C] float32, w [O, C, 3, 3], b [O] -> [H, W, O], padding 1, by F(m x m, 3 x 3) in float32."""
    at, g, bt = transforms(points, m)
    alpha = m + 2
    h, wd, c = z.shape
    th, tw = -(-h // m), -(-wd // m)
    zp = np.zeros((th * m + 2, tw * m + 2, c), np.float32)
    zp[1 : h + 1, 1 : wd + 1] = z
    u = np.einsum("ak,ockl,bl->abco", g, w, g).astype(np.float32)  # weights: float64, rounded once
    s = zp.strides
    d = np.lib.stride_tricks.as_strided(zp, (th, tw, alpha, alpha, c), (s[0] * m, s[1] * m, s[0], s[1], s[2]))
    bt32, at32 = bt.astype(np.float32), at.astype(np.float32)
    v = np.einsum("ia,yxabc->yxibc", bt32, d)
    v = np.einsum("yxibc,jb->yxijc", v, bt32).reshape(th * tw, alpha, alpha, c)
    prod = np.empty((th * tw, alpha, alpha, w.shape[0]), np.float32)
    for i in range(alpha):
        for j in range(alpha):
            prod[:, i, j] = v[:, i, j] @ u[i, j]
    y = np.einsum("pi,tijo->tpjo", at32, prod)
    y = np.einsum("tpjo,qj->tpqo", y, at32)
    y = y.reshape(th, tw, m, m, -1).transpose(0, 2, 1, 3, 4).reshape(th * m, tw * m, -1)[:h, :wd]
    return y + b.astype(np.float32)


TILES = [
    ("F(2x2, 3x3)", 2, [0, 1, -1]),  # the library's f2 (strict; default on AMX)
    ("F(3x3, 3x3)", 3, [0, 1, -1, Fraction(1, 2)]),
    ("F(3x3, 3x3)", 3, [0, 1, -1, Fraction(-1, 2)]),
    ("F(3x3, 3x3)", 3, [0, 1, -1, 2]),
    ("F(4x4, 3x3)", 4, [0, 1, -1, 2, -2]),  # the library's f4 (default without AMX)
    ("F(4x4, 3x3)", 4, [0, 1, -1, Fraction(1, 2), Fraction(-1, 2)]),
]


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    grid = int(argv[2]) if len(argv) > 2 else 12
    weights = {k: v.astype(np.float64) for k, v in load_safetensors(argv[1]).items()}
    names = [k for k in weights if k.endswith("1.conv_3x3.weight")]
    if not names:
        sys.exit(f"{argv[1]}: no '*1.conv_3x3.weight' tensor (a neck checkpoint in safetensors)")
    prefix = names[0][: -len("1.conv_3x3.weight")]

    def get(name):
        return weights[prefix + name]

    trunk = get("1.dconv_2x2.weight").shape[0]  # [C_in, C_out, 2, 2]: the trunk's channels
    x = np.random.default_rng(1).standard_normal((1, trunk, grid, grid))
    print(f"Winograd F(m x m, 3 x 3) in float32 against float64, {argv[1]}, {grid} x {grid} input")
    print(f"{'level':>5}  {'tile':12} {'points':24} {'products/output':>15}  {'max err':>8}")
    for level in (1, 2):
        y = reference.conv_transpose2x2(x, get("1.dconv_2x2.weight"), get("1.dconv_2x2.bias")) if level == 1 else x
        z = reference.conv2d(y, get(f"{level}.conv_1x1.weight"), get(f"{level}.conv_1x1.bias"))
        w, b = get(f"{level}.conv_3x3.weight"), get(f"{level}.conv_3x3.bias")
        ref = reference.conv2d(z, w, b, pad=1)[0].transpose(1, 2, 0)
        z32 = np.ascontiguousarray(z[0].transpose(1, 2, 0), dtype=np.float32)
        for name, m, points in TILES:
            out = winograd_conv3x3(z32, w, b, m, points)
            err = np.abs(out - ref).max() / np.abs(ref).max()
            shown = "0, " + ", ".join(str(p) for p in points[1:]) + ", inf"
            print(f"{level:>5}  {name:12} {shown:24} {(m + 2) ** 2 / m**2:>15.2f}  {err:8.2e}")


if __name__ == "__main__":
    main(sys.argv)
