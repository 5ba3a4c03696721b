/// The pieces every Winograd conv of the plan shares: the weight transform, and per block of
/// tiles the input transform, the α² products and the output transform. A block's pieces run on
/// one worker (single-threaded BLAS) so its working set stays in that core's cache.
import CKernels

/// The α² transformed weight blocks of a Winograd conv (cin × cout each; several convs' blocks one
/// after another), stored in the layout its product code reads: row-major for OpenBLAS, packed
/// for the micro-kernels (`GemmBackend`). Only one form is kept.
package struct WinogradBlocks: Sendable {
    let storage: [Float]
    let blockFloats: Int
    let cin: Int, cout: Int
    let kernel: Int32?

    init(_ u: [Float], cin: Int, cout: Int, gemm: GemmBackend) {
        self.cin = cin
        self.cout = cout
        let blocks = u.count / (cin * cout)
        guard case let .packed(k) = gemm else {
            (storage, blockFloats, kernel) = (u, cin * cout, nil)
            return
        }
        let size = sam3neck_sgemm_packed_b_floats(cin, cout)
        var packed = [Float](repeating: 0, count: blocks * size)
        u.withUnsafeBufferPointer { src in
            packed.withUnsafeMutableBufferPointer { dst in
                for b in 0..<blocks {
                    sam3neck_sgemm_pack_b(cin, cout, src.baseAddress! + b * cin * cout, cout, 0, dst.baseAddress! + b * size)
                }
            }
        }
        (storage, blockFloats, kernel) = (packed, size, k)
    }

    /// The products of one block of `n` tiles: `prod[ξ] = v[ξ] · U[first + ξ]` for ξ < α².
    func products(_ tile: WinogradTile, n: Int, bt: Int, first: Int = 0, _ s: Winograd.Scratch) {
        let cin = cin, cout = cout
        storage.withUnsafeBufferPointer { u in
            for xi in 0..<tile.alpha * tile.alpha {
                let b = u.baseAddress! + (first + xi) * blockFloats
                if let kernel {
                    let status = sam3neck_sgemm(kernel, n, cout, cin, s.v + xi * bt * cin, cin, 0, b, nil, 0,
                                                s.prod + xi * bt * cout, cout, s.gemm)
                    precondition(status == 0, "sam3neck_sgemm: \(status)")  // arguments are the plan's own
                } else {
                    Blas.sgemm(m: n, n: cout, k: cin, a: s.v + xi * bt * cin, lda: cin, b: b, ldb: cout,
                               c: s.prod + xi * bt * cout, ldc: cout)
                }
            }
        }
    }
}

enum Winograd {
    /// U_ξ[i][o] = (G k Gᵀ)[ξ] for kernels `k` given as (cout·cin) × r² (PyTorch order [o][i][ky][kx]),
    /// stored as α² blocks of cin × cout (the products' right-hand sides). One product of the
    /// Kronecker matrix (G ⊗ G, α² × r²) with all kernels, in double, rounded once.
    static func transformWeights(_ kernels: [Double], cout: Int, cin: Int, tile: WinogradTile) -> [Float] {
        let a = tile.alpha, a2 = a * a, r = tile.r, r2 = r * r, g = tile.g, pairs = cout * cin
        precondition(kernels.count == pairs * r2)
        var kron = [Double](repeating: 0, count: a2 * r2)
        for x in 0..<a { for y in 0..<a { for m in 0..<r { for n in 0..<r {
            kron[(x * a + y) * r2 + m * r + n] = g[x][m] * g[y][n]
        } } } }
        var product = [Double](repeating: 0, count: a2 * pairs)
        kron.withUnsafeBufferPointer { k in
            kernels.withUnsafeBufferPointer { w in
                product.withUnsafeMutableBufferPointer { p in
                    Blas.dgemm(transB: true, m: a2, n: pairs, k: r2, a: k.baseAddress!, lda: r2,
                               b: w.baseAddress!, ldb: r2, c: p.baseAddress!, ldc: pairs)
                }
            }
        }
        var u = [Float](repeating: 0, count: a2 * pairs)
        // [ξ][o][i] → [ξ][i][o], in blocks of 16 × 16 so both sides stay in cache.
        u.withUnsafeMutableBufferPointer { dst in
            product.withUnsafeBufferPointer { src in
                for xi in 0..<a2 {
                    let from = src.baseAddress! + xi * pairs, to = dst.baseAddress! + xi * pairs
                    for o0 in stride(from: 0, to: cout, by: 16) {
                        for i0 in stride(from: 0, to: cin, by: 16) {
                            for o in o0..<min(o0 + 16, cout) {
                                for i in i0..<min(i0 + 16, cin) { to[i * cout + o] = Float(from[o * cin + i]) }
                            }
                        }
                    }
                }
            }
        }
        return u
    }

    /// Floats of scratch one worker needs: V (a block's transformed inputs, or `patch` floats
    /// for a fallback), the products M, two tiles of transform temporaries and a zero bias.
    static func scratchPerWorker(tile: WinogradTile, blockTiles bt: Int, cin: Int, cout: Int, patch: Int) -> Int {
        let a2 = tile.alpha * tile.alpha
        return vFloats(tile: tile, blockTiles: bt, cin: cin, patch: patch) + a2 * bt * cout + 2 * a2 * max(cin, cout) + cout
            + gemmFloats(blockTiles: bt, cin: cin, cout: cout)
    }

