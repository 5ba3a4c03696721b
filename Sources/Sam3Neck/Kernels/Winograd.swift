/// The pieces every Winograd conv of the plan shares: the weight transform, and per block of
/// tiles the input transform, the α² products and the output transform. A block's pieces run on
/// one worker (single-threaded BLAS) so its working set stays in that core's cache.
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// The α² transformed weight blocks of a Winograd conv (cin × cout each; several convs' blocks one
/// after another), stored in the layout its product code reads: row-major for OpenBLAS, packed
/// for the micro-kernels (`GemmBackend`), split into bfloat16 halves for the bf16×3 AMX
/// products (`sam3neck_sgemm_pack_b_bf16x3`), or rounded to bfloat16 pairs for the fast mode's
/// products (`sam3neck_sgemm_pack_b_bf16`). Only one form is kept.
package struct WinogradBlocks: Sendable {
    let storage: AlignedFloats
    let blockFloats: Int
    let cin: Int, cout: Int
    let kernel: Int32?
    /// Whether the blocks are held split for the AMX products (`kernel` is the AMX one). There is
    /// no float32 copy to fall back to, so a tile whose transformed input does not split gets NaN
    /// products (`sam3neck_sgemm_run`), a non-finite output, and is recomputed directly, as any
    /// tile with a non-finite output is.
    package var bf16x3: Bool { kernel == Int32(SAM3NECK_SGEMM_AMX_BF16X3) }
    /// Whether the blocks are bfloat16 pairs for the fast mode's products (`kernel` is their code).
    package var bf16: Bool { kernel.map(GemmBackend.isBF16) ?? false }
    /// The rows of the micro-panels the products read the transformed inputs in, written there by
    /// the input transform itself (`Winograd.InputLayout`); 0 where the product code packs its own
    /// (OpenBLAS, the AMX and bfloat16 kernels).
    package var panelRows: Int {
        guard let kernel, !bf16x3, !bf16 else { return 0 }
        return sam3neck_sgemm_a_panel_rows(kernel, 0)
    }

    /// How the blocks are laid out: row-major, or the micro-kernels' panels of 16 columns
    /// (`sam3neck_sgemm_pack_b`'s layout), or, when `refused` is there, split for the AMX products
    /// (`Winograd.transformWeights` splits each band as it is made).
    struct Layout: @unchecked Sendable {
        let blockFloats: Int, packed: Bool
        /// Set by a band that does not split (Inf, NaN, or past bfloat16's range); nil when the
        /// blocks are not split. Unchecked Sendable: the flag is only touched under its lock.
        let refused: Locked<Bool>?
        /// Whether the blocks are bfloat16 pairs (`sam3neck_sgemm_pack_b_bf16_rows` per band).
        var bf16 = false
    }

    /// `blocks` blocks written by `fill` straight into the layout the product code reads
    /// (`fill(layout, storage)`; its zero padding is already in place). `fill` writes every
    /// element through `Winograd.transformWeights`, a band of inputs at a time (bands starting
    /// at multiples of 32 inputs, as the split's tiles do).
    /// `bf16x3`: split the packed blocks for the AMX products when the backend packs and every
    /// value splits (weights with Inf or NaN keep float32; so do CPUs without AVX-512).
    /// `bf16`: the blocks as bfloat16 pairs for that product code (the fast mode), whatever `gemm`.
    init(
        blocks: Int, cin: Int, cout: Int, gemm: GemmBackend, bf16x3 split: Bool = false, bf16: Int32? = nil,
        fill: (Layout, UnsafeMutablePointer<Float>) -> Void
    ) {
        self.cin = cin
        self.cout = cout
        if let bf16 {
            let layout = Layout(
                blockFloats: sam3neck_sgemm_bf16_b_floats(cin, cout), packed: true, refused: nil, bf16: true)
            storage = AlignedFloats(count: blocks * layout.blockFloats, zeroed: false) { fill(layout, $0) }
            (blockFloats, kernel) = (layout.blockFloats, bf16)
            return
        }
        var (packedFloats, kernel): (Int, Int32?) = (cin * cout, nil)
        if case let .packed(k) = gemm { (packedFloats, kernel) = (sam3neck_sgemm_packed_b_floats(cin, cout), k) }
        if split, kernel != nil {
            // Split as the bands are made: the float32 blocks never exist whole. A band that does
            // not split (or a CPU without AVX-512) sends the conv back to float32, made again.
            let layout = Layout(
                blockFloats: sam3neck_sgemm_bf16x3_b_floats(cin, cout), packed: true, refused: Locked(false))
            let made = AlignedFloats(count: blocks * layout.blockFloats, zeroed: false) { fill(layout, $0) }
            if !layout.refused!.withLock({ $0 }) {
                (storage, blockFloats, self.kernel) = (made, layout.blockFloats, Int32(SAM3NECK_SGEMM_AMX_BF16X3))
                return
            }
        }
        let layout = Layout(blockFloats: packedFloats, packed: kernel != nil, refused: nil)
        // The transforms write every element but the packed layout's padding columns (up to a
        // multiple of 64), which the kernels read: those are zeroed.
        storage = AlignedFloats(count: blocks * packedFloats, zeroed: layout.packed && cout % 64 != 0) {
            fill(layout, $0)
        }
        (blockFloats, self.kernel) = (packedFloats, kernel)
    }

    /// The products of one block of `n` tiles, `prod[ξ] = V[ξ] · U[first + ξ]` for ξ < α², a row
    /// of V at a time: `transformRow(x)` writes row x of the block's V (elements (x, y), y < α, at
    /// `s.v + y·xiStride`, `Winograd.InputLayout`), whose α products then run while it is in
    /// L2 (a block's whole V, α² elements of every tile, is ~5 MB at level 0: it went to L3 and
    /// came back, which took ~15% of the stage on Zen 4).
    func products(
        _ tile: WinogradTile, n: Int, bt: Int, first: Int = 0, _ s: Winograd.Scratch,
        transformRow: (_ x: Int) -> Void
    ) {
        let cin = cin, cout = cout, layout = s.layout, alpha = tile.alpha
        // M tile-major, a tile's α² products side by side (`Winograd.Scratch.prod`).
        let u = storage.pointer, ldm = alpha * alpha * cout
        for x in 0..<alpha {
            transformRow(x)
            if layout.panelRows > 0 { layout.zeroPadding(s.v, tiles: n) }
            for y in 0..<alpha {
                let xi = x * alpha + y, v = s.v + y * layout.xiStride
                let b = u + (first + xi) * blockFloats
                if layout.panelRows > 0, let kernel {
                    // The transform wrote V as the micro-panels the kernel reads: nothing to pack.
                    var args = sam3neck_sgemm_args()
                    (args.kernel, args.m, args.n, args.k) = (kernel, n, cout, cin)
                    (args.a_packed, args.packed_b) = (UnsafePointer(v), b)
                    (args.c, args.rs_c, args.cs_c, args.workspace) = (s.prod + xi * cout, ldm, 1, s.gemm)
                    let status = sam3neck_sgemm_run(&args)
                    precondition(status == 0, "sam3neck_sgemm_run: \(status)")  // arguments are the plan's own
                } else if bf16x3 {
                    var args = sam3neck_sgemm_args()
                    args.kernel = Int32(SAM3NECK_SGEMM_AMX_BF16X3)
                    (args.m, args.n, args.k) = (n, cout, cin)
                    (args.a, args.lda, args.packed_b_bf16x3) = (UnsafePointer(v), cin, b)
                    (args.c, args.rs_c, args.cs_c, args.workspace) = (s.prod + xi * cout, ldm, 1, s.gemm)
                    let status = sam3neck_sgemm_run(&args)
                    precondition(status == 0, "sam3neck_sgemm_run: \(status)")  // arguments are the plan's own
                } else if let kernel {
                    let status = sam3neck_sgemm(
                        kernel, n, cout, cin, v, cin, 0, b, nil, 0,
                        s.prod + xi * cout, ldm, s.gemm)
                    precondition(status == 0, "sam3neck_sgemm: \(status)")  // arguments are the plan's own
                } else {
                    Blas.sgemm(
                        m: n, n: cout, k: cin, a: v, lda: cin, b: b, ldb: cout,
                        c: s.prod + xi * cout, ldc: ldm)
                }
            }
        }
    }
}

