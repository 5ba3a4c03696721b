/// The neck's weights in PyTorch's layouts, and the configuration they imply.
///
/// Widths are read off the tensors, not assumed: the trunk width C and d_model come from
/// `conv_1x1` of level 2, every intermediate width from the layer that produces it, and each
/// consumer is checked against its producer. So a tiny test neck loads as well as SAM 3's.
package struct NeckWeights: Sendable {
    /// A layer's weight (PyTorch layout: ConvTranspose2d [in, out, kh, kw], Conv2d [out, in, kh, kw]) and bias.
    package struct Layer: Sendable {
        package var weight: Tensor
        package var bias: Tensor
    }

    /// Level 0 (scale 4): dconv_2x2_0, GELU, dconv_2x2_1, conv_1x1, conv_3x3.
    package struct Level0: Sendable {
        package var dconv0: Layer, dconv1: Layer, conv1x1: Layer, conv3x3: Layer
    }
    /// Level 1 (scale 2): dconv_2x2, conv_1x1, conv_3x3.
    package struct Level1: Sendable {
        package var dconv: Layer, conv1x1: Layer, conv3x3: Layer
    }
    /// Levels 2 and 3 (scales 1 and 0.5; level 3 max-pools first, which has no weights).
    package struct PointwiseLevel: Sendable {
        package var conv1x1: Layer, conv3x3: Layer
    }

    package let trunkDim: Int
    package let dModel: Int
    package var level0: Level0
    package var level1: Level1
    package var level2: PointwiseLevel
    package var level3: PointwiseLevel
    package static let scales: [Float] = [4.0, 2.0, 1.0, 0.5]
    /// The most parameters a neck may have: 2^27 (512 MiB as float32), 17 times SAM 3's 7.8 M.
    /// Checked from the shapes before any tensor is read, so a file (sparse, or lying) cannot
    /// make the loader set aside more.
    static let maxParameters = 1 << 27

    /// Where the weights were found in their file (nil when built in memory).
    package let location: NeckLocation?

    package init(
        trunkDim: Int, dModel: Int, level0: Level0, level1: Level1, level2: PointwiseLevel, level3: PointwiseLevel,
        location: NeckLocation? = nil
    ) {
        self.trunkDim = trunkDim
        self.dModel = dModel
        self.level0 = level0
        self.level1 = level1
        self.level2 = level2
        self.level3 = level3
        self.location = location
    }

    /// The layer of `module` in `level`: the one mapping from the naming layer's (level, module)
    /// to the typed fields. Nil when that level has no such module.
    package subscript(level: Int, module: NeckModule) -> Layer? {
        switch (level, module) {
        case (0, .dconv2x2_0): return level0.dconv0
        case (0, .dconv2x2_1): return level0.dconv1
        case (0, .conv1x1): return level0.conv1x1
        case (0, .conv3x3): return level0.conv3x3
        case (1, .dconv2x2): return level1.dconv
        case (1, .conv1x1): return level1.conv1x1
        case (1, .conv3x3): return level1.conv3x3
        case (2, .conv1x1): return level2.conv1x1
        case (2, .conv3x3): return level2.conv3x3
        case (3, .conv1x1): return level3.conv1x1
        case (3, .conv3x3): return level3.conv3x3
        default: return nil
        }
    }

    /// The values of one tensor of the neck (every `NeckNaming.tensors` entry has one).
    package func tensor(_ t: NeckTensor) -> Tensor? {
        self[t.level, t.module].map { t.isBias ? $0.bias : $0.weight }
    }

    /// conv_3x3 of `level` (every level ends with one).
    package func conv3x3(_ level: Int) -> Layer {
        [level0.conv3x3, level1.conv3x3, level2.conv3x3, level3.conv3x3][level]
    }

    /// Loads the neck from a checkpoint image in memory (safetensors or PyTorch zip); the bytes
    /// are read during the call only.
    package static func load(bytes: UnsafeRawBufferPointer, kind: NeckKind = .sam3, prefix: String? = nil) throws
        -> NeckWeights
    {
        try load(Checkpoint.open(MemorySource(bytes)), kind: kind, prefix: prefix)
    }

    /// Loads the neck from any checkpoint format: finds it (scheme and prefix, or the explicit
    /// prefix), checks every needed tensor's presence, dtype and shape from the metadata first,
    /// then reads only those tensors.
    package static func load(_ file: TensorArchive, kind: NeckKind = .sam3, prefix explicitPrefix: String? = nil) throws
        -> NeckWeights
    {
        let fileName = file.description
        let location = try NeckNaming.resolve(names: file.names, kind: kind, explicit: explicitPrefix, file: fileName)
        func name(_ l: Int, _ m: NeckModule, bias: Bool = false) -> String {
            location.name(NeckTensor(level: l, module: m, isBias: bias))
        }
        func entry(_ l: Int, _ m: NeckModule, bias: Bool = false) throws -> TensorInfo {
            let n = name(l, m, bias: bias)
            guard try file.info(n) != nil else {
                throw NeckError(.missingTensor, "\(fileName): missing tensor '\(n)' (\(location))")
            }
            return try file.loadableInfo(n)
        }
        // Infer C and d from level 2's 1x1 conv, [d, C, 1, 1].
        let probe = try entry(2, .conv1x1)
        guard probe.shape.count == 4, probe.shape[2] == 1, probe.shape[3] == 1, probe.shape[0] > 0, probe.shape[1] > 0
        else {
            throw NeckError(
                .shape,
                "\(fileName): tensor '\(name(2, .conv1x1))' has shape \(describe(shape: probe.shape)); expected [d_model, trunk_dim, 1, 1]"
            )
        }
        let d = probe.shape[0], c = probe.shape[1]
        // The sine position encoding gives each axis d/2 channels.
        guard d % 2 == 0 else {
            throw NeckError(
                .shape,
                "\(fileName): tensor '\(name(2, .conv1x1))' gives d_model \(d); the position encoding needs an even d_model"
            )
        }

        // Expected shapes, each intermediate width taken from its producer.
        func expectShape(_ l: Int, _ m: NeckModule, bias: Bool, _ expected: [Int?]) throws -> [Int] {
            let e = try entry(l, m, bias: bias)
            let ok =
                e.shape.count == expected.count && zip(e.shape, expected).allSatisfy { $1 == nil ? $0 > 0 : $0 == $1! }
            guard ok else {
                let want = "[" + expected.map { $0.map(String.init) ?? "*" }.joined(separator: ", ") + "]"
                throw NeckError(
                    .shape,
                    "\(fileName): tensor '\(name(l, m, bias: bias))' has shape \(describe(shape: e.shape)); expected \(want) (trunk_dim \(c), d_model \(d))"
                )
            }
            return e.shape
        }
        func layer(_ l: Int, _ m: NeckModule, _ w: [Int?], out: (([Int]) -> Int)) throws -> Int {
            let ws = try expectShape(l, m, bias: false, w)
            let o = out(ws)
            _ = try expectShape(l, m, bias: true, [o])
            return o
        }
        let transposedOut: ([Int]) -> Int = { $0[1] }
        let convOut: ([Int]) -> Int = { $0[0] }
        // Level 0: C → c0 → c1 → d → d.
        let c0 = try layer(0, .dconv2x2_0, [c, nil, 2, 2], out: transposedOut)
        let c1 = try layer(0, .dconv2x2_1, [c0, nil, 2, 2], out: transposedOut)
        _ = try layer(0, .conv1x1, [d, c1, 1, 1], out: convOut)
        // Level 1: C → c2 → d → d.
        let c2 = try layer(1, .dconv2x2, [c, nil, 2, 2], out: transposedOut)
        _ = try layer(1, .conv1x1, [d, c2, 1, 1], out: convOut)
        // Levels 2, 3: C → d → d.
        for l in 2...3 { _ = try layer(l, .conv1x1, [d, c, 1, 1], out: convOut) }
        for l in NeckNaming.levelModules.indices { _ = try layer(l, .conv3x3, [d, d, 3, 3], out: convOut) }

        // All present and well-shaped; within the size limit?
        var parameters = 0
        for t in NeckNaming.tensors {
            let (sum, overflow) = parameters.addingReportingOverflow(
                elementCount(try entry(t.level, t.module, bias: t.isBias).shape) ?? Int.max)
            guard !overflow, sum <= maxParameters else {
                throw NeckError(
                    .format,
                    "\(fileName): the neck's tensors hold \(overflow ? "more than 2^63" : "at least \(sum)") parameters (trunk_dim \(c), d_model \(d)), more than the limit of \(maxParameters)"
                )
            }
            parameters = sum
        }
        // Now read the data.
        func read(_ l: Int, _ m: NeckModule) throws -> Layer {
            Layer(weight: try file.readFloat32(name(l, m)), bias: try file.readFloat32(name(l, m, bias: true)))
        }
        return NeckWeights(
            trunkDim: c, dModel: d,
            level0: Level0(
                dconv0: try read(0, .dconv2x2_0), dconv1: try read(0, .dconv2x2_1),
                conv1x1: try read(0, .conv1x1), conv3x3: try read(0, .conv3x3)),
            level1: Level1(
                dconv: try read(1, .dconv2x2), conv1x1: try read(1, .conv1x1), conv3x3: try read(1, .conv3x3)),
            level2: PointwiseLevel(conv1x1: try read(2, .conv1x1), conv3x3: try read(2, .conv3x3)),
            level3: PointwiseLevel(conv1x1: try read(3, .conv1x1), conv3x3: try read(3, .conv3x3)),
            location: location)
    }
}
