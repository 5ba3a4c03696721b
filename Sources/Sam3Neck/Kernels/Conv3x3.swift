/// 3×3 conv, padding 1, as nine accumulated GEMMs over a flat view of a zero-bordered image.
///
/// In the padded channels-last image, pixel (y, x) of the output reads padded pixels
/// (y+ky, x+kx). Numbering padded pixels flatly, q = y·(w+2) + x, tap (ky, kx) reads pixel
/// q + ky·(w+2) + kx — a fixed shift. So for a band of rows, every tap is one GEMM over a
/// contiguous run of pixels; the two extra columns per row it computes are discarded by the
/// epilogue, which adds the bias and writes channel-major (NCHW) rows into the caller's buffer.
/// Bands keep the accumulator small (`bandColumns` pixels × d) instead of materialising an
/// im2col matrix.
public struct Conv3x3: Sendable {
    /// Packed weights: tap t = 3·ky + kx holds a d × cin row-major block (PyTorch [o, i, ky, kx]).
    public let taps: [Float]
    public let bias: [Float]
    public let cin: Int, cout: Int

    public init(weight: Tensor, bias: Tensor) {
        cout = weight.shape[0]
        cin = weight.shape[1]
        precondition(weight.shape == [cout, cin, 3, 3] && bias.shape == [cout])
        var taps = [Float](repeating: 0, count: 9 * cout * cin)
        for o in 0..<cout {
            for i in 0..<cin {
                for t in 0..<9 {
                    taps[(t * cout + o) * cin + i] = weight.data[(o * cin + i) * 9 + t]
                }
            }
        }
        self.taps = taps
        self.bias = bias.data
    }

    /// Rows per band for an image `width` pixels wide: enough columns (≈ 2048) for efficient
    /// products, at least one row.
    public static func bandRows(width: Int, height: Int) -> Int {
        max(1, min(height, 2048 / (width + 2)))
    }

    /// Floats of accumulator a run needs.
    public func accumulatorCount(width: Int, height: Int) -> Int {
        cout * Conv3x3.bandRows(width: width, height: height) * (width + 2)
    }

    /// Computes the conv of `src` (pad 1, slack ≥ 2) into `dst` (`cout × h × w`, channel-major).
    public func run(_ src: PaddedImage, into dst: UnsafeMutablePointer<Float>,
                    accumulator acc: UnsafeMutablePointer<Float>, threads: Int) {
        precondition(src.channels == cin && src.pad == 1 && src.slack >= 2)
        let h = src.height, w = src.width, pw = src.paddedWidth
        let rows = Conv3x3.bandRows(width: w, height: h)
        taps.withUnsafeBufferPointer { taps in
            bias.withUnsafeBufferPointer { bias in
                var y0 = 0
                while y0 < h {
                    let n = min(rows, h - y0)
                    let columns = n * pw
                    for t in 0..<9 {
                        let shift = (t / 3) * pw + t % 3
                        Blas.sgemm(transB: true, m: cout, n: columns, k: cin,
                                   a: taps.baseAddress! + t * cout * cin, lda: cin,
                                   b: src.base + (y0 * pw + shift) * cin, ldb: cin,
                                   beta: t == 0 ? 0 : 1, c: acc, ldc: columns)
                    }
                    // Epilogue: drop the two pad columns of each row, add the bias, write NCHW.
                    nonisolated(unsafe) let acc = acc, dst = dst, bias = bias
                    let y0Band = y0
                    parallelFor(cout, threads: threads) { o in
                        let b = bias[o]
                        for r in 0..<n {
                            let from = acc + o * columns + r * pw
                            let to = dst + (o * h + y0Band + r) * w
                            for x in 0..<w { to[x] = from[x] + b }
                        }
                    }
                    y0 += n
                }
            }
        }
    }
}
