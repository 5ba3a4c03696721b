#if canImport(Glibc)
import Glibc
#endif

/// The neck's weights rearranged for the plan's products, with the algebra done once.
///
/// Every layer becomes a GEMM right-hand side `B[k × n]` (row-major) plus a bias:
/// - a k=2, s=2 transposed conv `[in, out, 2, 2]` → `B[in × 4·out]`, column (2a+b)·out + o;
/// - a transposed conv followed by a 1×1 conv (branches 0 and 1; no nonlinearity between them)
///   folds exactly into one transposed conv `in → d`: `W'[c, ab, o'] = Σ_m W[c, m, ab]·V[o', m]`
///   (float32 products, `WeightProducts`), `b'[o'] = bv[o'] + Σ_m V[o', m]·b[m]` (in double);
/// - a 1×1 conv `[out, in, 1, 1]` → `B[in × out]`;
/// - 3×3 convs are packed per Winograd tile size (`winograd(_:)`), on demand.
package struct PackedWeights: Sendable {
    /// A layer as a GEMM right-hand side; `b` is empty for the four phase-1 products of weights
    /// made with `packProducts`.
    package typealias Gemm = GemmWeights

    package let trunkDim: Int, dModel: Int
    /// Branch 0: dconv_2x2_0 (then GELU), then dconv_2x2_1∘conv_1x1 folded.
    package let up4First: Gemm, up4Second: Gemm
    /// Branch 1: dconv_2x2∘conv_1x1 folded.
    package let up2: Gemm
    /// Branches 2 and 3: conv_1x1.
    package let same: Gemm, down: Gemm
    /// conv_3x3 of each branch, in PyTorch's layout.
    package let conv3x3: [NeckWeights.Layer]

    /// The phase-1 products packed for the micro-kernels, by level, when made with
    /// `packProducts` (then the row-major B of those four is not kept: 14 MB for SAM 3's neck).
    package let packedProducts: [PackedGemm]

    /// `packProducts`: also pack the four phase-1 products for the micro-kernels, each right after
    /// it is made (on the same worker), and keep only the packed form.
    package init(_ w: NeckWeights, packProducts: Bool = false) {
        trunkDim = w.trunkDim
        dModel = w.dModel
        // Five independent rearrangements (two of them products), the longest first, handed to
        // the cores as they come free. Maker i's level, when it is a phase-1 product.
        let makers: [(level: Int?, make: @Sendable () -> Gemm)] = [
            (1, { PackedWeights.folded(w.level1.dconv, w.level1.conv1x1) }),
            (0, { PackedWeights.transposed(w.level0.dconv0) }),
            (nil, { PackedWeights.folded(w.level0.dconv1, w.level0.conv1x1) }),
            (2, { PackedWeights.pointwise(w.level2.conv1x1) }),
            (3, { PackedWeights.pointwise(w.level3.conv1x1) }),
        ]
        var made = [Gemm?](repeating: nil, count: makers.count)
        var packed = [PackedGemm?](repeating: nil, count: 4)
        made.withUnsafeMutableBufferPointer { out in
            packed.withUnsafeMutableBufferPointer { outPacked in
                nonisolated(unsafe) let out = out, outPacked = outPacked
                parallelQueue(makers.count, threads: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) { _, i in
                    let g = makers[i].make()
                    if packProducts, let level = makers[i].level {
                        outPacked[level] = PackedGemm(g)
                        out[i] = Gemm(b: AlignedFloats(count: 0, zeroed: false) { _ in }, bias: g.bias, k: g.k, n: g.n)
                    } else {
                        out[i] = g
                    }
                }
            }
        }
        (up2, up4First, up4Second, same, down) = (made[0]!, made[1]!, made[2]!, made[3]!, made[4]!)
        packedProducts = packProducts ? packed.map { $0! } : []
        conv3x3 = NeckNaming.levelModules.indices.map(w.conv3x3)
    }

    /// The first product of `level`'s phase 1.
    package func product(level: Int) -> Gemm {
        [up4First, up2, same, down][level]
    }

    /// The 3×3 convs of the given levels, weight-transformed for `tile`, by level.
    package func winograd(
        _ tile: WinogradTile, levels: [Int], gemm: GemmBackend = .openBLAS,
        bf16x3: Bool = false, bf16: Int32? = nil
    ) -> [Int: WinogradConv3x3] {
        // One level at a time, each transformed in bands on all the cores (three levels on two
        // cores would leave one idle for a third of the time).
        Dictionary(
            uniqueKeysWithValues: levels.map { l in
                (l, WinogradConv3x3(conv3x3[l], tile: tile, gemm: gemm, bf16x3: bf16x3, bf16: bf16))
            })
    }

    /// `[in, out, 2, 2]` → `B[in × 4·out]`.
    static func transposed(_ l: NeckWeights.Layer) -> Gemm {
        let cin = l.weight.shape[0], cout = l.weight.shape[1]
        let b = AlignedFloats(count: cin * 4 * cout, zeroed: false) { b in
            l.weight.data.withUnsafeBufferPointer { w in
                for c in 0..<cin {
                    for o in 0..<cout {
                        for ab in 0..<4 { b[c * 4 * cout + ab * cout + o] = w[(c * cout + o) * 4 + ab] }
                    }
                }
            }
        }
        return Gemm(b: b, bias: l.bias.data, k: cin, n: 4 * cout)
    }

    /// `[out, in, 1, 1]` → `B[in × out]`.
    static func pointwise(_ l: NeckWeights.Layer) -> Gemm {
        let cout = l.weight.shape[0], cin = l.weight.shape[1]
        let b = AlignedFloats(count: cin * cout, zeroed: false) { b in
            l.weight.data.withUnsafeBufferPointer { w in
                for c in 0..<cin {
                    for o in 0..<cout { b[c * cout + o] = w[o * cin + c] }
                }
            }
        }
        return Gemm(b: b, bias: l.bias.data, k: cin, n: cout)
    }

    /// Transposed conv `t` `[in, m, 2, 2]` followed by 1×1 conv `p` `[d, m, 1, 1]` → `B[in × 4·d]`:
    /// per tap ab, `W'[c, ab, ·] = W[c, ·, ab] · Vᵀ` (`WeightProducts`); the bias in double.
    static func folded(_ t: NeckWeights.Layer, _ p: NeckWeights.Layer) -> Gemm {
        let cin = t.weight.shape[0], m = t.weight.shape[1], d = p.weight.shape[0]
        precondition(p.weight.shape[1] == m)
        // V packed once for the four taps' products, each of which writes its d columns of every row.
        let right = p.weight.data.withUnsafeBufferPointer {
            WeightProducts.Right(k: m, n: d, bT: $0.baseAddress!, ldbT: m)
        }
        // A band of 96 inputs at a time: its four taps taken apart in one pass over its weights
        // (four passes over the whole [in, m, 2, 2] tensor, one per tap, took longer than the
        // products), then multiplied while in cache. 96 rows: the micro-kernels take 12 at a time.
        let band = 96
        var taps = [Float](repeating: 0, count: 4 * band * m)
        let b = AlignedFloats(count: cin * 4 * d, zeroed: false) { out in
            taps.withUnsafeMutableBufferPointer { a in
                t.weight.data.withUnsafeBufferPointer { w in
                    for first in stride(from: 0, to: cin, by: band) {
                        let rows = Swift.min(band, cin - first)
                        for i in 0..<rows * m {  // (c, j) = (first + i / m, i % m)
                            for ab in 0..<4 { a[ab * band * m + i] = w[(first * m + i) * 4 + ab] }
                        }
                        for ab in 0..<4 {
                            right.multiply(
                                m: rows, a: a.baseAddress! + ab * band * m, lda: m,
                                c: out + first * 4 * d + ab * d, ldc: 4 * d)
                        }
                    }
                }
            }
        }
        var bias = [Float](repeating: 0, count: d)
        for o in 0..<d {
            var s = Double(p.bias.data[o])
            for j in 0..<m { s += Double(p.weight.data[o * m + j]) * Double(t.bias.data[j]) }
            bias[o] = Float(s)
        }
        return Gemm(b: b, bias: bias, k: cin, n: 4 * d)
    }
}
