/// 3×3 conv, padding 1, by Winograd F(m×m, 3×3) (`WinogradTile`): each m×m output tile comes
/// from an α×α input tile as `Y = Aᵀ [Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)] A`, so the element-wise products
/// summed over channels become α² GEMMs of (tiles × cin) · (cin × cout).
///
/// The weight transform is done once, in double. Tiles are processed in blocks, each block's
/// input transform, products (single-threaded BLAS) and output transform done by one worker,
/// so its working set stays in that core's cache; blocks are handed out dynamically.
///
/// Non-finite values: the transforms mix a whole tile, so one NaN or Inf input can spoil outputs
/// of its tile that PyTorch's direct conv leaves finite. Finite inputs give finite Winograd
/// outputs (barring overflow), and an output that a non-finite input reaches is never finite, so
/// the output transform flags tiles with a non-finite output and those are recomputed directly
/// (im2col of the tile · the untransformed weights), which matches PyTorch's result.
public struct WinogradConv3x3: Sendable {
    public let tile: WinogradTile
    /// `u[ξ]` is a cin × cout block (ξ = α·row + column of the α×α tile).
    public let u: [Float]
    /// The weights untransformed, `[(3·ky + kx)·cin + c][o]`, for tiles with non-finite inputs.
    public let direct: [Float]
    public let bias: [Float]
    public let cin: Int, cout: Int
    /// Tiles per block: the M of each product.
    public let blockTiles: Int

    public init(weight: Tensor, bias: Tensor, tile: WinogradTile, blockTiles: Int = 192) {
        cout = weight.shape[0]
        cin = weight.shape[1]
        precondition(weight.shape == [cout, cin, 3, 3] && bias.shape == [cout])
        self.tile = tile
        self.blockTiles = blockTiles
        // U_ξ[o, i] = Σ_{m,n} G[r][m]·g[o,i][m,n]·G[c][n] for ξ = (r, c): one product of the
        // Kronecker matrix K[ξ][(m,n)] = G[r][m]·G[c][n] (α² × 9) with all kernels (9 × cout·cin), in double.
        let a = tile.alpha, a2 = a * a, g = tile.g, pairs = cout * cin
        var kron = [Double](repeating: 0, count: a2 * 9)
        for r in 0..<a { for c in 0..<a { for m in 0..<3 { for n in 0..<3 {
            kron[(r * a + c) * 9 + m * 3 + n] = g[r][m] * g[c][n]
        } } } }
        let kernels = weight.data.map(Double.init)  // (cout·cin) × 9
        var product = [Double](repeating: 0, count: a2 * pairs)
        kron.withUnsafeBufferPointer { k in
            kernels.withUnsafeBufferPointer { w in
                product.withUnsafeMutableBufferPointer { p in
                    Blas.dgemm(transB: true, m: a2, n: pairs, k: 9, a: k.baseAddress!, lda: 9,
                               b: w.baseAddress!, ldb: 9, c: p.baseAddress!, ldc: pairs)
                }
            }
        }
        // Stored as u[ξ][i][o] (cin × cout blocks, the products' right-hand sides).
        var u = [Float](repeating: 0, count: a2 * pairs)
        for xi in 0..<a2 {
            for o in 0..<cout {
                for i in 0..<cin { u[(xi * cin + i) * cout + o] = Float(product[xi * pairs + o * cin + i]) }
            }
        }
        self.u = u
        self.bias = bias.data
        var direct = [Float](repeating: 0, count: 9 * cin * cout)
        for o in 0..<cout {
            for i in 0..<cin {
                for t in 0..<9 { direct[(t * cin + i) * cout + o] = weight.data[(o * cin + i) * 9 + t] }
            }
        }
        self.direct = direct
    }

    /// Floats of scratch one worker needs: V and M for a block, and two tiles of transform temporaries.
    public var scratchPerWorker: Int {
        let a2 = tile.alpha * tile.alpha
        // V (also a tile's im2col patch), M, two tiles of temporaries, zeros (a bias of none).
        return vFloats + a2 * blockTiles * cout + 2 * a2 * max(cin, cout) + cout
    }

    /// Floats of the V region: a block's transformed inputs, or one tile's im2col patch.
    var vFloats: Int { max(tile.alpha * tile.alpha * blockTiles, 9 * tile.m * tile.m) * cin }

