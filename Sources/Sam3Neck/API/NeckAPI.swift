// The safe, Swift-native surface of the core: throwing functions, typed shapes, arrays instead of
// pointers. It adds checks and copies nothing it does not have to; the computation is the plan's
// pointer-based `run(input:outputs:)`, which the C ABI calls too.

extension Neck {
    /// Loads the neck from a checkpoint image held in memory (safetensors or a PyTorch zip, e.g.
    /// downloaded or embedded in an app), without a temporary file. The bytes are not kept.
    ///
    /// - Parameters:
    ///   - bytes: the whole checkpoint file.
    ///   - kind: which neck to read: `.sam3` (the detection neck) or `.sam2` (the tracker neck).
    ///   - prefix: the exact prefix of the neck's tensors, or nil to try the known prefixes of
    ///     both naming schemes (original and Transformers).
    /// - Throws: ``NeckError`` naming the cause: a malformed file, a missing tensor, a shape that
    ///   disagrees with the others.
    public convenience init(bytes: [UInt8], kind: NeckKind = .sam3, prefix: String? = nil) throws {
        self.init(weights: try bytes.withUnsafeBytes { try NeckWeights.load(bytes: $0, kind: kind, prefix: prefix) })
    }

    /// Compiles a plan for one input shape, with the levels given as a list rather than a bit mask.
    ///
    /// Compiling does the work that does not depend on the input (folding and transforming the
    /// weights, the position encodings, the workspace) once, so that each ``NeckPlan/run(_:)-(FeatureMap)``
    /// only computes. Compile once per input shape and reuse the plan.
    ///
    /// - Parameters:
    ///   - batch: images per run.
    ///   - height: rows of the trunk's feature grid (72 for a 1008² image).
    ///   - width: columns of the trunk's feature grid.
    ///   - layout: how the input is stored: `.nchw` (`[B, C, H, W]`) or `.nhwc` (`[B, H, W, C]`).
    ///     The outputs' layout is `outputLayout`.
    ///   - levels: the pyramid levels to compute, each in 0...3 (scales 4, 2, 1, 0.5); order and
    ///     repeats do not matter. Leaving levels out saves their time and memory.
    ///   - threads: worker threads per run; 0 uses every online core.
    ///   - precision: `.default` (normalised error ≤ 1e-4), `.strict` (≤ 1e-5, slower) or `.fast`
    ///     (≤ 1e-2, bfloat16 products where the CPU has them).
    ///   - inputDType: the input's element type; half-precision inputs are run through
    ///     ``NeckPlan/run(input:outputs:)``.
    ///   - outputDType: the outputs' element type (rounded to nearest even by the final store).
    ///   - outputLayout: `.nchw`, `.nhwc` or `.sequence` (`[h·w, B, d]`).
    /// - Throws: ``NeckError`` `.invalidArgument` naming the bad argument (a level outside 0...3,
    ///   no levels, a size out of range), `.shape` for a grid too small for level 3, or
    ///   `.outOfMemory` when the workspace would not fit.
    public func compile(
        batch: Int = 1, height: Int, width: Int, layout: CompileOptions.Layout = .nchw,
        levels: [Int] = [0, 1, 2, 3], threads: Int = 0,
        precision: CompileOptions.Precision = .default,
        inputDType: CompileOptions.DType = .float32, outputDType: CompileOptions.DType = .float32,
        outputLayout: CompileOptions.OutputLayout = .nchw
    ) throws -> NeckPlan {
        guard !levels.isEmpty else {
            throw NeckError(.invalidArgument, "levels is empty; give at least one level in 0...3")
        }
        var mask: UInt32 = 0
        for level in levels {
            guard (0..<4).contains(level) else {
                throw NeckError(.invalidArgument, "levels must each be in 0...3 (scales 4, 2, 1, 0.5), got \(level)")
            }
            mask |= 1 << UInt32(level)
        }
        return try compile(
            CompileOptions(
                batch: batch, height: height, width: width, layout: layout,
                levelsMask: mask, threads: threads, precision: precision,
                inputDType: inputDType, outputDType: outputDType, outputLayout: outputLayout))
    }
}

extension NeckPlan {
    /// The input's logical shape, `[B, trunk_dim, H, W]`; its values are stored in
    /// `options.layout` order.
    public var inputShape: FeatureShape {
        FeatureShape(batch: options.batch, channels: trunkDim, height: options.height, width: options.width)
    }

    /// The compiled levels, in increasing order: the levels a run returns.
    public var levels: [Int] { options.levels }

    /// The shape of output `level`, `[B, d_model, h, w]`.
    ///
    /// - Throws: ``NeckError`` `.invalidArgument` when `level` is outside 0...3 or was not compiled.
    public func outputShape(level: Int) throws -> FeatureShape {
        let s = levelShapes[try compiledLevel(level)]!
        return FeatureShape(batch: s[0], channels: s[1], height: s[2], width: s[3])
    }

