import CKernels

/// Epilogue of a k=2, s=2 transposed conv computed as one GEMM.
///
/// With taps that never overlap, the transposed conv over an h×w grid is the product
/// `Y[p, (2a+b)·n + o] = Σ_c X[p, c] · W[c, o, a, b]` (p = i·w + j), followed by moving each
/// block (a, b) of row p to output pixel (2i+a, 2j+b). This pass adds the bias, applies GELU when
/// asked, and writes the pixels straight into the (padded) image the next layer reads.
/// `y` covers input rows `row0 ..< row0 + h`, so it fills output rows `2·row0 ..< 2·(row0 + h)`.
package func scatterTransposed2x2(
    _ y: UnsafePointer<Float>, height h: Int, width w: Int, channels n: Int,
    bias: UnsafePointer<Float>, gelu applyGELU: Bool,
    into dst: PaddedImage, row0: Int = 0, threads: Int
) {
    precondition(dst.height >= 2 * (row0 + h) && dst.width == 2 * w && dst.channels == n)
    nonisolated(unsafe) let y = y, bias = bias
    parallelFor(h, threads: threads) { i in
        for j in 0..<w {
            let row = y + (i * w + j) * 4 * n
            for a in 0..<2 {
                for b in 0..<2 {
                    let src = row + (2 * a + b) * n
                    let out = dst.pixel(2 * (row0 + i) + a, 2 * j + b)
                    if applyGELU {
                        sam3neck_bias_gelu(src, bias, out, n)
                    } else {
                        for o in 0..<n { out[o] = src[o] + bias[o] }
                    }
                }
            }
        }
    }
}

/// Copies a channels-last h×w×n product into rows `row0 ..< row0 + h` of a padded image's
/// interior, adding the bias (nil: already added).
package func copyAddingBias(
    _ y: UnsafePointer<Float>, height h: Int, width w: Int, channels n: Int,
    bias: UnsafePointer<Float>?, into dst: PaddedImage, row0: Int = 0, threads: Int
) {
    precondition(dst.height >= row0 + h && dst.width == w && dst.channels == n)
    nonisolated(unsafe) let y = y, bias = bias
    parallelFor(h, threads: threads) { i in
        for j in 0..<w {
            let src = y + (i * w + j) * n
            let out = dst.pixel(row0 + i, j)
            if let bias {
                for o in 0..<n { out[o] = src[o] + bias[o] }
            } else {
                out.update(from: src, count: n)
            }
        }
    }
}
