import CKernels

// Max pool, kernel 2, stride 2, no padding: output h/2 × w/2 (floor; the last odd row/column is
// dropped, as PyTorch does). A window gives its first maximum in reading order and NaN when it
// holds a NaN, like PyTorch; the loops are C kernels (sam3neck_maxpool_pairs / _rows).

/// Channel-major (NCHW) input `c × h × w` → `c × (h/2 · w/2)`. The rows' windows go through
/// `sam3neck_maxpool_pairs` (AVX2 where the CPU has it; `portable` forces the plain loop).
package func maxPool2x2ChannelMajor(
    _ x: UnsafePointer<Float>, channels c: Int, height h: Int, width w: Int,
    into out: UnsafeMutablePointer<Float>, threads: Int, portable: Bool = false
) {
    let oh = h / 2, ow = w / 2, plain: Int32 = portable ? 1 : 0
    nonisolated(unsafe) let x = x, out = out
    parallelFor(c, threads: threads) { ch in
        let plane = x + ch * h * w
        let dst = out + ch * oh * ow
        for i in 0..<oh {
            let r0 = plane + 2 * i * w
            sam3neck_maxpool_pairs(r0, r0 + w, dst + i * ow, ow, plain)
        }
    }
}

/// Channels-last (NHWC) input `h × w × c` → `(h/2 · w/2) × c`, each window's channels through
/// `sam3neck_maxpool_rows`.
package func maxPool2x2ChannelsLast(
    _ x: UnsafePointer<Float>, channels c: Int, height h: Int, width w: Int,
    into out: UnsafeMutablePointer<Float>, threads: Int, portable: Bool = false
) {
    let oh = h / 2, ow = w / 2, plain: Int32 = portable ? 1 : 0
    nonisolated(unsafe) let x = x, out = out
    parallelFor(oh, threads: threads) { i in
        for j in 0..<ow {
            let p00 = x + ((2 * i) * w + 2 * j) * c, p01 = p00 + c
            let p10 = p00 + w * c, p11 = p10 + c
            sam3neck_maxpool_rows(p00, p01, p10, p11, out + (i * ow + j) * c, c, plain)
        }
    }
}

/// The same pools over a half-precision input: each worker widens the two input rows a row of
/// windows needs into its scratch (`scratch + worker · scratchStride`, 2·w floats for NCHW, 2·w·c
/// for NHWC), so no converted copy of the input is made.
package func maxPool2x2Widening(
    _ x: UnsafeRawPointer, dtype: ElementType, channelsLast: Bool,
    channels c: Int, height h: Int, width w: Int, into out: UnsafeMutablePointer<Float>,
    scratch: UnsafeMutablePointer<Float>, scratchStride: Int, threads: Int
) {
    let oh = h / 2, ow = w / 2, size = dtype.size, code = dtype.code
    nonisolated(unsafe) let x = x, out = out, scratch = scratch
    if !channelsLast {
        parallelQueue(c, threads: threads) { worker, ch in
            let rows = scratch + worker * scratchStride, r0 = rows, r1 = rows + w
            let dst = out + ch * oh * ow
            for i in 0..<oh {
                sam3neck_widen(x + (ch * h + 2 * i) * w * size, code, rows, 2 * w)  // rows 2i and 2i + 1
                sam3neck_maxpool_pairs(r0, r1, dst + i * ow, ow, 0)
            }
        }
    } else {
        parallelQueue(oh, threads: threads) { worker, i in
            let rows = scratch + worker * scratchStride
            sam3neck_widen(x + 2 * i * w * c * size, code, rows, 2 * w * c)
            for j in 0..<ow {
                let p00 = rows + 2 * j * c, p01 = p00 + c, p10 = p00 + w * c, p11 = p10 + c
                sam3neck_maxpool_rows(p00, p01, p10, p11, out + (i * ow + j) * c, c, 0)
            }
        }
    }
}