    /// Runs the neck on `input` and returns one ``NeckLevel`` per compiled level, in increasing
    /// level order, each with freshly allocated features.
    ///
    /// To run many inputs without allocating outputs each time, use ``run(_:into:)``.
    ///
    /// - Throws: ``NeckError`` `.shape` when `input.shape` is not ``inputShape``, or
    ///   `.invalidArgument` when its layout is not the compiled one; nothing is computed then.
    public func run(_ input: FeatureMap) throws -> [NeckLevel] {
        var outputs: [NeckLevel] = []
        try run(input, into: &outputs)
        return outputs
    }

    /// Runs the neck on `input`, `inputCount` floats in the compiled layout (`[B, C, H, W]` for
    /// NCHW, `[B, H, W, C]` for NHWC), for callers that already hold the trunk's output as a
    /// flat array.
    ///
    /// - Throws: ``NeckError`` `.shape` when `input.count` is not ``inputCount``; the message
    ///   gives the compiled input shape.
    public func run(_ input: [Float]) throws -> [NeckLevel] {
        guard input.count == inputCount else {
            throw NeckError(
                .shape,
                "input has \(input.count) floats but the plan was compiled for \(describeInput()), \(inputCount) floats"
            )
        }
        return try run(try FeatureMap(shape: inputShape, layout: options.layout, values: input))
    }

    /// Runs the neck on `input`, writing into `outputs` and reusing their storage: pass the
    /// result of an earlier run (or an empty array, which is filled) to run a stream of inputs
    /// without allocating.
    ///
    /// `outputs` is replaced by one ``NeckLevel`` per compiled level; storage is reused where a
    /// level of `outputs` already has the right shape and nothing else refers to its values
    /// (Swift's copy-on-write would otherwise copy them first).
    ///
    /// - Throws: ``NeckError`` as ``run(_:)-(FeatureMap)``; `outputs` is left unchanged then.
    ///   `.dtype` for a plan compiled for half precision, and `.invalidArgument` for the sequence
    ///   layout: those run through ``run(input:outputs:)``.
    public func run(_ input: FeatureMap, into outputs: inout [NeckLevel]) throws {
        guard options.inputDType == .float32, options.outputDType == .float32 else {
            throw NeckError(
                .dtype,
                "the plan was compiled for \(options.inputDType.name) input and \(options.outputDType.name) outputs; FeatureMap holds float32: use run(input:outputs:) with raw buffers"
            )
        }
        guard let featureLayout = CompileOptions.Layout(rawValue: options.outputLayout.rawValue) else {
            throw NeckError(
                .invalidArgument,
                "the plan was compiled for sequence outputs [h·w, B, d], which a FeatureMap cannot hold: use run(input:outputs:) with raw buffers"
            )
        }
        guard input.layout == options.layout else {
            throw NeckError(
                .invalidArgument,
                "input is \(input.layout.name) but the plan was compiled for \(options.layout.name) input")
        }
        guard input.shape == inputShape else {
            throw NeckError(.shape, "input shape is \(input.shape) but the plan was compiled for \(describeInput())")
        }
        // Take each level's storage out of `outputs` (so it is uniquely referenced) or make it.
        var storage: [[Float]] = [[], [], [], []]
        var reused = outputs
        outputs = []
        for level in levels {
            let shape = try outputShape(level: level)
            if let i = reused.firstIndex(where: {
                $0.level == level && $0.features.shape == shape && $0.features.layout == featureLayout
            }) {
                storage[level] = reused[i].features.values
                reused[i].features.values = []
            } else {
                storage[level] = [Float](repeating: 0, count: shape.count!)
            }
        }
        reused = []
        input.values.withUnsafeBufferPointer { x in
            withOutputPointers(&storage) { pointers in run(input: x.baseAddress!, outputs: pointers) }
        }
        outputs = try levels.map { level in
            NeckLevel(
                level: level, scale: Neck.scales[level],
                features: try FeatureMap(
                    shape: outputShape(level: level), layout: featureLayout, values: storage[level]))
        }
    }

    /// The stored dimensions of output `level` in the compiled output layout: `[B, d, h, w]`,
    /// `[B, h, w, d]` or `[h·w, B, d]`. A level's position encoding has them with B = 1.
    ///
    /// - Throws: ``NeckError`` `.invalidArgument` when `level` is outside 0...3 or was not compiled.
    public func outputDimensions(level: Int) throws -> [Int] {
        outputDimensions(level: try compiledLevel(level))!
    }

