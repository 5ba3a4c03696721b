import Testing
import Sam3Neck  // not @testable (package symbols are visible to tests anyway: Tests/api checks the public list)

/// The safe API (FeatureMap, NeckLevel, throwing run/positionEncoding) against the pointer API
/// of the same plan, and its errors.
@Suite struct SafeAPITests {
    static let c = 16, d = 8

    func neck(seed: UInt64 = 7) -> Neck { Neck(weights: Naive.weights(c: Self.c, d: Self.d, seed: seed)) }

    func input(_ count: Int, seed: UInt64 = 5) -> [Float] {
        var rng = Naive.RNG(state: seed)
        return rng.floats(count, scale: 2)
    }

    /// The plan's pointer API, as the C layer calls it: one array per compiled level.
    func pointerRun(_ plan: NeckPlan, _ x: [Float]) -> [[Float]] {
        var out: [[Float]] = []
        for level in 0..<4 {
            guard let n = plan.outputCount(level: level) else { out.append([]); continue }
            out.append([Float](repeating: .nan, count: n))
        }
        let pointers = (0..<4).map {
            out[$0].isEmpty ? nil : UnsafeMutablePointer<Float>.allocate(capacity: out[$0].count)
        }
        x.withUnsafeBufferPointer { plan.run(input: $0.baseAddress!, outputs: pointers) }
        for level in 0..<4 {
            if let p = pointers[level] {
                out[level] = Array(UnsafeBufferPointer(start: p, count: out[level].count))
                p.deallocate()
            }
        }
        return out
    }

    @Test(arguments: [CompileOptions.Layout.nchw, .nhwc])
    func safeRunEqualsPointerRun(layout: CompileOptions.Layout) throws {
        let weights = Naive.weights(c: Self.c, d: Self.d, seed: 3)
        let plan = try Neck(weights: weights).compile(batch: 2, height: 5, width: 6, layout: layout, threads: 2)
        #expect(plan.inputShape == FeatureShape(batch: 2, channels: Self.c, height: 5, width: 6))
        #expect(plan.levels == [0, 1, 2, 3])
        let x = input(plan.inputCount)
        let want = pointerRun(plan, x)

        let levels = try plan.run(FeatureMap(shape: plan.inputShape, layout: layout, values: x))
        #expect(levels.map(\.level) == [0, 1, 2, 3])
        #expect(levels.map(\.scale) == [4, 2, 1, 0.5])
        for lv in levels {
            #expect(lv.features.layout == .nchw)
            #expect(lv.features.shape.dimensions == plan.levelShapes[lv.level]!)
            #expect(try plan.outputShape(level: lv.level) == lv.features.shape)
            #expect(lv.features.values == want[lv.level], "level \(lv.level): safe and pointer runs differ")
        }
        // The flat-array entry point gives the same.
        #expect(try plan.run(x) == levels)

        // And the numbers are the neck's (not merely consistent): against the naive loops, NCHW.
        var nchw = [Float](repeating: 0, count: x.count)
        let map = try FeatureMap(shape: plan.inputShape, layout: layout, values: x)
        for n in 0..<2 {
            for ch in 0..<Self.c {
                for y in 0..<5 {
                    for xx in 0..<6 {
                        nchw[((n * Self.c + ch) * 5 + y) * 6 + xx] = map[n, ch, y, xx]
                    }
                }
            }
        }
        let per = Self.c * 5 * 6
        for lv in levels {
            let ref = (0..<2).flatMap { n -> [Double] in
                var image = Naive.Image(c: Self.c, h: 5, w: 6)
                image.v = nchw[n * per..<(n + 1) * per].map(Double.init)
                return Naive.neck(weights, image, level: lv.level).v
            }
            let err = Naive.normalisedError(lv.features.values, ref)
            #expect(err <= 1e-5, "level \(lv.level) \(layout): error \(err)")
        }
    }

