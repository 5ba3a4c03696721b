/// The plan's options and the model's layers mapped onto the kernels' plain parameters: the
/// kernels (`Kernels/`) know element types, strides and float arrays, not options or layers.

extension CompileOptions.DType {
    /// The kernels' element type.
    package var element: ElementType { ElementType(rawValue: Int32(rawValue))! }
    /// Bytes per element.
    package var size: Int { element.size }
    /// The kernels' code for it (SAM3NECK_DTYPE_*).
    var code: Int32 { element.code }
    package var name: String {
        switch self {
        case .float32: return "float32"
        case .float16: return "float16"
        case .bfloat16: return "bfloat16"
        }
    }
}

extension OutputTarget {
    /// Image `image` of a `[B, d, h, w]` output stored in `layout` at `base`.
    package init(
        _ layout: CompileOptions.OutputLayout, dtype: CompileOptions.DType, base: UnsafeMutableRawPointer,
        image: Int, batch: Int, channels d: Int, height h: Int, width w: Int
    ) {
        let channel: Int, row: Int, pixel: Int
        let elements: Int  // offset of the image, in elements
        switch layout {
        case .nchw:
            elements = image * d * h * w
            (channel, row, pixel) = (h * w, w, 1)
        case .nhwc:
            elements = image * h * w * d
            (channel, row, pixel) = (1, w * d, d)
        case .sequence:
            elements = image * d
            (channel, row, pixel) = (1, w * batch * d, batch * d)
        }
        self.init(base: base + elements * dtype.size, channel: channel, row: row, pixel: pixel, dtype: dtype.element)
    }
}

extension WinogradConv3x3 {
    /// The 3×3 conv of a layer as loaded (`[cout][cin][3][3]` and its bias).
    package init(
        _ layer: NeckWeights.Layer, tile: WinogradTile, blockTiles: Int = 108, gemm: GemmBackend = .openBLAS,
        bf16x3: Bool = false, bf16: Int32? = nil
    ) {
        let shape = layer.weight.shape
        precondition(shape.count == 4 && shape[2] == 3 && shape[3] == 3 && layer.bias.shape == [shape[0]])
        self.init(
            weight: layer.weight.data, bias: layer.bias.data, cout: shape[0], cin: shape[1], tile: tile,
            blockTiles: blockTiles, gemm: gemm, bf16x3: bf16x3, bf16: bf16)
    }
}

extension UpsampleConv3x3 {
    /// Level 0's last two layers: `up` (dconv_2x2_1 with conv_1x1 folded in) and the 3×3 conv `conv`.
    package init(
        up: PackedWeights.Gemm, conv layer: NeckWeights.Layer, tile: WinogradTile = .f4r2, blockTiles: Int = 108,
        gemm: GemmBackend = .openBLAS, bf16x3: Bool = false, bf16: Int32? = nil
    ) {
        let d = layer.weight.shape[0]
        precondition(layer.weight.shape == [d, d, 3, 3] && layer.bias.shape == [d])
        self.init(
            up: up, convWeight: layer.weight.data, convBias: layer.bias.data, tile: tile, blockTiles: blockTiles,
            gemm: gemm, bf16x3: bf16x3, bf16: bf16)
    }
}
