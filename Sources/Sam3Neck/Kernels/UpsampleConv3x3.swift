#if canImport(Glibc)
import Glibc
#endif
/// Branch 0's last two layers computed as one: a k=2, s=2 transposed conv c0 → d (dconv_2x2_1
/// with conv_1x1 folded in) followed by the 3×3 conv d → d, padding 1.
///
/// Both are linear, so for each output phase (a, b) — output pixels (2i+a, 2j+b) — the pair is
/// a 2×2 conv over the transposed conv's input G: output row 2i+a reads Z rows 2i+a−1 … 2i+a+1,
/// which come from G rows {i−1, i} (a = 0) or {i, i+1} (a = 1), and likewise for columns. Its
/// kernels are the 3×3 taps composed with the transposed conv's phase weights (at compile: each
/// product in float32, their sums in double). Z's bias reaches an output through the taps that land inside Z, so it is a constant
/// except on the first and last output row and column: a 3×3 table of bias vectors.
/// Each phase runs as Winograd F(m×m, 2×2) (the plan chooses `.f4r2` or `.f3r2`) over the
/// zero-framed G: the Z intermediate (4× the pixels of G) is never written, and there are fewer
/// multiplies than the two layers take apart.
///
/// Non-finite values: a tile with a non-finite output is recomputed through the two layers as
/// they are (Z, then the 3×3 conv), so NaN and Inf land exactly where PyTorch puts them.
package struct UpsampleConv3x3: Sendable {
    package let tile: WinogradTile
    package let c0: Int, d: Int
    /// Per phase p = 2a + b (blocks p·α² ..< (p + 1)·α²): α² blocks of c0 × d.
    let u: WinogradBlocks
    /// [row class][column class][o], class 0 = first output row/column, 1 = inside, 2 = last.
    let biasTable: [Float]
    /// The layers as they are, for the fallback: W' (c0 × 4d, column (2a'+b')·d + o'), b', and the
    /// 3×3 weights as loaded (`[o][o'][ky][kx]`) with their bias.
    let up: AlignedFloats, upBias: [Float], conv: [Float], convBias: [Float]
    /// Tiles per block (the M of each product): 108 is three rows of tiles at SAM 3's 72 × 72
    /// grid; a worker's transformed inputs, products and output rows then take ≈ 12 MB, against
    /// ≈ 15 MB at 192 with no measurable difference in speed on this machine kind.
    package let blockTiles: Int
    /// Whether the products run as bf16×3 on AMX (the blocks are held split, `WinogradBlocks`).
    package var bf16x3: Bool { u.bf16x3 }

    /// The pair of `up` (the transposed conv as a GEMM right-hand side, c0 × 4d, column
    /// (2a'+b')·d + o') and the 3×3 conv of `convWeight` (`[d][d][3][3]`, as PyTorch stores it)
    /// and `convBias`.
    package init(
        up: GemmWeights, convWeight: [Float], convBias: [Float], tile: WinogradTile = .f4r2, blockTiles: Int = 108,
        gemm: GemmBackend = .openBLAS, bf16x3: Bool = false, bf16: Int32? = nil
    ) {
        let d = convBias.count, c0 = up.k
        precondition(up.n == 4 * d && convWeight.count == d * d * 9 && tile.r == 2)
        self.tile = tile
        self.c0 = c0
        self.d = d
        self.blockTiles = blockTiles
        let wUp = up.b  // [c][(2a'+b')·d + o']
        // Per tap, W3 as [o][o'] (d × d), and its right-hand side packed once for the four phases:
        // (W'_z · W3_tapᵀ)[c][o]. The nine taps on all cores.
        var made = [(weights: [Float], right: WeightProducts.Right)?](repeating: nil, count: 9)
        made.withUnsafeMutableBufferPointer { made in
            nonisolated(unsafe) let made = made
            parallelQueue(9, threads: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) { _, t in
                let m = [Float](unsafeUninitializedCapacity: d * d) { m, count in
                    convWeight.withUnsafeBufferPointer { w in
                        for o in 0..<d { for o2 in 0..<d { m[o * d + o2] = w[(o * d + o2) * 9 + t] } }
                    }
                    count = d * d
                }
                made[t] = (
                    m, m.withUnsafeBufferPointer { WeightProducts.Right(k: d, n: d, bT: $0.baseAddress!, ldbT: d) }
                )
            }
        }
        let tapWeights = made.map { $0!.weights }, rights = made.map { $0!.right }
        // The four phases and the bands of `band` input channels are independent: each (phase,
        // band) pair is one item for the next free core (the phases are equal work, but the two
        // cores of this machine kind often are not: a phase each left one idle for a quarter of
        // the time). An item composes its band's 2×2 kernels (their sums, 4·band·d doubles, stay in
        // cache) and transforms the band straight into the blocks, 32 inputs at a time. 96 rows:
        // the products' micro-kernels take 12 rows at a time (99 GFLOP/s at 96 rows against 87 at
        // 64 on this machine kind, 256 × 256 right-hand sides).
        let alpha2 = tile.alpha * tile.alpha, band = Swift.min(c0, 96), bands = (c0 + band - 1) / band
        u = WinogradBlocks(blocks: 4 * alpha2, cin: c0, cout: d, gemm: gemm, bf16x3: bf16x3, bf16: bf16) {
            layout, storage in
            nonisolated(unsafe) let storage = storage
            parallelQueue(4 * bands, threads: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) { _, item in
                let phase = item % 4, a = phase / 2, b = phase % 2
                let first = item / 4 * band, rows = Swift.min(band, c0 - first)
                // Composite 2×2 kernels of this band, tap-major: taps[(2p + q)·rows·d + (c − first)·d + o].
                // Each 3×3 tap's product in float32 (`WeightProducts`); their sums in double.
                var taps = [Double](repeating: 0, count: 4 * rows * d)
                var product = [Float](repeating: 0, count: rows * d)
                taps.withUnsafeMutableBufferPointer { acc in
                    for ky in 0..<3 {
                        for kx in 0..<3 {
                            let (p, aZ) = UpsampleConv3x3.split(a + ky - 1, phase: a)
                            let (q, bZ) = UpsampleConv3x3.split(b + kx - 1, phase: b)
                            // product[c][o] = Σ_o' W'[c][aZ,bZ][o'] · W3[o][o'][ky][kx]
                            wUp.withUnsafeBufferPointer { w in
                                product.withUnsafeMutableBufferPointer { out in
                                    rights[ky * 3 + kx].multiply(
                                        m: rows, a: w.baseAddress! + first * 4 * d + (2 * aZ + bZ) * d,
                                        lda: 4 * d, c: out.baseAddress!, ldc: d)
                                }
                            }
                            product.withUnsafeBufferPointer { pr in
                                let base = acc.baseAddress! + (2 * p + q) * rows * d
                                for i in 0..<rows * d { base[i] += Double(pr[i]) }
                            }
                        }
                    }
                    for sub in stride(from: 0, to: rows, by: 32) {
                        let part = (first + sub)..<Swift.min(first + sub + 32, first + rows)
                        Winograd.transformWeights(
                            acc.baseAddress! + sub * d, tapStride: rows * d, inStride: d, outStride: 1,
                            rows: part, cin: c0, cout: d, tile: tile, into: storage, layout,
                            first: phase * alpha2)
                    }
                }
            }
        }
        // Bias: b3 + Σ over taps inside Z of W3_tap · b'.
        var tapBias = [Double](repeating: 0, count: 9 * d)
        for t in 0..<9 {
            for o in 0..<d {
                var s = 0.0
                for o2 in 0..<d { s += Double(tapWeights[t][o * d + o2]) * Double(up.bias[o2]) }
                tapBias[t * d + o] = s
            }
        }
        var table = [Float](repeating: 0, count: 9 * d)
        for rc in 0..<3 {
            for cc in 0..<3 {
                for o in 0..<d {
                    var s = Double(convBias[o])
                    for ky in 0..<3 where !(rc == 0 && ky == 0) && !(rc == 2 && ky == 2) {
                        for kx in 0..<3 where !(cc == 0 && kx == 0) && !(cc == 2 && kx == 2) {
                            s += tapBias[(ky * 3 + kx) * d + o]
                        }
                    }
                    table[(rc * 3 + cc) * d + o] = Float(s)
                }
            }
        }
        biasTable = table
        self.up = up.b
        upBias = up.bias
        conv = convWeight  // shared with the neck's weights, not copied
        self.convBias = convBias
    }

    /// Level 0 in bands of tile rows, so that G is held a band at a time: band b covers tile rows
    /// `tiles`, reads G's stored rows `stored` (those its tiles' α×α inputs span, for both row
    /// phases) and needs the input rows `input` computed into them (the rows whose 2×2 outputs
    /// land there: a band recomputes the one input row it shares with each neighbour).
    package struct Band {
        package let tiles: Range<Int>, stored: Range<Int>, input: Range<Int>
    }

    /// The bands for a G of `height` rows (2H), at most `tileRowsPerBand` tile rows each.
    package func bands(height: Int, tileRowsPerBand: Int) -> [Band] {
        let m = tile.m, tilesY = (height + m - 1) / m, h = height / 2
        let count = max(1, (tilesY + tileRowsPerBand - 1) / tileRowsPerBand)
        return (0..<count).map { b in
            let t0 = tilesY * b / count, t1 = tilesY * (b + 1) / count
            // Tile ty, phase a reads stored rows m·ty + a ..< m·ty + a + α; stored row s is G row s − 1,
            // and G rows 2i, 2i + 1 come from input row i.
            let need = (m * t0)..<(m * (t1 - 1) + 1 + tile.alpha)
            let input = max(0, (need.lowerBound - 1) / 2)..<min(h, (need.upperBound - 1 + 1) / 2)
            let computed = (2 * input.lowerBound + 1)..<(2 * input.upperBound + 1)
            return Band(
                tiles: t0..<t1,
                stored: min(need.lowerBound, computed.lowerBound)..<max(need.upperBound, computed.upperBound),
                input: input)
        }
    }

    /// For output phase `phase` and a Z offset `z` (= phase + k − 1), the G offset relative to the
    /// phase's first G row (0 or 1) and the Z phase of that pixel.
    static func split(_ z: Int, phase: Int) -> (offset: Int, zPhase: Int) {
        let du = z >= 0 ? z / 2 : -1  // floor(z / 2) for z in −1...2
        let first = phase == 0 ? -1 : 0  // G row offset of the phase's first tap row
        return (du - first, z - 2 * du)
    }

    /// Floats of the fallback's im2col patch of Z (m² pixels × 9 taps × d).
    var patchFloats: Int { tile.m * tile.m * 9 * d }

    package var scratchPerWorker: Int {
        Winograd.scratchPerWorker(
            tile: tile, blockTiles: blockTiles, cin: c0, cout: d, panelRows: u.panelRows, patch: patchFloats,
            outScale: 2)
    }

    /// Computes the output (`d × 2h × 2w` in its layout and type, h × w the grid of G) from `g`,
    /// the zero-framed channels-last G (pad 1, frame rounded up to whole tiles).
    package func run(
        _ g: PaddedImage, into dst: OutputTarget, tileRows: Range<Int>? = nil,
        scratch: UnsafeMutablePointer<Float>, threads: Int
    ) {
        let tile = tile, m = tile.m, h = g.height, w = g.width, outH = 2 * h, outW = 2 * w
        let bt = blockTiles, c0 = c0, d = d, u = u, alpha2 = tile.alpha * tile.alpha
        nonisolated(unsafe) let dst = dst
        biasTable.withUnsafeBufferPointer { tableBuf in
            convBias.withUnsafeBufferPointer { convBiasBuf in
                nonisolated(unsafe) let table = tableBuf.baseAddress!, convBias = convBiasBuf.baseAddress!
                nonisolated(unsafe) let interior = tableBuf.baseAddress! + 4 * d  // row and column class 1
                Winograd.forEachBlock(
                    tile, g, blockTiles: bt, cin: c0, cout: d, panelRows: u.panelRows, patch: patchFloats, outScale: 2,
                    tileRows: tileRows,
                    scratch: scratch, threads: threads
                ) { s, block in
                    let n = block.count
                    // The block's outputs of one row parity a, channels-last, phases (a, 0) and (a, 1)
                    // interleaved: m·rows rows of 2m·cols pixels, stored once both phases are in.
                    let regionWidth = 2 * m * block.cols
                    for phase in 0..<4 {
                        let a = phase / 2, b = phase % 2
                        u.products(tile, n: n, bt: bt, first: phase * alpha2, s) { x in
                            for t in 0..<n {
                                // The phase's input tile starts at G row m·ty − 1 + a, i.e. stored row m·ty + a.
                                let (ty, tx) = block.tile(t)
                                Winograd.inputTile(tile, g, row: ty * m + a, column: tx * m + b, t: t, x: x, s)
                            }
                        }
                        for t in 0..<n {
                            let (ty, tx) = block.tile(t)
                            let rows = min(m, h - m * ty), cols = min(m, w - m * tx)
                            // Output pixel (i, j) of the phase's tile is (2(m·ty + i) + a, 2(m·tx + j) + b).
                            let origin =
                                s.region + (m * (ty - block.ty0) * regionWidth + 2 * m * (tx - block.tx0) + b) * d
                            let at = { (i: Int, j: Int) in origin + (i * regionWidth + 2 * j) * d }
                            // The bias of interior outputs comes with the inverse transform; outputs on the
                            // first or last row or column get their border bias's difference added.
                            if Winograd.outputTile(
                                tile, t: t, bt: bt, cout: d, bias: interior, s, origin, rowStride: regionWidth * d,
                                columnStride: 2 * d)
                            {
                                // Recomputed through the two layers: conv(Z), Z's bias included; add the 3×3 conv's.
                                self.recompute(
                                    g, a: a, b: b, i0: m * ty, j0: m * tx, rows: rows, cols: cols, into: s.y, s)
                                for i in 0..<m {
                                    for j in 0..<m {
                                        let p = s.y + (i * m + j) * d, q = at(i, j)
                                        for o in 0..<d { q[o] = p[o] + convBias[o] }
                                    }
                                }
                            } else if m * ty + rows == h || m * tx + cols == w || ty == 0 || tx == 0 {
                                for i in 0..<rows {
                                    let oy = 2 * (m * ty + i) + a
                                    let rc = oy == 0 ? 0 : (oy == outH - 1 ? 2 : 1)
                                    for j in 0..<cols {
                                        let ox = 2 * (m * tx + j) + b
                                        let cc = ox == 0 ? 0 : (ox == outW - 1 ? 2 : 1)
                                        guard rc != 1 || cc != 1 else { continue }
                                        let border = table + (rc * 3 + cc) * d, yp = at(i, j)
                                        for o in 0..<d { yp[o] += border[o] - interior[o] }
                                    }
                                }
                            }
                        }
                        if b == 1 {
                            // The valid part of the rows of parity a, into the output: whole rows, every other one.
                            let y0 = 2 * m * block.ty0, x0 = 2 * m * block.tx0
                            dst.store(
                                s.region, ldy: d, m: regionWidth, rows: min(m * block.rows, (outH - y0) / 2),
                                cols: min(regionWidth, outW - x0), channels: d, y0: y0 + a, x0: x0, rowStep: 2)
                        }
                    }
                }
            }
        }
    }

    /// The tile's outputs through the two layers as they are, without the 3×3 conv's bias: Z (its
    /// bias included, zero outside) on the tile's 3×3 neighbourhoods, then the 3×3 conv, into y (m² × d).
    private func recompute(
        _ g: PaddedImage, a: Int, b: Int, i0: Int, j0: Int, rows: Int, cols: Int,
        into y: UnsafeMutablePointer<Float>, _ s: Winograd.Scratch
    ) {
        let m = tile.m, d = d, zH = 2 * g.height, zW = 2 * g.width
        let patch = s.v, z = s.pixel  // patch: m² × (d · 9) in the weights' (o', ky, kx) order; z: one pixel of Z
        up.withUnsafeBufferPointer { up in
            for i in 0..<m {
                for j in 0..<m {
                    let row = patch + (i * m + j) * 9 * d
                    for tap in 0..<9 {
                        let zy = 2 * (i0 + i) + a + tap / 3 - 1, zx = 2 * (j0 + j) + b + tap % 3 - 1
                        guard i < rows, j < cols, zy >= 0, zy < zH, zx >= 0, zx < zW else {
                            for o in 0..<d { row[o * 9 + tap] = 0 }
                            continue
                        }
                        // Z(zy, zx) = b' + G(zy/2, zx/2) · W'[phase of (zy, zx)]
                        Blas.sgemm(
                            m: 1, n: d, k: c0, a: g.pixel(zy / 2, zx / 2), lda: c0,
                            b: up.baseAddress! + (2 * (zy % 2) + zx % 2) * d, ldb: 4 * d, c: z, ldc: d)
                        for o in 0..<d { row[o * 9 + tap] = z[o] + upBias[o] }
                    }
                }
            }
        }
        conv.withUnsafeBufferPointer { w in
            Blas.sgemm(
                transB: true, m: m * m, n: d, k: 9 * d, a: patch, lda: 9 * d, b: w.baseAddress!, ldb: 9 * d, c: y,
                ldc: d)
        }
    }
}