enum Winograd {
    /// U_ξ[i][o] = (G k Gᵀ)[ξ] for the kernels (i, o) with i in `rows` (a band of the cin inputs),
    /// tap q of kernel (i, o) at `k[q·tapStride + (i − rows.lowerBound)·inStride + o·outStride]`,
    /// written as α² blocks of cin × cout (the products' right-hand sides) from block `first` of
    /// `storage` in `layout` (`WinogradBlocks`): in double, rounded once, by
    /// `sam3neck_winograd_weights` (AVX2 + FMA, sixteen kernels at a time; fastest with outStride 1).
    /// A split layout gets the band made in cache, then split into its rows of the blocks
    /// (`sam3neck_sgemm_pack_b_bf16x3_rows`: `rows` must start at a multiple of 32); a value that
    /// does not split marks the layout refused.
    static func transformWeights(
        _ k: UnsafePointer<Double>, tapStride: Int, inStride: Int, outStride: Int, rows: Range<Int>,
        cin: Int, cout: Int, tile: WinogradTile, into storage: UnsafeMutablePointer<Float>,
        _ layout: WinogradBlocks.Layout, first: Int = 0
    ) {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= cin)
        let g = tile.g.flatMap { $0 }, alpha2 = tile.alpha * tile.alpha
        guard layout.refused != nil || layout.bf16 else {
            sam3neck_winograd_weights(
                Int32(tile.alpha), Int32(tile.r), g, k, tapStride, inStride, outStride,
                rows.lowerBound, rows.count, cin, cout, storage, layout.blockFloats, layout.packed ? 1 : 0, first, 0)
            return
        }
        // Split or bfloat16: the band's α² blocks (rows × cout each, packed on their own: ≤ 1 MB
        // for SAM 3's neck) made in cache, then split or rounded into their rows of the blocks.
        precondition(rows.lowerBound % 32 == 0, "split and bfloat16 bands start at multiples of 32 inputs")
        let bandFloats = sam3neck_sgemm_packed_b_floats(rows.count, cout)
        let band = UnsafeMutablePointer<Float>.allocate(capacity: alpha2 * bandFloats)
        defer { band.deallocate() }
        if cout % 64 != 0 { band.initialize(repeating: 0, count: alpha2 * bandFloats) }  // the padding columns
        sam3neck_winograd_weights(
            Int32(tile.alpha), Int32(tile.r), g, k, tapStride, inStride, outStride,
            0, rows.count, rows.count, cout, band, bandFloats, 1, 0, Int32(SAM3NECK_WEIGHTS_CACHED))
        for xi in 0..<alpha2 {
            let dst = storage + (first + xi) * layout.blockFloats
            if layout.bf16 {
                let status = sam3neck_sgemm_pack_b_bf16_rows(
                    cin, cout, rows.lowerBound, rows.count, band + xi * bandFloats, dst)
                precondition(status == 0, "sam3neck_sgemm_pack_b_bf16_rows: \(status)")  // bands checked above
                continue
            }
            if sam3neck_sgemm_pack_b_bf16x3_rows(cin, cout, rows.lowerBound, rows.count, band + xi * bandFloats, dst)
                != 0
            {
                layout.refused!.withLock { $0 = true }
                return
            }
        }
    }

    /// Floats of scratch one worker needs: V (a block's transformed inputs, or `patch` floats
    /// for a fallback), the products M, one pixel of channels (the composed conv's fallback), a
    /// tile's outputs (the fallbacks), a zero bias, the block's output region (m rows ×
    /// `outScale`·m pixels per tile) and the packed products' workspace.
    static func scratchPerWorker(
        tile: WinogradTile, blockTiles bt: Int, cin: Int, cout: Int, panelRows: Int, patch: Int, outScale: Int = 1
    ) -> Int {
        let a2 = tile.alpha * tile.alpha
        return vFloats(InputLayout(tile: tile, blockTiles: bt, cin: cin, panelRows: panelRows), patch: patch)
            + a2 * bt * cout + max(cin, cout)
            + tile.m * tile.m * cout + cout
            + regionFloats(tile: tile, blockTiles: bt, cout: cout, outScale: outScale)
            + gemmFloats(blockTiles: bt, cin: cin, cout: cout)
    }

    /// The packed products' workspace for one block (the largest any kernel needs).
    static func gemmFloats(blockTiles bt: Int, cin: Int, cout: Int) -> Int {
        var args = sam3neck_sgemm_args()
        (args.m, args.n, args.k) = (bt, cout, cin)
        return sam3neck_sgemm_workspace_floats(&args)
    }

    static func vFloats(_ layout: InputLayout, patch: Int) -> Int { max(layout.floats, patch) }

    /// Where a row of a block's transformed inputs V goes (`WinogradBlocks.products`): element
    /// (x, y) of tile t at `xiStride·y + offset(t)` from the scratch's V, its channel k at
    /// (k / 16)·`chunk` + k % 16 from there (`sam3neck_winograd_input`). Row-major (`panelRows` 0:
    /// tile after tile, cin channels each, for product code that packs its own), or the
    /// micro-panels of `panelRows` tiles that the packed SGEMM reads as they are
    /// (`sam3neck_sgemm_a_packed_index`): the input transform then writes the products'
    /// left-hand sides itself, and nothing is packed between the two.
    struct InputLayout {
        /// Elements held: a row of V, α.
        let elements: Int, blockTiles: Int, cin: Int, panelRows: Int

        init(tile: WinogradTile, blockTiles: Int, cin: Int, panelRows: Int) {
            (elements, self.blockTiles, self.cin, self.panelRows) = (tile.alpha, blockTiles, cin, panelRows)
        }

        /// Micro-panels per element (0: row-major).
        var panels: Int { panelRows == 0 ? 0 : (blockTiles + panelRows - 1) / panelRows }
        var xiStride: Int { panelRows == 0 ? blockTiles * cin : panels * panelRows * ((cin + 15) / 16 * 16) }
        var chunk: Int { panelRows == 0 ? 16 : 16 * panelRows }
        var floats: Int { elements * xiStride }

        @inline(__always) func offset(_ t: Int) -> Int {
            panelRows == 0 ? t * cin : sam3neck_sgemm_a_packed_index(panelRows, cin, t, 0)
        }

        /// Zeroes the rows past `tiles` of each element's last micro-panel (the kernels read whole
        /// panels; those rows' products are never stored, but must not be NaN or denormal).
        func zeroPadding(_ v: UnsafeMutablePointer<Float>, tiles: Int) {
            guard panelRows > 0, tiles % panelRows != 0 else { return }
            for xi in 0..<elements {
                for t in tiles..<(tiles + panelRows - 1) / panelRows * panelRows {
                    let row = v + xi * xiStride + offset(t)
                    for k0 in stride(from: 0, to: cin, by: 16) {
                        (row + k0 * panelRows).update(repeating: 0, count: 16)
                    }
                }
            }
        }
    }

    /// Floats of a block's output region: bt tiles of m rows × outScale·m pixels × cout (level 0's
    /// composed conv holds one row parity at a time, its two column phases side by side: outScale 2).
    static func regionFloats(tile: WinogradTile, blockTiles bt: Int, cout: Int, outScale: Int) -> Int {
        bt * outScale * tile.m * tile.m * cout
    }

    /// A block of tiles: a rectangle of the tile grid, tile rows `ty0 ..< ty0 + rows`, tile columns
    /// `tx0 ..< tx0 + cols`, tile t of the block at (ty0 + t / cols, tx0 + t % cols). Its outputs
    /// are one rectangle of the output, assembled in the worker's region and stored in one call:
    /// each output row is then written once, in runs as long as the block is wide, instead of
    /// m-pixel pieces per tile (and, for the phases of a transposed conv, pieces two apart).
    struct Block {
        let ty0: Int, tx0: Int, rows: Int, cols: Int
        var count: Int { rows * cols }
        @inline(__always) func tile(_ t: Int) -> (ty: Int, tx: Int) { (ty0 + t / cols, tx0 + t % cols) }
    }

    /// Splits the output grid of `src` (h × w, or `outScale`× that for composed convs) into m×m
    /// tiles, checks the frame covers them, and runs `body(scratch, block)` for each block of at
    /// most `bt` tiles (of the tile rows `tileRows`, default all) on the workers, each with its own
    /// scratch. Blocks are whole tile rows when a row has at most `bt` tiles, else pieces of one row.
    static func forEachBlock(
        _ tile: WinogradTile, _ src: PaddedImage, blockTiles bt: Int, cin: Int, cout: Int, panelRows: Int, patch: Int,
        outScale: Int = 1, tileRows: Range<Int>? = nil,
        scratch: UnsafeMutablePointer<Float>, threads: Int,
        _ body: (_ s: Scratch, _ block: Block) -> Void
    ) {
        let m = tile.m
        precondition(src.channels == cin && src.pad == 1)
        let tilesY = (src.height + m - 1) / m, tilesX = (src.width + m - 1) / m
        precondition(src.paddedHeight >= m * tilesY + 2 && src.paddedWidth >= m * tilesX + 2)
        let perWorker = scratchPerWorker(
            tile: tile, blockTiles: bt, cin: cin, cout: cout, panelRows: panelRows, patch: patch, outScale: outScale)
        // As many blocks as a multiple of the workers, so none waits at the end.
        let rowsPer = max(1, bt / tilesX), pieces = (tilesX + bt - 1) / bt
        let rowRange = tileRows ?? 0..<tilesY
        precondition(rowRange.lowerBound >= 0 && rowRange.upperBound <= tilesY)
        let split = BalancedBlocks(rowRange.count, most: rowsPer, workers: pieces > 1 ? 1 : threads)
        nonisolated(unsafe) let scratch = scratch
        parallelQueue(split.blocks * pieces, threads: threads) { worker, index in
            // The layout of the scratch follows bt, the most a block can hold.
            let s = Scratch(
                scratch + worker * perWorker, tile: tile, blockTiles: bt, cin: cin, cout: cout, panelRows: panelRows,
                patch: patch, outScale: outScale)
            let rows = split.range(index / pieces), piece = index % pieces
            let x0 = tilesX * piece / pieces, x1 = tilesX * (piece + 1) / pieces
            body(s, Block(ty0: rowRange.lowerBound + rows.lowerBound, tx0: x0, rows: rows.count, cols: x1 - x0))
        }
    }

    /// One worker's views of its scratch.
    struct Scratch {
        /// V (`layout`), and the products M tile-major: M_ξ of tile t at `prod + (t·α² + ξ)·cout`,
        /// so that the output transform reads a tile's α² products as one run.
        let v: UnsafeMutablePointer<Float>, prod: UnsafeMutablePointer<Float>
        /// How V is laid out.
        let layout: InputLayout
        /// One pixel of channels (the composed conv's fallback computes Z there).
        let pixel: UnsafeMutablePointer<Float>
        /// A tile's outputs, m² × cout (the fallbacks), and a zero bias.
        let y: UnsafeMutablePointer<Float>, zeros: UnsafeMutablePointer<Float>
        /// The block's outputs, channels-last, row after row of the block's output rectangle.
        let region: UnsafeMutablePointer<Float>
        /// The packed products' workspace.
        let gemm: UnsafeMutablePointer<Float>

        init(
            _ base: UnsafeMutablePointer<Float>, tile: WinogradTile, blockTiles bt: Int, cin: Int, cout: Int,
            panelRows: Int, patch: Int, outScale: Int
        ) {
            let a2 = tile.alpha * tile.alpha
            v = base
            layout = InputLayout(tile: tile, blockTiles: bt, cin: cin, panelRows: panelRows)
            prod = v + Winograd.vFloats(layout, patch: patch)
            pixel = prod + a2 * bt * cout
            y = pixel + max(cin, cout)
            zeros = y + tile.m * tile.m * cout
            zeros.update(repeating: 0, count: cout)
            region = zeros + cout
            gemm = region + Winograd.regionFloats(tile: tile, blockTiles: bt, cout: cout, outScale: outScale)
        }
    }

    /// Row x of V = Bᵀ d B for the α×α input tile at stored (row, column) of `src`, written where
    /// `s.layout` puts tile t (`sam3neck_winograd_input`).
    @inline(__always)
    static func inputTile(
        _ tile: WinogradTile, _ src: PaddedImage, row: Int, column: Int, t: Int, x: Int, _ s: Scratch
    ) {
        let c = src.channels, layout = s.layout
        sam3neck_winograd_input(
            tile.code, Int32(x), src.stored(row, column), src.paddedWidth * c, c, c, s.v + layout.offset(t),
            layout.xiStride, layout.chunk, 0)
    }

    /// Output pixel (i, j) of tile t of the block, `(Aᵀ M A)[i][j] + bias`, written at
    /// `dst + i·rowStride + j·columnStride` (cout floats each; `sam3neck_winograd_output`).
    /// Returns whether an output is non-finite.
    @inline(__always)
    static func outputTile(
        _ tile: WinogradTile, t: Int, bt: Int, cout: Int, bias: UnsafePointer<Float>?, _ s: Scratch,
        _ dst: UnsafeMutablePointer<Float>, rowStride: Int, columnStride: Int
    ) -> Bool {
        sam3neck_winograd_output(
            tile.code, s.prod + t * tile.alpha * tile.alpha * cout, cout, cout, bias ?? UnsafePointer(s.zeros), dst,
            rowStride, columnStride, 0) != 0
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
    /// The weights as loaded, `[o][c][ky][kx]`, for tiles with non-finite outputs.
    package let direct: [Float]
    package let bias: [Float]
    package let cin: Int, cout: Int
    /// Tiles per block: the M of each product (108: three rows of tiles at level 1 of SAM 3's grid,
    /// ≈ 10 MB of scratch per worker against ≈ 17 MB at 192, at the same speed on this machine kind).
    package let blockTiles: Int

    /// The conv of `weight` (`[cout][cin][3][3]`, as PyTorch stores it) and `bias` (cout values).
    package init(
        weight: [Float], bias: [Float], cout: Int, cin: Int, tile: WinogradTile, blockTiles: Int = 108,
        gemm: GemmBackend = .openBLAS, bf16x3: Bool = false, bf16: Int32? = nil
    ) {
        self.cout = cout
        self.cin = cin
        precondition(weight.count == cout * cin * 9 && bias.count == cout && tile.r == 3)
        self.tile = tile
        self.blockTiles = blockTiles
        u = WinogradBlocks(
            blocks: tile.alpha * tile.alpha, cin: cin, cout: cout, gemm: gemm, bf16x3: bf16x3, bf16: bf16
        ) { layout, storage in
            // Bands of 32 inputs handed to the cores as they come free (the cores of this machine
            // kind are often unequal), each converted to double from the weights as loaded,
            // [o][i][ky][kx], then transformed.
            let r2 = tile.r * tile.r, band = 32
            nonisolated(unsafe) let storage = storage
            weight.withUnsafeBufferPointer { w in
                parallelQueue((cin + band - 1) / band, threads: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) { _, b in
                    let rows = (b * band)..<Swift.min(cin, (b + 1) * band), n = rows.count * r2
                    // [o][i − rows.lowerBound][q]
                    let k = [Double](unsafeUninitializedCapacity: cout * n) { k, count in
                        for o in 0..<cout {
                            for j in 0..<n { k[o * n + j] = Double(w[(o * cin + rows.lowerBound) * r2 + j]) }
                        }
                        count = cout * n
                    }
                    k.withUnsafeBufferPointer { k in
                        Winograd.transformWeights(
                            k.baseAddress!, tapStride: 1, inStride: r2, outStride: n,
                            rows: rows, cin: cin, cout: cout, tile: tile, into: storage, layout)
                    }
                }
            }
        }
        direct = weight  // shared with the neck's weights, not copied
        self.bias = bias
    }

    /// Floats of a tile's im2col patch (m² pixels × 9·cin).
    var patchFloats: Int { tile.m * tile.m * 9 * cin }

    /// Floats of scratch one worker needs.
    package var scratchPerWorker: Int {
        Winograd.scratchPerWorker(
            tile: tile, blockTiles: blockTiles, cin: cin, cout: cout, panelRows: u.panelRows, patch: patchFloats)
    }

    /// Computes the conv of `src` (pad 1, frame rounded up to whole tiles) into `dst` (`cout × h ×
    /// w` in its layout and type). `scratch` holds `threads · scratchPerWorker` floats.
    package func run(
        _ src: PaddedImage, into dst: OutputTarget,
        scratch: UnsafeMutablePointer<Float>, threads: Int
    ) {
        let m = tile.m, h = src.height, w = src.width
        let bt = blockTiles, cin = cin, cout = cout, tile = tile
        nonisolated(unsafe) let dst = dst
        let u = u
        direct.withUnsafeBufferPointer { directBuf in
            bias.withUnsafeBufferPointer { biasBuf in
                nonisolated(unsafe) let bias = biasBuf.baseAddress!, direct = directBuf.baseAddress!
                Winograd.forEachBlock(
                    tile, src, blockTiles: bt, cin: cin, cout: cout, panelRows: u.panelRows, patch: patchFloats,
                    scratch: scratch, threads: threads
                ) { s, block in
                    let n = block.count
                    u.products(tile, n: n, bt: bt, s) { x in
                        for t in 0..<n {
                            let (ty, tx) = block.tile(t)
                            Winograd.inputTile(tile, src, row: ty * m, column: tx * m, t: t, x: x, s)
                        }
                    }
                    // The block's outputs, channels-last: a rectangle m·rows × m·cols.
                    let regionWidth = m * block.cols
                    for t in 0..<n {
                        let (ty, tx) = block.tile(t)
                        let origin = s.region + ((ty - block.ty0) * m * regionWidth + (tx - block.tx0) * m) * cout
                        let at = { (i: Int, j: Int) in origin + (i * regionWidth + j) * cout }
                        if Winograd.outputTile(
                            tile, t: t, bt: bt, cout: cout, bias: bias, s, origin, rowStride: regionWidth * cout,
                            columnStride: cout)
                        {
                            // Recompute this tile directly: im2col patch (m² × cin·9, in V's space, in the
                            // weights' (c, ky, kx) order) · the weights as loaded, transposed.
                            for i in 0..<m {
                                for j in 0..<m {
                                    let row = s.v + (i * m + j) * 9 * cin
                                    for tap in 0..<9 {
                                        let pixel = src.stored(m * ty + i + tap / 3, m * tx + j + tap % 3)
                                        for c in 0..<cin { row[c * 9 + tap] = pixel[c] }
                                    }
                                }
                            }
                            Blas.sgemm(
                                transB: true, m: m * m, n: cout, k: 9 * cin, a: s.v, lda: 9 * cin, b: direct,
                                ldb: 9 * cin,
                                c: s.y, ldc: cout)
                            for i in 0..<m {
                                for j in 0..<m {
                                    let p = s.y + (i * m + j) * cout, q = at(i, j)
                                    for o in 0..<cout { q[o] = p[o] + bias[o] }
                                }
                            }
                        }
                    }
                    // The valid part of the rectangle, into the output.
                    let y0 = m * block.ty0, x0 = m * block.tx0
                    dst.store(
                        s.region, ldy: cout, m: regionWidth, rows: min(m * block.rows, h - y0),
                        cols: min(regionWidth, w - x0),
                        channels: cout, y0: y0, x0: x0)
                }
            }
        }
    }
}
