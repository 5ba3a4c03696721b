/// The Winograd tiles the plan uses. Each gives its transform matrices (G for the weight
/// transform, done once in double) and hand-written input/output transforms (run per tile,
/// vectorised over channels, which are contiguous in the channels-last frame).
///
/// Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A computes the m×m correlation of an α×α input tile d with an
/// r×r kernel g, α = m + r − 1, from α² products instead of m²·r².
public enum WinogradTile: Sendable {
    /// F(2×2, 3×3): 4×4 input tiles, 2.25× fewer multiplies than direct; transform constants 0, ±1, ½.
    case f2
    /// F(4×4, 3×3): 6×6 input tiles, 4× fewer multiplies; constants up to 8 and ¹⁄₂₄, so more rounding.
    case f4
    /// F(4×4, 2×2): 5×5 input tiles, 2.56× fewer multiplies, points 0, ±1, ½; for branch 0's
    /// transposed conv composed with its 3×3 conv (default mode).
    case f4r2
    /// F(2×2, 2×2): 3×3 input tiles, 1.78× fewer multiplies, points 0, −1: the same composition
    /// in strict mode (its rounding stays at the level of direct sums).
    case f2r2

    /// Output tile side m, kernel side r and input tile side α = m + r − 1.
    public var m: Int { self == .f2 || self == .f2r2 ? 2 : 4 }
    public var r: Int { self == .f4r2 || self == .f2r2 ? 2 : 3 }
    public var alpha: Int { m + r - 1 }