    /// Computes the conv of `src` (pad 1, frame rounded up to whole tiles) into `dst`
    /// (`cout × h × w`, channel-major). `scratch` holds `threads · scratchPerWorker` floats.
    public func run(_ src: PaddedImage, into dst: UnsafeMutablePointer<Float>,
                    scratch: UnsafeMutablePointer<Float>, threads: Int) {
        let m = tile.m, a = tile.alpha, a2 = a * a
        precondition(src.channels == cin && src.pad == 1)
        let h = src.height, w = src.width
        let tilesY = (h + m - 1) / m, tilesX = (w + m - 1) / m
        precondition(src.paddedHeight >= m * tilesY + 2 && src.paddedWidth >= m * tilesX + 2)
        let tiles = tilesY * tilesX
        let bt = blockTiles, cin = cin, cout = cout, perWorker = scratchPerWorker, tile = tile, vFloats = vFloats
        nonisolated(unsafe) let dst = dst, scratch = scratch
        u.withUnsafeBufferPointer { uBuf in
          direct.withUnsafeBufferPointer { directBuf in
            bias.withUnsafeBufferPointer { biasBuf in
                nonisolated(unsafe) let u = uBuf.baseAddress!, bias = biasBuf.baseAddress!, direct = directBuf.baseAddress!
                parallelQueue((tiles + bt - 1) / bt, threads: threads) { worker, block in
                    let v = scratch + worker * perWorker
                    let prod = v + vFloats
                    let tmp = prod + a2 * bt * cout
                    let tmp2 = tmp + a2 * max(cin, cout)
                    let zeros = tmp2 + a2 * max(cin, cout)
                    zeros.update(repeating: 0, count: cout)
                    let t0 = block * bt, n = min(bt, tiles - t0)
                    for t in 0..<n {
                        let row = (t0 + t) / tilesX * m, column = (t0 + t) % tilesX * m
                        // Columns, then rows: V = Bᵀ d B, written as V_ξ[t] at v + (ξ·bt + t)·cin.
                        for j in 0..<a {
                            tile.inputRows(cin, { src.stored(row + $0, column + j) }, { tmp + ($0 * a + j) * cin })
                        }
                        for i in 0..<a {
                            tile.inputRows(cin, { tmp + (i * a + $0) * cin }, { v + ((i * a + $0) * bt + t) * cin })
                        }
                    }
                    for xi in 0..<a2 {
                        Blas.sgemm(m: n, n: cout, k: cin, a: v + xi * bt * cin, lda: cin,
                                   b: u + xi * cin * cout, ldb: cout, c: prod + xi * bt * cout, ldc: cout)
                    }
                    for t in 0..<n {
                        let ty = (t0 + t) / tilesX, tx = (t0 + t) % tilesX
                        // Y = Aᵀ M A + bias, into tmp2[i][j] (m × m vectors of cout).
                        // Aᵀ on columns (no bias yet), then on rows with the bias.
                        var nonFinite = false
                        for j in 0..<a {
                            tile.outputRows(cout, { prod + (($0 * a + j) * bt + t) * cout }, { tmp + ($0 * a + j) * cout }, bias: zeros, nonFinite: &nonFinite)
                        }
                        nonFinite = false
                        for i in 0..<m {
                            tile.outputRows(cout, { tmp + (i * a + $0) * cout }, { tmp2 + (i * m + $0) * cout }, bias: bias, nonFinite: &nonFinite)
                        }
                        let rows = min(m, h - m * ty), cols = min(m, w - m * tx)
                        if nonFinite {
                            // Recompute this tile directly: im2col patch (m² × 9·cin, in V's space) · weights.
                            for i in 0..<m {
                                for j in 0..<m {
                                    for tap in 0..<9 {
                                        (v + ((i * m + j) * 9 + tap) * cin).update(from: src.stored(m * ty + i + tap / 3, m * tx + j + tap % 3), count: cin)
                                    }
                                }
                            }
                            Blas.sgemm(m: m * m, n: cout, k: 9 * cin, a: v, lda: 9 * cin, b: direct, ldb: cout, c: tmp2, ldc: cout)
                            for p in 0..<m * m {
                                for o in 0..<cout { tmp2[p * cout + o] += bias[o] }
                            }
                        }
                        // The valid part of the tile, into the channel-major output.
                        for o in 0..<cout {
                            let plane = dst + o * h * w + (m * ty) * w + m * tx
                            for i in 0..<rows {
                                for j in 0..<cols { plane[i * w + j] = tmp2[(i * m + j) * cout + o] }
                            }
                        }
                    }
                }
            }
          }
        }
    }
}
