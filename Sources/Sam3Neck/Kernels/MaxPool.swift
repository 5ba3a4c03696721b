import CKernels

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

/// The same pools over a half-precision input: each worker widens the two input rows a row of
/// windows needs into its scratch (`scratch + worker · scratchStride`, 2·w floats for NCHW, 2·w·c
/// for NHWC), so no converted copy of the input is made.
package func maxPool2x2Widening(_ x: UnsafeRawPointer, dtype: CompileOptions.DType, layout: CompileOptions.Layout,
                                channels c: Int, height h: Int, width w: Int, into out: UnsafeMutablePointer<Float>,
                                scratch: UnsafeMutablePointer<Float>, scratchStride: Int, threads: Int) {
    let oh = h / 2, ow = w / 2, size = dtype.size, code = dtype.code
    nonisolated(unsafe) let x = x, out = out, scratch = scratch
    if layout == .nchw {
        parallelQueue(c, threads: threads) { worker, ch in
            let rows = scratch + worker * scratchStride, r0 = rows, r1 = rows + w
            let dst = out + ch * oh * ow
            for i in 0..<oh {
                sam3neck_widen(x + (ch * h + 2 * i) * w * size, code, rows, 2 * w)  // rows 2i and 2i + 1
                for j in 0..<ow { dst[i * ow + j] = max4(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]) }
            }
        }
    } else {
        parallelQueue(oh, threads: threads) { worker, i in
            let rows = scratch + worker * scratchStride
            sam3neck_widen(x + 2 * i * w * c * size, code, rows, 2 * w * c)
            for j in 0..<ow {
                let p00 = rows + 2 * j * c, p01 = p00 + c, p10 = p00 + w * c, p11 = p10 + c
                let dst = out + (i * ow + j) * c
                for k in 0..<c { dst[k] = max4(p00[k], p01[k], p10[k], p11[k]) }
            }
        }
    }
}
