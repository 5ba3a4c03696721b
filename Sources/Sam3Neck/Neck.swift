/// The neck: weights loaded from a checkpoint, ready to be compiled for input shapes.
///
/// ```swift
/// let neck = try Neck(path: "sam3.safetensors")         // reads only the neck's tensors
/// let plan = try neck.compile(CompileOptions(height: 72, width: 72))
/// let x = FeatureMap(zeros: plan.inputShape)            // [1, trunkDim, 72, 72]: the trunk's output
/// for level in try plan.run(x) {                        // levels 0...3, scales 4, 2, 1, 0.5
///     print(level.level, level.features.shape)
/// }
/// ```
public final class Neck: Sendable {
    package let weights: NeckWeights
    /// Weight forms the plans need, made on first request and shared by every plan compiled from
    /// this neck: the packed products, level 0's composed conv and the 3×3 convs per Winograd tile.
    /// Behind a lock, so compiles on different threads can share a neck.
    private let cache = Locked(PreparedWeights())

    private struct Key: Hashable {
        let tile: WinogradTile
        let gemm: GemmBackend
        var bf16x3 = false
        var bf16: Int32? = nil
    }

    private struct PreparedWeights {
        var packed: PackedWeights?
        /// Per tile and product code (their weights are stored in the layout that code reads).
        var upsample: [Key: UpsampleConv3x3] = [:]
        /// Per tile and product code, the 3×3 conv of each level made so far (level 0 uses
        /// `upsample` instead).
        var convs: [Key: [Int: WinogradConv3x3]] = [:]
        /// The phase-1 products with their bfloat16 forms (the fast mode), by level.
        var bf16Products: [Int: PackedGemm] = [:]
    }

    /// The input's channels `C`, the trunk's width (1024 for SAM 3), read from the checkpoint's
    /// tensor shapes.
    public var trunkDim: Int { weights.trunkDim }
    /// The channels `d` of every output level (256 for SAM 3), read from the checkpoint.
    public var dModel: Int { weights.dModel }
    /// Each level's scale relative to the input grid, by level: 4, 2, 1, 0.5.
    public static var scales: [Float] { NeckWeights.scales }

    /// Also sets OpenBLAS's process-wide thread count to one, for good (see `Blas`).
    package init(weights: NeckWeights) {
        self.weights = weights
        Blas.useOneThread()
    }

    /// Loads from a checkpoint: safetensors, a PyTorch zip (`torch.save`, e.g. `sam3.pt`), or a
    /// sharded safetensors index (or its folder). Only the neck's tensors are read.
    public convenience init(path: String, kind: NeckKind = .sam3, prefix: String? = nil) throws {
        self.init(weights: try NeckWeights.load(Checkpoint.open(path: path), kind: kind, prefix: prefix))
    }

    /// Compiles a plan for one input shape.
    public func compile(_ options: CompileOptions) throws -> NeckPlan {
        try options.validate()
        try GemmBackend.checkEnvironment()
        // Level 0's tail is one composed conv; levels 1-3 use a 3×3 Winograd conv; the tiles (and
        // whether the products are held split for AMX) follow the mode and the CPU.
        let (upTile, upSplit) = NeckPlan.upsampleTile(options)
        let (tile, convSplit) = NeckPlan.winogradTile(options)
        let fast = options.fastKernel, gemm = options.productGemm
        let (packed, upsample, convs, products) = cache.withLock { c in
            let packsProducts = gemm != .openBLAS
            // The phase-1 products in the form this plan's product code reads (tests mix the two).
            var packed = c.packed ?? PackedWeights(weights, packProducts: packsProducts)
            if packed.packedProducts.isEmpty == packsProducts {
                packed = PackedWeights(weights, packProducts: packsProducts)
            }
            c.packed = packed
            var upsample: UpsampleConv3x3?
            if options.includes(level: 0) {
                let key = Key(tile: upTile, gemm: gemm, bf16x3: upSplit, bf16: fast)
                upsample =
                    c.upsample[key]
                    ?? UpsampleConv3x3(
                        up: packed.up4Second, conv: packed.conv3x3[0], tile: upTile,
                        gemm: gemm, bf16x3: upSplit, bf16: fast)
                c.upsample[key] = upsample
            }
            let key = Key(tile: tile, gemm: gemm, bf16x3: convSplit, bf16: fast)
            var convs = c.convs[key] ?? [:]
            let missing = options.levels.filter { $0 > 0 && convs[$0] == nil }
            convs.merge(packed.winograd(tile, levels: missing, gemm: gemm, bf16x3: convSplit, bf16: fast)) { made, _ in
                made
            }
            c.convs[key] = convs
            var products: [Int: PackedGemm] = [:]
            if packsProducts {
                for level in options.levels {
                    products[level] =
                        fast == nil
                        ? packed.packedProducts[level]
                        : c.bf16Products[level] ?? packed.packedProducts[level].withBF16()
                    if fast != nil { c.bf16Products[level] = products[level] }
                }
            }
            return (c.packed!, upsample, convs, products)
        }
        return try NeckPlan(packed: packed, upsample: upsample, convs: convs, products: products, options: options)
    }
}
