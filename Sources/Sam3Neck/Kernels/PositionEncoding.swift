#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sine position encoding of SAM 3 (`PositionEmbeddingSine`, normalised, scale 2π), shape
/// `[d, h, w]`, channel-major.
///
/// F = d/2 channels per axis, y half first. Channel k of a half is sin(v / T^(2⌊k/2⌋/F)) for even
/// k and cos(…) for odd k, with v = (r+1)/(n+ε)·2π for row (or column) r of n. Each value depends
/// on one axis only, so a plan keeps the two small tables (F × h and F × w, computed in double
/// and rounded once, so each value is the float nearest the formula's) and broadcasts them into
/// a caller's buffer on request, instead of holding d·h·w floats per level.
package struct PositionEncoding: Sendable {
    package let dModel: Int, height: Int, width: Int
    /// rows[k·h + r] and columns[k·w + c], k < F.
    private let rows: [Float], columns: [Float]

    package init(dModel d: Int, height h: Int, width w: Int) {
        precondition(d % 2 == 0, "d_model must be even for the sine position encoding")
        dModel = d
        height = h
        width = w
        let f = d / 2
        func table(_ n: Int) -> [Float] {
            var t = [Float](repeating: 0, count: f * n)
            for k in 0..<f {
                let dimT = pow(10_000.0, Double(2 * (k / 2)) / Double(f))
                for r in 0..<n {
                    let v = Double(r + 1) / (Double(n) + 1e-6) * (2 * Double.pi) / dimT
                    t[k * n + r] = Float(k % 2 == 0 ? sin(v) : cos(v))
                }
            }
            return t
        }
        rows = table(h)
        columns = table(w)
    }

    package var count: Int { dModel * height * width }

    /// Writes the `[d, h, w]` encoding to `out[0..<count]`.
    package func fill(_ out: UnsafeMutablePointer<Float>) {
        let f = dModel / 2, h = height, w = width
        for k in 0..<f {
            for r in 0..<h {
                (out + (k * h + r) * w).update(repeating: rows[k * h + r], count: w)
                let x = out + ((f + k) * h + r) * w
                columns.withUnsafeBufferPointer { x.update(from: $0.baseAddress! + k * w, count: w) }
            }
        }
    }

    /// The encoding as an array (tests, small grids).
    package var values: [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, n in
            fill(buffer.baseAddress!)
            n = count
        }
    }
}
