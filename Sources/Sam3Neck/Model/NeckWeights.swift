/// The neck's weights in PyTorch's layouts, and the configuration they imply.
///
/// Widths are read off the tensors, not assumed: the trunk width C and d_model come from
/// `conv_1x1` of branch 2, every intermediate width from the layer that produces it, and each
/// consumer is checked against its producer. So a tiny test neck loads as well as SAM 3's.
public struct NeckWeights: Sendable {
    /// A layer's weight (PyTorch layout: ConvTranspose2d [in, out, kh, kw], Conv2d [out, in, kh, kw]) and bias.
    public struct Layer: Sendable {
        public var weight: Tensor
        public var bias: Tensor
    }

    public let trunkDim: Int
    public let dModel: Int
    /// `branches[i][module]`, modules as in `NeckNaming.branchModules[i]`.
    public let branches: [[String: Layer]]
    public static let scales: [Float] = [4.0, 2.0, 1.0, 0.5]
    /// The most parameters a neck may have: 2^27 (512 MiB as float32), 17 times SAM 3's 7.8 M.
    /// Checked from the shapes before any tensor is read, so a file (sparse, or lying) cannot
    /// make the loader set aside more.
    static let maxParameters = 1 << 27

    public func layer(_ branch: Int, _ module: String) -> Layer { branches[branch][module]! }

    /// Where the weights were found in their file (nil when built in memory).
    public let location: NeckLocation?

    public init(trunkDim: Int, dModel: Int, branches: [[String: Layer]], location: NeckLocation? = nil) {
        self.trunkDim = trunkDim
        self.dModel = dModel
        self.branches = branches
        self.location = location
    }

    /// Loads the neck from any checkpoint format: finds it (scheme and prefix, or the explicit
    /// prefix), checks every needed tensor's presence, dtype and shape from the metadata first,
    /// then reads only those tensors.
    public static func load(_ file: TensorArchive, kind: NeckKind = .sam3, prefix explicitPrefix: String? = nil) throws -> NeckWeights {
        let fileName = file.description
        let location = try NeckNaming.resolve(names: file.names, kind: kind, explicit: explicitPrefix, file: fileName)
        func name(_ b: Int, _ m: String, _ p: String) -> String {
            location.name(branch: b, module: m, param: p)
        }
        func entry(_ b: Int, _ m: String, _ p: String) throws -> TensorInfo {
            let n = name(b, m, p)
            guard try file.info(n) != nil else {
                throw NeckError(.missingTensor, "\(fileName): missing tensor '\(n)' (\(location))")
            }
            return try file.loadableInfo(n)
        }
        // Infer C and d from branch 2's 1x1 conv, [d, C, 1, 1].
        let probe = try entry(2, "conv_1x1", "weight")
        guard probe.shape.count == 4, probe.shape[2] == 1, probe.shape[3] == 1, probe.shape[0] > 0, probe.shape[1] > 0 else {
            throw NeckError(.shape, "\(fileName): tensor '\(name(2, "conv_1x1", "weight"))' has shape \(describe(shape: probe.shape)); expected [d_model, trunk_dim, 1, 1]")
        }
        let d = probe.shape[0], c = probe.shape[1]
        // The sine position encoding gives each axis d/2 channels.
        guard d % 2 == 0 else {
            throw NeckError(.shape, "\(fileName): tensor '\(name(2, "conv_1x1", "weight"))' gives d_model \(d); the position encoding needs an even d_model")
        }

        // Expected shapes, each intermediate width taken from its producer.
        func expectShape(_ b: Int, _ m: String, _ p: String, _ expected: [Int?]) throws -> [Int] {
            let e = try entry(b, m, p)
            let ok = e.shape.count == expected.count && zip(e.shape, expected).allSatisfy { $1 == nil ? $0 > 0 : $0 == $1! }
            guard ok else {
                let want = "[" + expected.map { $0.map(String.init) ?? "*" }.joined(separator: ", ") + "]"
                throw NeckError(.shape, "\(fileName): tensor '\(name(b, m, p))' has shape \(describe(shape: e.shape)); expected \(want) (trunk_dim \(c), d_model \(d))")
            }
            return e.shape
        }
        func layer(_ b: Int, _ m: String, _ w: [Int?], out: (([Int]) -> Int)) throws -> Int {
            let ws = try expectShape(b, m, "weight", w)
            let o = out(ws)
            _ = try expectShape(b, m, "bias", [o])
            return o
        }
        let transposedOut: ([Int]) -> Int = { $0[1] }
        let convOut: ([Int]) -> Int = { $0[0] }
        // Branch 0: C → c0 → c1 → d → d.
        let c0 = try layer(0, "dconv_2x2_0", [c, nil, 2, 2], out: transposedOut)
        let c1 = try layer(0, "dconv_2x2_1", [c0, nil, 2, 2], out: transposedOut)
        _ = try layer(0, "conv_1x1", [d, c1, 1, 1], out: convOut)
        // Branch 1: C → c2 → d → d.
        let c2 = try layer(1, "dconv_2x2", [c, nil, 2, 2], out: transposedOut)
        _ = try layer(1, "conv_1x1", [d, c2, 1, 1], out: convOut)
        // Branches 2, 3: C → d → d.
        for b in 2...3 { _ = try layer(b, "conv_1x1", [d, c, 1, 1], out: convOut) }
        for b in 0...3 { _ = try layer(b, "conv_3x3", [d, d, 3, 3], out: convOut) }

        // All present and well-shaped; within the size limit?
        var parameters = 0
        for b in 0...3 {
            for m in NeckNaming.branchModules[b] {
                for p in ["weight", "bias"] {
                    let (sum, overflow) = parameters.addingReportingOverflow(elementCount(try entry(b, m, p).shape) ?? Int.max)
                    guard !overflow, sum <= maxParameters else {
                        throw NeckError(.format, "\(fileName): the neck's tensors hold \(overflow ? "more than 2^63" : "at least \(sum)") parameters (trunk_dim \(c), d_model \(d)), more than the limit of \(maxParameters)")
                    }
                    parameters = sum
                }
            }
        }
        // Now read the data.
        var branches: [[String: Layer]] = Array(repeating: [:], count: 4)
        for b in 0...3 {
            for m in NeckNaming.branchModules[b] {
                branches[b][m] = Layer(weight: try file.readFloat32(name(b, m, "weight")),
                                       bias: try file.readFloat32(name(b, m, "bias")))
            }
        }
        return NeckWeights(trunkDim: c, dModel: d, branches: branches, location: location)
    }
}
