/// The shape of a four-dimensional feature map, always in the logical order batch, channels,
/// height, width — whatever order the values are stored in.
///
/// The neck's input and every level of its output are 4-D. Naming the four sizes (instead of
/// passing `[Int]`) lets an error message say which one is wrong, and lets callers compare shapes
/// without caring about the memory layout.
public struct FeatureShape: Sendable, Hashable, CustomStringConvertible {
    /// Images in the batch (`B`).
    public var batch: Int
    /// Channels per pixel (`C`): the trunk width for the input, `d_model` for the outputs.
    public var channels: Int
    /// Rows of the grid (`H`).
    public var height: Int
    /// Columns of the grid (`W`).
    public var width: Int

    /// Makes a shape from its four sizes; nothing is checked here (a ``FeatureMap`` checks that
    /// its values fit the shape, and a plan checks the shapes it is given).
    public init(batch: Int, channels: Int, height: Int, width: Int) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// The number of floats a map of this shape holds, `B·C·H·W`, or nil if a size is negative
    /// or the product overflows — so that a bad shape is reported instead of trapping.
    public var count: Int? {
        guard batch >= 0, channels >= 0, height >= 0, width >= 0 else { return nil }
        var total = 1
        for size in [batch, channels, height, width] {
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            if overflow { return nil }
            total = product
        }
        return total
    }

    /// `[B, C, H, W]`, the order PyTorch and the C ABI (`sam3_neck_level_shape`) use.
    public var dimensions: [Int] { [batch, channels, height, width] }

    /// The sizes in storage order for `layout`: `[B, C, H, W]` for NCHW, `[B, H, W, C]` for
    /// NHWC, as the values of a map with this layout are laid out in memory.
    public func dimensions(in layout: CompileOptions.Layout) -> [Int] {
        layout == .nchw ? [batch, channels, height, width] : [batch, height, width, channels]
    }

    /// `[B, C, H, W]` with the numbers, e.g. `[1, 256, 288, 288]`.
    public var description: String { "[\(batch), \(channels), \(height), \(width)]" }
}

/// A float32 feature map: values with their shape and memory layout, kept together so that no
/// caller has to pass a pointer and a count that might disagree.
///
/// The neck's safe API takes its input as a `FeatureMap` (or a plain `[Float]`) and returns each
/// output level as one. The values are stored row-major in the order of ``layout``: NCHW maps
/// channel-major, NHWC maps channels-last.
///
/// ```swift
/// let plan = try Neck(path: "sam3.safetensors").compile(height: 72, width: 72, layout: .nhwc)
/// var x = FeatureMap(zeros: plan.inputShape, layout: plan.options.layout)
/// x[0, 3, 10, 20] = 1.5          // batch 0, channel 3, row 10, column 20, whatever the layout
/// ```
public struct FeatureMap: Sendable, Equatable {
    /// The logical shape, `[B, C, H, W]` whatever the layout.
    public let shape: FeatureShape
    /// The order of ``values`` in memory.
    public let layout: CompileOptions.Layout
    /// The values, `shape.count` of them, in ``layout`` order. Read-only from outside the
    /// module, so the count always matches the shape; change single values through the subscript.
    public internal(set) var values: [Float]

    /// Wraps `values` (in `layout` order) as a map of `shape`.
    ///
    /// - Throws: ``NeckError`` `.shape` when a size is negative, or when the number of values is
    ///   not `B·C·H·W`; the message names the shape, the layout and both counts.
    public init(shape: FeatureShape, layout: CompileOptions.Layout = .nchw, values: [Float]) throws {
        guard let count = shape.count else {
            throw NeckError(
                .shape, "feature map shape \(shape) has a negative size or more elements than fit in an Int")
        }
        guard values.count == count else {
            throw NeckError(
                .shape,
                "feature map of shape \(shape) (\(layout.name), \(FeatureShape.dimensionNames(layout))) needs \(count) values, got \(values.count)"
            )
        }
        self.shape = shape
        self.layout = layout
        self.values = values
    }

    /// A map of `shape` filled with zeros: the way to make an input to fill in, or output
    /// storage to hand to ``NeckPlan/run(_:into:)``.
    ///
    /// - Precondition: no size is negative and `B·C·H·W` fits in an `Int` (a programming error,
    ///   like an array of negative length); use ``init(shape:layout:values:)`` for shapes that
    ///   come from outside.
    public init(zeros shape: FeatureShape, layout: CompileOptions.Layout = .nchw) {
        guard let count = shape.count else {
            preconditionFailure("FeatureMap(zeros:): shape \(shape) has a negative size or too many elements")
        }
        self.shape = shape
        self.layout = layout
        self.values = [Float](repeating: 0, count: count)
    }

    /// The position of element (`n`, `c`, `y`, `x`) in ``values``, for this map's layout.
    ///
    /// - Precondition: each coordinate is within the shape (checked, like an array index).
    public func index(_ n: Int, _ c: Int, _ y: Int, _ x: Int) -> Int {
        precondition(
            n >= 0 && n < shape.batch && c >= 0 && c < shape.channels
                && y >= 0 && y < shape.height && x >= 0 && x < shape.width,
            "FeatureMap index (\(n), \(c), \(y), \(x)) is outside the shape \(shape)")
        switch layout {
        case .nchw: return ((n * shape.channels + c) * shape.height + y) * shape.width + x
        case .nhwc: return ((n * shape.height + y) * shape.width + x) * shape.channels + c
        }
    }

    /// Element (`n`, `c`, `y`, `x`) — batch, channel, row, column — in either layout, so code
    /// that reads or fills a map need not know how it is stored. Traps outside the shape.
    public subscript(n: Int, c: Int, y: Int, x: Int) -> Float {
        get { values[index(n, c, y, x)] }
        set { values[index(n, c, y, x)] = newValue }
    }
}

/// One level of the neck's output pyramid: which level it is, its scale, and its features.
///
/// Position encodings are not part of a run's result: they depend only on the compiled shape,
/// so ask the plan for them once (``NeckPlan/positionEncoding(level:)``).
public struct NeckLevel: Sendable, Equatable {
    /// The level's index, 0 to 3.
    public let level: Int
    /// The level's scale relative to the input grid: 4, 2, 1 or 0.5.
    public let scale: Float
    /// The features, `[B, d_model, h, w]`, stored in the compiled output layout (NCHW unless
    /// the plan was compiled for NHWC outputs).
    public internal(set) var features: FeatureMap
}

extension CompileOptions.Layout {
    /// "NCHW" or "NHWC", for messages.
    public var name: String { self == .nchw ? "NCHW" : "NHWC" }
}

extension FeatureShape {
    /// "[B, C, H, W]" or "[B, H, W, C]", for messages.
    static func dimensionNames(_ layout: CompileOptions.Layout) -> String {
        layout == .nchw ? "[B, C, H, W]" : "[B, H, W, C]"
    }
}
