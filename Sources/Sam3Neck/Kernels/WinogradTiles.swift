import CKernels

/// The Winograd tiles the plan uses. Each gives its transform matrix G for the weight transform
/// (done once in double); the input and output transforms, run per tile and vectorised over
/// channels (contiguous in the channels-last frame), are C (`Sources/CKernels/winograd.c`).
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
    /// F(3×3, 2×2): 4×4 input tiles, 2.25× fewer multiplies, points 0, ±1 (constants 0, ±1, ½, as
    /// F(2×2, 3×3)): the same composition in strict mode, its rounding at the level of direct sums
    /// (it replaced F(2×2, 2×2), 1.78×, whose error it matches; docs/accuracy.md).
    case f3r2

    /// Output tile side m, kernel side r and input tile side α = m + r − 1.
    package var m: Int {
        switch self {
        case .f2: return 2
        case .f3r2: return 3
        case .f4, .f4r2: return 4
        }
    }
    package var r: Int { self == .f2 || self == .f4 ? 3 : 2 }
    package var alpha: Int { m + r - 1 }

    /// G (α × r), for U = G g Gᵀ.
    var g: [[Double]] {
        switch self {
        case .f2: return [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        case .f4:
            return [
                [1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1],
            ]
        case .f4r2: return [[2, 0], [1, 1], [-1.0 / 3, 1.0 / 3], [-8.0 / 3, -4.0 / 3], [0, 1]]
        case .f3r2: return [[-1, 0], [0.5, 0.5], [0.5, -0.5], [0, 1]]
        }
    }

    /// The C transforms' name for it (`sam3neck_winograd_input` / `_output`, which hold Bᵀ and Aᵀ).
    var code: Int32 {
        switch self {
        case .f2: return Int32(SAM3NECK_WINOGRAD_F2)
        case .f4: return Int32(SAM3NECK_WINOGRAD_F4)
        case .f4r2: return Int32(SAM3NECK_WINOGRAD_F4R2)
        case .f3r2: return Int32(SAM3NECK_WINOGRAD_F3R2)
        }
    }
}