    @Test func positionEncodingsAreThePlans() throws {
        let plan = try neck().compile(height: 4, width: 6, levels: [3, 1])
        #expect(plan.levels == [1, 3])
        for level in [1, 3] {
            let pos = try plan.positionEncoding(level: level)
            let g = CompileOptions.levelGrid(level, height: 4, width: 6)
            #expect(pos.shape == FeatureShape(batch: 1, channels: Self.d, height: g.h, width: g.w))
            #expect(pos.values == plan.positionEncodings[level]!.values)
        }
    }

    @Test func runIntoReusesTheOutputsStorage() throws {
        let plan = try neck().compile(height: 4, width: 4, levels: [0, 2])
        let a = input(plan.inputCount, seed: 1), b = input(plan.inputCount, seed: 2)
        var outputs: [NeckLevel] = []
        try plan.run(FeatureMap(shape: plan.inputShape, values: a), into: &outputs)
        #expect(outputs == (try plan.run(a)))
        let before = outputs.map { $0.features.values.withUnsafeBufferPointer { $0.baseAddress } }
        try plan.run(FeatureMap(shape: plan.inputShape, values: b), into: &outputs)
        let after = outputs.map { $0.features.values.withUnsafeBufferPointer { $0.baseAddress } }
        #expect(before == after, "the second run allocated new output storage")
        #expect(outputs == (try plan.run(b)))
        #expect(outputs != (try plan.run(a)))

        // Outputs of another plan do not fit: they are replaced, not written past their end.
        var foreign = try neck().compile(height: 2, width: 2, levels: [0, 2]).run(input(Self.c * 4))
        try plan.run(FeatureMap(shape: plan.inputShape, values: b), into: &foreign)
        #expect(foreign == outputs)
    }

    @Test func loadsFromBytesInMemory() throws {
        let weights = Naive.weights(c: Self.c, d: Self.d, seed: 9)
        let bytes = SafetensorsBuilder.neck(weights, prefix: "detector.backbone.vision_backbone.").build()
        let fromBytes = try Neck(bytes: bytes).compile(height: 3, width: 5, levels: [0, 1, 2])
        let direct = try Neck(weights: weights).compile(height: 3, width: 5, levels: [0, 1, 2])
        let x = input(fromBytes.inputCount)
        #expect(try fromBytes.run(x) == direct.run(x))
        expectError(.format, containing: []) { _ = try Neck(bytes: [1, 2, 3]) }
    }

    @Test func featureMapIndexesEitherLayout() throws {
        let shape = FeatureShape(batch: 2, channels: 3, height: 4, width: 5)
        #expect(shape.count == 120 && shape.description == "[2, 3, 4, 5]")
        #expect(shape.dimensions(in: .nhwc) == [2, 4, 5, 3])
        var nchw = FeatureMap(zeros: shape), nhwc = FeatureMap(zeros: shape, layout: .nhwc)
        nchw[1, 2, 3, 4] = 7
        nhwc[1, 2, 3, 4] = 7
        #expect(nchw.values[((1 * 3 + 2) * 4 + 3) * 5 + 4] == 7)
        #expect(nhwc.values[((1 * 4 + 3) * 5 + 4) * 3 + 2] == 7)
        #expect(nchw.values.reduce(0, +) == 7 && nhwc.values.reduce(0, +) == 7)
        #expect(FeatureShape(batch: -1, channels: 1, height: 1, width: 1).count == nil)
        #expect(FeatureShape(batch: Int.max, channels: 2, height: 1, width: 1).count == nil)
    }

