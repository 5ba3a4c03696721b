/// The Winograd tiles the plan uses. Each gives its transform matrices (G for the weight
/// transform, done once in double) and hand-written input/output transforms (run per tile,
/// vectorised over channels, which are contiguous in the channels-last frame).
///
/// Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A computes the m×m correlation of an α×α input tile d with an
/// r×r kernel g, α = m + r − 1, from α² products instead of m²·r².
package enum WinogradTile: Sendable {
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
    package var m: Int { self == .f2 || self == .f2r2 ? 2 : 4 }
    package var r: Int { self == .f4r2 || self == .f2r2 ? 2 : 3 }
    package var alpha: Int { m + r - 1 }

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
    /// Channels go eight at a time (`forLanes`).
    @inline(__always)
    func inputRows(_ c: Int, _ src: (Int) -> UnsafeMutablePointer<Float>, _ dst: (Int) -> UnsafeMutablePointer<Float>) {
        switch self {
        case .f2:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3)
            forLanes(c) { L in
                let a0 = L.load(s0), a1 = L.load(s1), a2 = L.load(s2), a3 = L.load(s3)
                (a0 - a2).store(d0, L)
                (a1 + a2).store(d1, L)
                (a2 - a1).store(d2, L)
                (a1 - a3).store(d3, L)
            }
        case .f4:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3), s4 = src(4), s5 = src(5)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3), d4 = dst(4), d5 = dst(5)
            forLanes(c) { L in
                let a0 = L.load(s0), a1 = L.load(s1), a2 = L.load(s2), a3 = L.load(s3), a4 = L.load(s4), a5 = L.load(s5)
                (4 * a0 - 5 * a2 + a4).store(d0, L)
                (-4 * (a1 + a2) + a3 + a4).store(d1, L)
                (4 * (a1 - a2) - a3 + a4).store(d2, L)
                (2 * (a3 - a1) - a2 + a4).store(d3, L)
                (2 * (a1 - a3) - a2 + a4).store(d4, L)
                (4 * a1 - 5 * a3 + a5).store(d5, L)
            }
        case .f4r2:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3), s4 = src(4)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3), d4 = dst(4)
            forLanes(c) { L in
                let a0 = L.load(s0), a1 = L.load(s1), a2 = L.load(s2), a3 = L.load(s3), a4 = L.load(s4)
                (0.5 * (a0 - a2) - a1 + a3).store(d0, L)
                (0.5 * (a2 - a1) + a3).store(d1, L)
                (0.5 * a1 - 1.5 * a2 + a3).store(d2, L)
                (a3 - a1).store(d3, L)
                (0.5 * (a1 - a3) - a2 + a4).store(d4, L)
            }
        case .f2r2:
            let s0 = src(0), s1 = src(1), s2 = src(2)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2)
            forLanes(c) { L in
                let a1 = L.load(s1)
                (L.load(s0) + a1).store(d0, L)
                a1.store(d1, L)
                (a1 + L.load(s2)).store(d2, L)
            }
        }
    }

    /// Aᵀ applied to α vectors: `out[i][k] = Σ_j Aᵀ[i][j]·src[j][k] + bias[k]` for i < m.
    /// Sets `nonFinite` when an output is NaN or ±Inf (exponent bits all ones). Vectorised as
    /// `inputRows`.
    ///   F(2): Aᵀ = [1 1 1 0; 0 1 -1 -1]
    ///   F(4): Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
    ///   F(4, r=2): Aᵀ = [1 1 1 1 0; 0 1 -1 ½ 0; 0 1 1 ¼ 0; 0 1 -1 ⅛ 1]
    ///   F(2, r=2): Aᵀ = [1 1 0; 0 -1 1]
    @inline(__always)
    func outputRows(_ c: Int, _ src: (Int) -> UnsafeMutablePointer<Float>, _ dst: (Int) -> UnsafeMutablePointer<Float>,
                    bias: UnsafePointer<Float>, nonFinite: inout Bool) {
        // y − y is +0 for every finite y and NaN for NaN and ±Inf: the sum of these stays 0 until an
        // output is non-finite, in plain vector adds; its lanes are looked at once, at the end.
        var flags = SIMD8<Float>(repeating: 0)
        defer {
            for i in 0..<8 where flags[i] != 0 { nonFinite = true }
        }
        let bias = UnsafeMutablePointer(mutating: bias)  // only read
        switch self {
        case .f2:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3)
            let d0 = dst(0), d1 = dst(1)
            forLanes(c) { L in
                let b = L.load(bias)
                let y0 = L.load(s0) + L.load(s1) + L.load(s2) + b
                let y1 = L.load(s1) - L.load(s2) - L.load(s3) + b
                y0.store(d0, L)
                y1.store(d1, L)
                flags += (y0 - y0) + (y1 - y1)
            }
        case .f4:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3), s4 = src(4), s5 = src(5)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3)
            forLanes(c) { L in
                let a1 = L.load(s1), a2 = L.load(s2), a3 = L.load(s3), a4 = L.load(s4)
                let p12 = a1 + a2, d12 = a1 - a2, p34 = a3 + a4, d34 = a3 - a4
                let b = L.load(bias)
                let y0 = L.load(s0) + p12 + p34 + b, y1 = d12 + 2 * d34 + b
                let y2 = p12 + 4 * p34 + b, y3 = d12 + 8 * d34 + L.load(s5) + b
                y0.store(d0, L)
                y1.store(d1, L)
                y2.store(d2, L)
                y3.store(d3, L)
                flags += (y0 - y0) + (y1 - y1) + (y2 - y2) + (y3 - y3)
            }
        case .f4r2:
            let s0 = src(0), s1 = src(1), s2 = src(2), s3 = src(3), s4 = src(4)
            let d0 = dst(0), d1 = dst(1), d2 = dst(2), d3 = dst(3)
            forLanes(c) { L in
                let a1 = L.load(s1), a2 = L.load(s2), a3 = L.load(s3)
                let p12 = a1 + a2, d12 = a1 - a2
                let b = L.load(bias)
                let y0 = L.load(s0) + p12 + a3 + b, y1 = d12 + 0.5 * a3 + b
                let y2 = p12 + 0.25 * a3 + b, y3 = d12 + 0.125 * a3 + L.load(s4) + b
                y0.store(d0, L)
                y1.store(d1, L)
                y2.store(d2, L)
                y3.store(d3, L)
                flags += (y0 - y0) + (y1 - y1) + (y2 - y2) + (y3 - y3)
            }
        case .f2r2:
            let s0 = src(0), s1 = src(1), s2 = src(2)
            let d0 = dst(0), d1 = dst(1)
            forLanes(c) { L in
                let b = L.load(bias), a1 = L.load(s1)
                let y0 = L.load(s0) + a1 + b, y1 = L.load(s2) - a1 + b
                y0.store(d0, L)
                y1.store(d1, L)
                flags += (y0 - y0) + (y1 - y1)
            }
        }
    }
}

/// Eight channels of a transform: `k` the first, `n` how many are real (8 but at the end).
struct Lanes {
    let k: Int, n: Int

    @inline(__always) func load(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
        if n == 8 { return UnsafeRawPointer(p + k).loadUnaligned(as: SIMD8<Float>.self) }
        var v = SIMD8<Float>(repeating: 0)
        for i in 0..<n { v[i] = p[k + i] }
        return v
    }
}

extension SIMD8 where Scalar == Float {
    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>, _ l: Lanes) {
        if l.n == 8 {
            UnsafeMutableRawPointer(p + l.k).storeBytes(of: self, as: SIMD8<Float>.self)
        } else {
            for i in 0..<l.n { p[l.k + i] = self[i] }
        }
    }

}

/// Runs `body` over the channels eight at a time as `SIMD8<Float>` (the compiler cannot vectorise
/// the plain loops: it cannot rule out that the α sources and outputs overlap); the last chunk
/// may be partial. Each lane does exactly the scalar arithmetic.
@inline(__always)
func forLanes(_ c: Int, _ body: (Lanes) -> Void) {
    var k = 0
    while k < c {
        body(Lanes(k: k, n: min(8, c - k)))
        k += 8
    }
}