    /// Runs the neck on raw buffers of the compiled types and layouts: `input` holds
    /// ``inputCount`` elements of `options.inputDType` (float16 and bfloat16 as 16-bit patterns),
    /// `outputs[level]` room for the level's elements of `options.outputDType` (entries of levels
    /// not compiled are ignored). The half-precision input is widened block by block; outputs are
    /// rounded by the final store.
    ///
    /// - Throws: ``NeckError`` `.shape` when a buffer's size is not what the plan needs (the
    ///   message gives both), `.invalidArgument` for a missing output; nothing is computed then.
    public func run(input: UnsafeRawBufferPointer, outputs: [UnsafeMutableRawBufferPointer?]) throws {
        let inputBytes = inputCount * options.inputDType.size
        guard input.count == inputBytes, let base = input.baseAddress else {
            throw NeckError(
                .shape,
                "input has \(input.count) bytes but the plan was compiled for \(describeInput()) of \(options.inputDType.name), \(inputBytes) bytes"
            )
        }
        var pointers: [UnsafeMutableRawPointer?] = [nil, nil, nil, nil]
        for level in levels {
            let need = outputCount(level: level)! * options.outputDType.size
            guard level < outputs.count, let buffer = outputs[level], let p = buffer.baseAddress else {
                throw NeckError(.invalidArgument, "outputs[\(level)] is missing but level \(level) is compiled")
            }
            guard buffer.count >= need else {
                throw NeckError(
                    .shape,
                    "outputs[\(level)] has \(buffer.count) bytes but level \(level) \(outputDimensions(level: level)!) of \(options.outputDType.name) needs \(need)"
                )
            }
            pointers[level] = p
        }
        run(input: base, outputs: pointers)
    }

    /// Writes the position encoding of output `level` into `buffer`, in the compiled output
    /// layout and type (as an output of batch 1).
    ///
    /// - Throws: ``NeckError`` `.invalidArgument` for a level not compiled, `.shape` when `buffer`
    ///   is too small.
    public func positionEncoding(level: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        let l = try compiledLevel(level), need = positionEncodings[l]!.count * options.outputDType.size
        guard buffer.count >= need, let p = buffer.baseAddress else {
            throw NeckError(
                .shape, "position encoding of level \(l) needs \(need) bytes, the buffer has \(buffer.count)")
        }
        writePositionEncoding(level: l, into: p)
    }

    /// The sine position encoding of output `level`, `[1, d_model, h, w]` NCHW: the same for
    /// every input of this plan's shape, so it is computed here on request rather than per run.
    ///
    /// - Throws: ``NeckError`` `.invalidArgument` when `level` is outside 0...3 or was not compiled.
    public func positionEncoding(level: Int) throws -> FeatureMap {
        let encoding = positionEncodings[try compiledLevel(level)]!
        return try FeatureMap(
            shape: FeatureShape(batch: 1, channels: encoding.dModel, height: encoding.height, width: encoding.width),
            layout: .nchw, values: encoding.values)
    }

    // MARK: - Helpers

    /// `level` if it is in 0...3 and compiled; else an error naming the compiled levels.
    private func compiledLevel(_ level: Int) throws -> Int {
        guard (0..<4).contains(level) else {
            throw NeckError(.invalidArgument, "level must be in 0...3, got \(level)")
        }
        guard options.includes(level: level) else {
            throw NeckError(
                .invalidArgument,
                "level \(level) was not compiled (compiled levels: \(levels.map(String.init).joined(separator: ", ")))")
        }
        return level
    }

    /// "[B, C, H, W] = [1, 1024, 72, 72] (NCHW)"
    private func describeInput() -> String {
        let o = options
        let dims = inputShape.dimensions(in: o.layout).map(String.init).joined(separator: ", ")
        return "\(FeatureShape.dimensionNames(o.layout)) = [\(dims)] (\(o.layout.name))"
    }

    /// Calls `body` with a pointer to each non-empty array of `storage` (nil for empty ones),
    /// all valid at once. Four levels, so four nested closures; each array is its own variable
    /// so that the accesses do not overlap.
    private func withOutputPointers(_ storage: inout [[Float]], _ body: ([UnsafeMutablePointer<Float>?]) -> Void) {
        var s0 = storage[0], s1 = storage[1], s2 = storage[2], s3 = storage[3]
        storage = []
        func base(_ b: UnsafeMutableBufferPointer<Float>) -> UnsafeMutablePointer<Float>? {
            b.isEmpty ? nil : b.baseAddress
        }
        s0.withUnsafeMutableBufferPointer { p0 in
            s1.withUnsafeMutableBufferPointer { p1 in
                s2.withUnsafeMutableBufferPointer { p2 in
                    s3.withUnsafeMutableBufferPointer { p3 in
                        body([base(p0), base(p1), base(p2), base(p3)])
                    }
                }
            }
        }
        storage = [s0, s1, s2, s3]
    }
}
