/// Max pool, kernel 2, stride 2, no padding: output h/2 × w/2 (floor; the last odd row/column is
/// dropped, as PyTorch does). NaN propagates: a window holding a NaN gives NaN, like PyTorch.
@inlinable
func max4(_ a: Float, _ b: Float, _ c: Float, _ d: Float) -> Float {
    var m = a
    // `m` stays NaN once it is NaN, since every comparison with NaN is false.
    if b > m || b.isNaN { m = b }
    if c > m || c.isNaN { m = c }
    if d > m || d.isNaN { m = d }
    return m
}

/// Channel-major (NCHW) input `c × h × w` → `c × (h/2 · w/2)`.
package func maxPool2x2ChannelMajor(_ x: UnsafePointer<Float>, channels c: Int, height h: Int, width w: Int,
                                   into out: UnsafeMutablePointer<Float>, threads: Int) {
    let oh = h / 2, ow = w / 2
    nonisolated(unsafe) let x = x, out = out
    parallelFor(c, threads: threads) { ch in
        let plane = x + ch * h * w
        let dst = out + ch * oh * ow
        for i in 0..<oh {
            let r0 = plane + 2 * i * w, r1 = r0 + w
            for j in 0..<ow {
                dst[i * ow + j] = max4(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1])
            }
        }
    }
}

/// Channels-last (NHWC) input `h × w × c` → `(h/2 · w/2) × c`.
package func maxPool2x2ChannelsLast(_ x: UnsafePointer<Float>, channels c: Int, height h: Int, width w: Int,
                                   into out: UnsafeMutablePointer<Float>, threads: Int) {
    let oh = h / 2, ow = w / 2
    nonisolated(unsafe) let x = x, out = out
    parallelFor(oh, threads: threads) { i in
        for j in 0..<ow {
            let p00 = x + ((2 * i) * w + 2 * j) * c, p01 = p00 + c
            let p10 = p00 + w * c, p11 = p10 + c
            let dst = out + (i * ow + j) * c
            for k in 0..<c { dst[k] = max4(p00[k], p01[k], p10[k], p11[k]) }
        }
    }
}