    /// G (α × r), for U = G g Gᵀ.
    var g: [[Double]] {
        switch self {
        case .f2: return [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        case .f4: return [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                          [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
        case .f4r2: return [[2, 0], [1, 1], [-1.0 / 3, 1.0 / 3], [-8.0 / 3, -4.0 / 3], [0, 1]]
        case .f2r2: return [[1, 0], [-1, 1], [0, 1]]
        }
    }

    /// Bᵀ applied to α vectors of `c` channels: `out[i][k] = Σ_j Bᵀ[i][j]·src[j][k]`, where the
    /// j-th input vector is at `src(j)` and the i-th output at `dst(i)`.
    ///   F(2): Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
    ///   F(4): Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
    ///   F(4, r=2): Bᵀ = [½ -1 -½ 1 0; 0 -½ ½ 1 0; 0 ½ -3⁄2 1 0; 0 -1 0 1 0; 0 ½ -1 -½ 1]
    ///   F(2, r=2): Bᵀ = [1 1 0; 0 1 0; 0 1 1]
    @inline(__always)
    func inputRows(_ c: Int, _ src: (Int) -> UnsafeMutablePointer<Float>, _ dst: (Int) -> UnsafeMutablePointer<Float>) {
        switch self {
        case .f2:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3)
            for k in 0..<c {
                let a0 = s0[k], a1 = s1[k], a2 = s2[k], a3 = s3[k]
                d0[k] = a0 - a2
                d1[k] = a1 + a2
                d2[k] = a2 - a1
                d3[k] = a1 - a3
            }
        case .f4:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3), s4 = src(4), s5 = src(5)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3), d4 = dst(4), d5 = dst(5)
            for k in 0..<c {
                let a0 = s0[k], a1 = s1[k], a2 = s2[k], a3 = s3[k], a4 = s4[k], a5 = s5[k]
                d0[k] = 4 * a0 - 5 * a2 + a4
                d1[k] = -4 * (a1 + a2) + a3 + a4
                d2[k] = 4 * (a1 - a2) - a3 + a4
                d3[k] = 2 * (a3 - a1) - a2 + a4
                d4[k] = 2 * (a1 - a3) - a2 + a4
                d5[k] = 4 * a1 - 5 * a3 + a5
            }
        case .f4r2:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3), s4 = src(4)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3), d4 = dst(4)
            for k in 0..<c {
                let a0 = s0[k], a1 = s1[k], a2 = s2[k], a3 = s3[k], a4 = s4[k]
                d0[k] = 0.5 * (a0 - a2) - a1 + a3
                d1[k] = 0.5 * (a2 - a1) + a3
                d2[k] = 0.5 * a1 - 1.5 * a2 + a3
                d3[k] = a3 - a1
                d4[k] = 0.5 * (a1 - a3) - a2 + a4
            }
        case .f2r2:
            let s0 = src(0), s1 = src(1), s2 = src(2)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2)
            for k in 0..<c {
                let a1 = s1[k]
                d0[k] = s0[k] + a1
                d1[k] = a1
                d2[k] = a1 + s2[k]
            }
        }
    }

    /// Aᵀ applied to α vectors: `out[i][k] = Σ_j Aᵀ[i][j]·src[j][k] + bias[k]` for i < m.
    /// Sets `nonFinite` when an output is NaN or ±Inf (exponent bits all ones; an integer OR, so
    /// the loop still vectorises).
    ///   F(2): Aᵀ = [1 1 1 0; 0 1 -1 -1]
    ///   F(4): Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
    ///   F(4, r=2): Aᵀ = [1 1 1 1 0; 0 1 -1 ½ 0; 0 1 1 ¼ 0; 0 1 -1 ⅛ 1]
    ///   F(2, r=2): Aᵀ = [1 1 0; 0 -1 1]
    @inline(__always)
    func outputRows(_ c: Int, _ src: (Int) -> UnsafeMutablePointer<Float>, _ dst: (Int) -> UnsafeMutablePointer<Float>,
                    bias: UnsafePointer<Float>, nonFinite: inout Bool) {
        var flags: UInt32 = 0
        defer { if flags != 0 { nonFinite = true } }
        @inline(__always) func check(_ a: Float) -> UInt32 { a.bitPattern & 0x7F80_0000 == 0x7F80_0000 ? 1 : 0 }
        switch self {
        case .f2:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3)
            let d0 = dst(0), d1 = dst(1)
            for k in 0..<c {
                let y0 = s0[k] + s1[k] + s2[k] + bias[k]
                let y1 = s1[k] - s2[k] - s3[k] + bias[k]
                d0[k] = y0
                d1[k] = y1
                flags |= check(y0) | check(y1)
            }
        case .f4:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3), s4 = src(4), s5 = src(5)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3)
            for k in 0..<c {
                let a1 = s1[k], a2 = s2[k], a3 = s3[k], a4 = s4[k]
                let p12 = a1 + a2, d12 = a1 - a2, p34 = a3 + a4, d34 = a3 - a4
                let b = bias[k]
                let y0 = s0[k] + p12 + p34 + b, y1 = d12 + 2 * d34 + b
                let y2 = p12 + 4 * p34 + b, y3 = d12 + 8 * d34 + s5[k] + b
                d0[k] = y0
                d1[k] = y1
                d2[k] = y2
                d3[k] = y3
                flags |= check(y0) | check(y1) | check(y2) | check(y3)
            }
        case .f4r2:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3), s4 = src(4)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3)
            for k in 0..<c {
                let a1 = s1[k], a2 = s2[k], a3 = s3[k]
                let p12 = a1 + a2, d12 = a1 - a2
                let b = bias[k]
                let y0 = s0[k] + p12 + a3 + b, y1 = d12 + 0.5 * a3 + b
                let y2 = p12 + 0.25 * a3 + b, y3 = d12 + 0.125 * a3 + s4[k] + b
                d0[k] = y0
                d1[k] = y1
                d2[k] = y2
                d3[k] = y3
                flags |= check(y0) | check(y1) | check(y2) | check(y3)
            }
        case .f2r2:
            let s0 = src(0), s1 = src(1), s2 = src(2)
            let d0 = dst(0), d1 = dst(1)
            for k in 0..<c {
                let b = bias[k]
                let y0 = s0[k] + s1[k] + b, y1 = s2[k] - s1[k] + b
                d0[k] = y0
                d1[k] = y1
                flags |= check(y0) | check(y1)
            }
        }
    }
}
