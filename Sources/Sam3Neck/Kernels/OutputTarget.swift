import CKernels

/// Where a conv writes one output image, whatever the layout and element type: element (c, y, x)
/// lies at `c·channel + y·row + x·pixel` elements of `dtype` from `base`. NCHW, NHWC and the
/// sequence layout `[h·w, B, d]` are all such strides, so the kernels' final store is written once
/// (`sam3neck_store_tile`, which also rounds to half precision there).
package struct OutputTarget {
    package let base: UnsafeMutableRawPointer
    package let channel: Int, row: Int, pixel: Int
    package let dtype: ElementType

    package init(base: UnsafeMutableRawPointer, channel: Int, row: Int, pixel: Int, dtype: ElementType) {
        self.base = base
        self.channel = channel
        self.row = row
        self.pixel = pixel
        self.dtype = dtype
    }

    /// Stores `rows × cols` pixels of a channels-last tile (`y[(i·m + j)·ldy + o]`) with its first
    /// pixel at (y0, x0), successive rows `rowStep` apart.
    func store(
        _ y: UnsafePointer<Float>, ldy: Int, m: Int, rows: Int, cols: Int, channels: Int,
        y0: Int, x0: Int, rowStep: Int = 1
    ) {
        sam3neck_store_tile(
            y, ldy, Int32(m), Int32(rows), Int32(cols), Int32(channels),
            base + (y0 * row + x0 * pixel) * dtype.size, rowStep * row, pixel, channel, dtype.code)
    }
}