    /// The packed products' workspace for one block (the largest any kernel needs).
    static func gemmFloats(blockTiles bt: Int, cin: Int, cout: Int) -> Int {
        var args = sam3neck_sgemm_args()
        (args.m, args.n, args.k) = (bt, cout, cin)
        return sam3neck_sgemm_workspace_floats(&args)
    }

    static func vFloats(tile: WinogradTile, blockTiles bt: Int, cin: Int, patch: Int) -> Int {
        max(tile.alpha * tile.alpha * bt * cin, patch)
    }

    /// Splits the output grid of `src` (h × w, or `outputScale`× that for composed convs) into m×m
    /// tiles, checks the frame covers them, and runs `body(scratch, firstTile, count, tilesX)` for
    /// each block of `bt` tiles on the workers, each with its own scratch.
    static func forEachBlock(_ tile: WinogradTile, _ src: PaddedImage, blockTiles bt: Int, cin: Int, cout: Int, patch: Int,
                             scratch: UnsafeMutablePointer<Float>, threads: Int,
                             _ body: (_ s: Scratch, _ t0: Int, _ n: Int, _ tilesX: Int) -> Void) {
        let m = tile.m
        precondition(src.channels == cin && src.pad == 1)
        let tilesY = (src.height + m - 1) / m, tilesX = (src.width + m - 1) / m
        precondition(src.paddedHeight >= m * tilesY + 2 && src.paddedWidth >= m * tilesX + 2)
        let tiles = tilesY * tilesX
        let perWorker = scratchPerWorker(tile: tile, blockTiles: bt, cin: cin, cout: cout, patch: patch)
        // Blocks of at most bt tiles, as many as a multiple of the workers, so none waits at the end.
        let split = BalancedBlocks(tiles, most: bt, workers: threads)
        nonisolated(unsafe) let scratch = scratch
        parallelQueue(split.blocks, threads: threads) { worker, block in
            // The layout of the scratch follows bt, the most a block can hold.
            let s = Scratch(scratch + worker * perWorker, tile: tile, blockTiles: bt, cin: cin, cout: cout, patch: patch)
            let range = split.range(block)
            body(s, range.lowerBound, range.count, tilesX)
        }
    }

    /// One worker's views of its scratch.
    struct Scratch {
        let v: UnsafeMutablePointer<Float>, prod: UnsafeMutablePointer<Float>
        let tmp: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, zeros: UnsafeMutablePointer<Float>
        /// The packed products' workspace.
        let gemm: UnsafeMutablePointer<Float>

        init(_ base: UnsafeMutablePointer<Float>, tile: WinogradTile, blockTiles bt: Int, cin: Int, cout: Int, patch: Int) {
            let a2 = tile.alpha * tile.alpha
            v = base
            prod = v + Winograd.vFloats(tile: tile, blockTiles: bt, cin: cin, patch: patch)
            tmp = prod + a2 * bt * cout
            y = tmp + a2 * max(cin, cout)
            zeros = y + a2 * max(cin, cout)
            zeros.update(repeating: 0, count: cout)
            gemm = zeros + cout
        }
    }

    /// V_ξ[t] = (Bᵀ d B)[ξ] for the α×α input tile at stored (row, column) of `src`, written at
    /// `s.v + (ξ·bt + t)·cin`.
    @inline(__always)
    static func inputTile(_ tile: WinogradTile, _ src: PaddedImage, row: Int, column: Int, t: Int, bt: Int, _ s: Scratch) {
        let a = tile.alpha, c = src.channels, tmp = s.tmp, v = s.v
        for j in 0..<a {  // columns
            tile.inputRows(c, { src.stored(row + $0, column + j) }, { tmp + ($0 * a + j) * c })
        }
        for i in 0..<a {  // rows
            tile.inputRows(c, { tmp + (i * a + $0) * c }, { v + ((i * a + $0) * bt + t) * c })
        }
    }

    /// M_ξ = V_ξ · U_ξ for the block's n tiles.

    /// y[i·m + j][o] = (Aᵀ M A)[i][j] + bias[o] for tile t of the block, into `s.y` (m² × cout).
    /// Returns whether an output is non-finite.
    @inline(__always)
    static func outputTile(_ tile: WinogradTile, t: Int, bt: Int, cout: Int, bias: UnsafePointer<Float>?, _ s: Scratch) -> Bool {
        let a = tile.alpha, m = tile.m, prod = s.prod, tmp = s.tmp, y = s.y
        var nonFinite = false
        for j in 0..<a {  // columns, no bias
            tile.outputRows(cout, { prod + (($0 * a + j) * bt + t) * cout }, { tmp + ($0 * a + j) * cout }, bias: s.zeros, nonFinite: &nonFinite)
        }
        nonFinite = false
        for i in 0..<m {  // rows, with the bias
            tile.outputRows(cout, { tmp + (i * a + $0) * cout }, { y + (i * m + $0) * cout }, bias: bias ?? UnsafePointer(s.zeros), nonFinite: &nonFinite)
        }
        return nonFinite
    }
}