    @Test func errorsNameTheCause() throws {
        let shape = FeatureShape(batch: 1, channels: Self.c, height: 4, width: 4)
        expectError(.shape, containing: ["[1, 16, 4, 4]", "256", "255"]) {
            _ = try FeatureMap(shape: shape, values: [Float](repeating: 0, count: 255))
        }
        expectError(.shape, containing: ["negative"]) {
            _ = try FeatureMap(shape: FeatureShape(batch: 1, channels: -2, height: 1, width: 1), values: [])
        }

        let plan = try neck().compile(height: 4, width: 4, levels: [0, 1, 2])
        expectError(.shape, containing: ["255 floats", "[B, C, H, W] = [1, 16, 4, 4]", "256"]) {
            _ = try plan.run([Float](repeating: 0, count: 255))
        }
        expectError(.invalidArgument, containing: ["NHWC", "NCHW"]) {
            _ = try plan.run(FeatureMap(zeros: shape, layout: .nhwc))
        }
        expectError(.shape, containing: ["[1, 16, 4, 5]", "[1, 16, 4, 4]"]) {
            _ = try plan.run(FeatureMap(zeros: FeatureShape(batch: 1, channels: Self.c, height: 4, width: 5)))
        }
        expectError(.invalidArgument, containing: ["level 3", "not compiled", "0, 1, 2"]) {
            _ = try plan.positionEncoding(level: 3)
        }
        expectError(.invalidArgument, containing: ["0...3", "-1"]) { _ = try plan.outputShape(level: -1) }
        expectError(.invalidArgument, containing: ["0...3", "4"]) {
            _ = try neck().compile(height: 4, width: 4, levels: [0, 4])
        }
        expectError(.invalidArgument, containing: ["empty"]) { _ = try neck().compile(height: 4, width: 4, levels: []) }
        expectError(.shape, containing: ["level 3"]) { _ = try neck().compile(height: 1, width: 4) }

        // A failed run leaves the caller's outputs as they were.
        var outputs = try plan.run(input(plan.inputCount))
        let kept = outputs
        #expect(throws: NeckError.self) { try plan.run(FeatureMap(zeros: shape, layout: .nhwc), into: &outputs) }
        #expect(outputs == kept)
    }

    /// The I/O options through the safe API: NHWC outputs as FeatureMaps, raw buffers for half
    /// precision and the sequence layout, and errors that name the way.
    @Test func ioOptionsThroughTheSafeAPI() throws {
        let neck = neck()
        let x = input(2 * Self.c * 3 * 5)
        let nchw = try neck.compile(batch: 2, height: 3, width: 5, threads: 2).run(x)
        let nhwcPlan = try neck.compile(batch: 2, height: 3, width: 5, threads: 2, outputLayout: .nhwc)
        for (a, b) in zip(nchw, try nhwcPlan.run(x)) {
            #expect(b.features.layout == .nhwc && b.features.shape == a.features.shape)
            let s = a.features.shape
            #expect(
                (0..<s.batch).allSatisfy { n in
                    (0..<s.channels).allSatisfy { c in
                        (0..<s.height).allSatisfy { y in
                            (0..<s.width).allSatisfy { x in a.features[n, c, y, x] == b.features[n, c, y, x] }
                        }
                    }
                })
        }
        let half = try neck.compile(
            batch: 2, height: 3, width: 5, threads: 2, outputDType: .float16, outputLayout: .sequence)
        #expect(try half.outputDimensions(level: 1) == [6 * 10, 2, Self.d])
        do {
            _ = try half.run(x)
            Issue.record("a float16 plan's FeatureMap run should throw")
        } catch let e as NeckError {
            #expect(e.kind == .dtype && e.message.contains("run(input:outputs:)"))
        }
        let outs = try (0..<4).map {
            UnsafeMutableRawBufferPointer.allocate(
                byteCount: try half.outputDimensions(level: $0).reduce(2, *), alignment: 16)
        }
        defer { outs.forEach { $0.deallocate() } }
        try x.withUnsafeBytes { raw in
            try half.run(input: raw, outputs: outs)
            #expect(throws: NeckError.self) {
                try half.run(input: UnsafeRawBufferPointer(rebasing: raw.dropLast()), outputs: outs)
            }
        }
        // Level 2, image 1, channel 3, pixel (2, 4): token 2·5 + 4, batch 1.
        let want = nchw[2].features[1, 3, 2, 4],
            got = Float(
                Float16(
                    bitPattern: outs[2].load(fromByteOffset: 2 * (((2 * 5 + 4) * 2 + 1) * Self.d + 3), as: UInt16.self))
            )
        #expect(got == Float(Float16(want)))
    }
}
