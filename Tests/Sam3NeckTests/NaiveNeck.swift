import Foundation
@testable import Sam3Neck

/// Naive-loop oracles, in double, written straight from upstream's definitions. Slow and obvious
/// on purpose: they are what the fast kernels are checked against.
enum Naive {
    /// Deterministic pseudo-random values in [-scale, scale) (SplitMix64).
    struct RNG {
        var state: UInt64
        mutating func next() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Double(z >> 11) / Double(1 << 53) * 2 - 1
        }
        mutating func floats(_ n: Int, scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(next() * scale) } }
    }

    /// An image `[c][h][w]` in double.
    struct Image {
        var c: Int, h: Int, w: Int
        var v: [Double]
        init(c: Int, h: Int, w: Int) { self.c = c; self.h = h; self.w = w; v = Array(repeating: 0, count: c * h * w) }
        subscript(ch: Int, y: Int, x: Int) -> Double {
            get { v[(ch * h + y) * w + x] }
            set { v[(ch * h + y) * w + x] = newValue }
        }
    }

    /// ConvTranspose2d k=2 s=2: out[o, 2i+a, 2j+b] = bias[o] + Σ_c x[c,i,j]·W[c,o,a,b].
    static func transposed(_ x: Image, _ l: NeckWeights.Layer) -> Image {
        let cout = l.weight.shape[1]
        var out = Image(c: cout, h: 2 * x.h, w: 2 * x.w)
        for o in 0..<cout {
            for y in 0..<out.h {
                for xx in 0..<out.w {
                    let i = y / 2, a = y % 2, j = xx / 2, b = xx % 2
                    var s = Double(l.bias.data[o])
                    for c in 0..<x.c { s += x[c, i, j] * Double(l.weight.data[((c * cout + o) * 2 + a) * 2 + b]) }
                    out[o, y, xx] = s
                }
            }
        }
        return out
    }

    /// Conv2d with a k×k kernel, zero padding k/2.
    static func conv(_ x: Image, _ l: NeckWeights.Layer) -> Image {
        let cout = l.weight.shape[0], k = l.weight.shape[2], pad = k / 2
        var out = Image(c: cout, h: x.h, w: x.w)
        for o in 0..<cout {
            for y in 0..<x.h {
                for xx in 0..<x.w {
                    var s = Double(l.bias.data[o])
                    for c in 0..<x.c {
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let sy = y + ky - pad, sx = xx + kx - pad
                                if sy >= 0, sy < x.h, sx >= 0, sx < x.w {
                                    s += x[c, sy, sx] * Double(l.weight.data[((o * x.c + c) * k + ky) * k + kx])
                                }
                            }
                        }
                    }
                    out[o, y, xx] = s
                }
            }
        }
        return out
    }

    static func gelu(_ x: Image) -> Image {
        var out = x
        out.v = x.v.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
        return out
    }

    /// MaxPool2d k=2 s=2, floor, NaN-propagating.
    static func maxPool(_ x: Image) -> Image {
        var out = Image(c: x.c, h: x.h / 2, w: x.w / 2)
        for c in 0..<x.c {
            for y in 0..<out.h {
                for xx in 0..<out.w {
                    let vals = [
                        x[c, 2 * y, 2 * xx], x[c, 2 * y, 2 * xx + 1], x[c, 2 * y + 1, 2 * xx],
                        x[c, 2 * y + 1, 2 * xx + 1],
                    ]
                    out[c, y, xx] = vals.contains(where: \.isNaN) ? .nan : vals.max()!
                }
            }
        }
        return out
    }

    /// The whole neck for one image, level by level, as upstream defines it.
    static func neck(_ w: NeckWeights, _ x: Image, level: Int) -> Image {
        switch level {
        case 0:
            let a = gelu(transposed(x, w.level0.dconv0))
            return conv(conv(transposed(a, w.level0.dconv1), w.level0.conv1x1), w.level0.conv3x3)
        case 1:
            return conv(conv(transposed(x, w.level1.dconv), w.level1.conv1x1), w.level1.conv3x3)
        case 2:
            return conv(conv(x, w.level2.conv1x1), w.level2.conv3x3)
        default:
            return conv(conv(maxPool(x), w.level3.conv1x1), w.level3.conv3x3)
        }
    }

    /// Random weights with the upstream shapes for trunk width c (divisible by 4) and d_model d.
    static func weights(c: Int, d: Int, seed: UInt64) -> NeckWeights {
        var rng = RNG(state: seed)
        func layer(_ shape: [Int], fanIn: Int) -> NeckWeights.Layer {
            let s = 1 / Double(fanIn).squareRoot()
            let out = shape.count == 4 && shape[2] == 2 ? shape[1] : shape[0]
            return .init(
                weight: Tensor(shape: shape, data: rng.floats(shape.reduce(1, *), scale: s)),
                bias: Tensor(shape: [out], data: rng.floats(out, scale: s)))
        }
        // Drawn in the order of the upstream modules, as before the weights were typed.
        let level0 = NeckWeights.Level0(
            dconv0: layer([c, c / 2, 2, 2], fanIn: c), dconv1: layer([c / 2, c / 4, 2, 2], fanIn: c / 2),
            conv1x1: layer([d, c / 4, 1, 1], fanIn: c / 4), conv3x3: layer([d, d, 3, 3], fanIn: 9 * d))
        let level1 = NeckWeights.Level1(
            dconv: layer([c, c / 2, 2, 2], fanIn: c), conv1x1: layer([d, c / 2, 1, 1], fanIn: c / 2),
            conv3x3: layer([d, d, 3, 3], fanIn: 9 * d))
        let level2 = NeckWeights.PointwiseLevel(
            conv1x1: layer([d, c, 1, 1], fanIn: c), conv3x3: layer([d, d, 3, 3], fanIn: 9 * d))
        let level3 = NeckWeights.PointwiseLevel(
            conv1x1: layer([d, c, 1, 1], fanIn: c), conv3x3: layer([d, d, 3, 3], fanIn: 9 * d))
        return NeckWeights(trunkDim: c, dModel: d, level0: level0, level1: level1, level2: level2, level3: level3)
    }

    /// max|out − ref| / max|ref|, the project's normalised error.
    static func normalisedError(_ out: [Float], _ ref: [Double]) -> Double {
        precondition(out.count == ref.count)
        var num = 0.0, den = 0.0
        for (o, r) in zip(out, ref) { num = max(num, abs(Double(o) - r)); den = max(den, abs(r)) }
        return num / den
    }
}