/// 3×3 conv, padding 1, by Winograd F(m×m, 3×3) (`WinogradTile.f2` or `.f4`), from a zero-framed
/// channels-last image into a channel-major (NCHW) output.
///
/// Non-finite values: the transforms mix a whole tile, so one NaN or Inf input can spoil outputs
/// of its tile that PyTorch's direct conv leaves finite. Finite inputs give finite Winograd
/// outputs (barring overflow), and an output that a non-finite input reaches is never finite, so
/// tiles with a non-finite output are recomputed directly (im2col of the tile · the
/// untransformed weights), which matches PyTorch's result.
package struct WinogradConv3x3: Sendable {
    package let tile: WinogradTile
    /// `u[ξ]` is a cin × cout block (ξ = α·row + column of the α×α tile).
    package let u: WinogradBlocks
    /// The weights untransformed, `[(3·ky + kx)·cin + c][o]`, for tiles with non-finite outputs.
    package let direct: [Float]
    package let bias: [Float]
    package let cin: Int, cout: Int
    /// Tiles per block: the M of each product.
    package let blockTiles: Int

    package init(weight: Tensor, bias: Tensor, tile: WinogradTile, blockTiles: Int = 192, gemm: GemmBackend = .openBLAS) {
        cout = weight.shape[0]
        cin = weight.shape[1]
        precondition(weight.shape == [cout, cin, 3, 3] && bias.shape == [cout] && tile.r == 3)
        self.tile = tile
        self.blockTiles = blockTiles
        u = WinogradBlocks(Winograd.transformWeights(weight.data.map(Double.init), cout: cout, cin: cin, tile: tile),
                           cin: cin, cout: cout, gemm: gemm)
        var direct = [Float](repeating: 0, count: 9 * cin * cout)
        for o in 0..<cout {
            for i in 0..<cin {
                for t in 0..<9 { direct[(t * cin + i) * cout + o] = weight.data[(o * cin + i) * 9 + t] }
            }
        }
        self.direct = direct
        self.bias = bias.data
    }

    /// Floats of a tile's im2col patch (m² pixels × 9·cin).
    var patchFloats: Int { tile.m * tile.m * 9 * cin }

    /// Floats of scratch one worker needs.
    package var scratchPerWorker: Int {
        Winograd.scratchPerWorker(tile: tile, blockTiles: blockTiles, cin: cin, cout: cout, patch: patchFloats)
    }

    /// Computes the conv of `src` (pad 1, frame rounded up to whole tiles) into `dst` (`cout × h ×
    /// w` in its layout and type). `scratch` holds `threads · scratchPerWorker` floats.
    package func run(_ src: PaddedImage, into dst: OutputTarget,
                    scratch: UnsafeMutablePointer<Float>, threads: Int) {
        let m = tile.m, h = src.height, w = src.width
        let bt = blockTiles, cin = cin, cout = cout, tile = tile
        nonisolated(unsafe) let dst = dst
        let u = u
        do {
          direct.withUnsafeBufferPointer { directBuf in
            bias.withUnsafeBufferPointer { biasBuf in
                nonisolated(unsafe) let bias = biasBuf.baseAddress!, direct = directBuf.baseAddress!
                Winograd.forEachBlock(tile, src, blockTiles: bt, cin: cin, cout: cout, patch: patchFloats,
                                      scratch: scratch, threads: threads) { s, t0, n, tilesX in
                    for t in 0..<n {
                        Winograd.inputTile(tile, src, row: (t0 + t) / tilesX * m, column: (t0 + t) % tilesX * m, t: t, bt: bt, s)
                    }
                    u.products(tile, n: n, bt: bt, s)
                    for t in 0..<n {
                        let ty = (t0 + t) / tilesX, tx = (t0 + t) % tilesX
                        let y = s.y
                        if Winograd.outputTile(tile, t: t, bt: bt, cout: cout, bias: bias, s) {
                            // Recompute this tile directly: im2col patch (m² × 9·cin, in V's space) · weights.
                            for i in 0..<m {
                                for j in 0..<m {
                                    for tap in 0..<9 {
                                        (s.v + ((i * m + j) * 9 + tap) * cin).update(from: src.stored(m * ty + i + tap / 3, m * tx + j + tap % 3), count: cin)
                                    }
                                }
                            }
                            Blas.sgemm(m: m * m, n: cout, k: 9 * cin, a: s.v, lda: 9 * cin, b: direct, ldb: cout, c: y, ldc: cout)
                            for p in 0..<m * m {
                                for o in 0..<cout { y[p * cout + o] += bias[o] }
                            }
                        }
                        // The valid part of the tile, into the output.
                        dst.store(y, ldy: cout, m: m, rows: min(m, h - m * ty), cols: min(m, w - m * tx), channels: cout,
                                  y0: m * ty, x0: m * tx)
                    }
                }
            }
          }
        }
    }
}
