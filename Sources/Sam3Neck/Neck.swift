/// The neck: weights loaded from a checkpoint, ready to be compiled for input shapes.
///
/// ```swift
/// let neck = try Neck(path: "sam3.safetensors")
/// let plan = try neck.compile(CompileOptions(height: 72, width: 72))
/// plan.run(input: x, outputs: buffers)
/// ```
public final class Neck: @unchecked Sendable {
    public let weights: NeckWeights
    /// Packed once, on first compile, and shared by every plan compiled from this neck; the 3×3
    /// convs per Winograd tile size and level, and level 0's composed conv, as plans ask for them.
    private var packedCache: PackedWeights?
    private var winogradCache: [WinogradTile: [WinogradConv3x3?]] = [:]
    private var upsampleCache: [WinogradTile: UpsampleConv3x3] = [:]

    public var trunkDim: Int { weights.trunkDim }
    public var dModel: Int { weights.dModel }
    public static var scales: [Float] { NeckWeights.scales }

    /// Also sets OpenBLAS's process-wide thread count to one, for good (see `Blas`).
    public init(weights: NeckWeights) {
        self.weights = weights
        Blas.useOneThread()
    }

    /// Loads from a checkpoint: safetensors, a PyTorch zip (`torch.save`, e.g. `sam3.pt`), or a
    /// sharded safetensors index (or its folder). Only the neck's tensors are read.
    public convenience init(path: String, kind: NeckKind = .sam3, prefix: String? = nil) throws {
        self.init(weights: try NeckWeights.load(Checkpoint.open(path: path), kind: kind, prefix: prefix))
    }

    /// Loads from a checkpoint image in memory (safetensors or PyTorch zip); the bytes are not kept.
    public convenience init(bytes: UnsafeRawBufferPointer, kind: NeckKind = .sam3, prefix: String? = nil) throws {
        self.init(weights: try NeckWeights.load(Checkpoint.open(MemorySource(bytes)), kind: kind, prefix: prefix))
    }

    /// Compiles a plan for one input shape. Not safe to call concurrently on one neck.
    public func compile(_ options: CompileOptions) throws -> NeckPlan {
        try options.validate()
        if packedCache == nil { packedCache = PackedWeights(weights) }
        let packed = packedCache!
        // Level 0's tail is one composed conv; levels 1-3 use a 3×3 Winograd conv of the mode's tile.
        let upTile = NeckPlan.upsampleTile(options.precision)
        if options.includes(level: 0) && upsampleCache[upTile] == nil {
            upsampleCache[upTile] = UpsampleConv3x3(up: packed.up4Second, conv: packed.conv3x3[0], tile: upTile)
        }
        let tile = NeckPlan.winogradTile(options.precision)
        var convs = winogradCache[tile] ?? [nil, nil, nil, nil]
        let missing = options.levels.filter { $0 > 0 && convs[$0] == nil }
        if !missing.isEmpty {
            let made = packed.winograd(tile, levels: missing)
            for l in missing { convs[l] = made[l] }
            winogradCache[tile] = convs
        }
        return try NeckPlan(packed: packed, upsample: options.includes(level: 0) ? upsampleCache[upTile] : nil,
                            convs: convs, options: options)
    }
}
