#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sine position encoding of SAM 3 (`PositionEmbeddingSine`, normalised, scale 2π), shape
/// `[d, h, w]`, channel-major.
///
/// F = d/2 channels per axis, y half first. Channel k of a half is sin(v / T^(2⌊k/2⌋/F)) for even
/// k and cos(…) for odd k, with v = (r+1)/(n+ε)·2π for row (or column) r of n. Computed in
/// double and rounded once, so each value is the float nearest the formula's.
public func positionEncoding(dModel d: Int, height h: Int, width w: Int) -> [Float] {
    precondition(d % 2 == 0, "d_model must be even for the sine position encoding")
    let f = d / 2
    let temperature = 10_000.0, eps = 1e-6, scale = 2 * Double.pi
    var out = [Float](repeating: 0, count: d * h * w)
    // One value per (channel of a half, position along its axis).
    func table(_ n: Int) -> [Float] {
        var t = [Float](repeating: 0, count: f * n)
        for k in 0..<f {
            let dimT = pow(temperature, Double(2 * (k / 2)) / Double(f))
            for r in 0..<n {
                let v = Double(r + 1) / (Double(n) + eps) * scale / dimT
                t[k * n + r] = Float(k % 2 == 0 ? sin(v) : cos(v))
            }
        }
        return t
    }
    let ty = table(h), tx = table(w)
    for k in 0..<f {
        for r in 0..<h {
            for c in 0..<w {
                out[(k * h + r) * w + c] = ty[k * h + r]
                out[((f + k) * h + r) * w + c] = tx[k * w + c]
            }
        }
    }
    return out
}
