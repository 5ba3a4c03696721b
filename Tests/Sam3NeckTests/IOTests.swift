import CKernels
import Testing
@testable import Sam3Neck

/// Input and output element types and output layouts. The neck computes in float32 whatever the
/// types, so the oracle is exact: a plan with a half-precision input equals the float32 plan run
/// on the widened input, bit for bit; a half-precision output is the float32 output rounded to
/// nearest even, bit for bit; NHWC and sequence outputs are permutations of NCHW.
@Suite struct IOTests {
    static let c = 8, d = 6

    /// Rounds to `dtype` and back (the value a half-precision buffer holds), with Swift's own
    /// conversions as the oracle for the C kernels'.
    static func rounded(_ v: Float, _ dtype: CompileOptions.DType) -> Float {
        switch dtype {
        case .float32: return v
        case .float16: return Float(Float16(v))
        case .bfloat16:
            // Round to nearest even on the upper 16 bits; NaN stays NaN.
            if v.isNaN { return .nan }
            let b = v.bitPattern, r = (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000
            return Float(bitPattern: r)
        }
    }

    static func encode(_ values: [Float], _ dtype: CompileOptions.DType) -> [UInt8] {
        switch dtype {
        case .float32: return values.withUnsafeBytes(Array.init)
        case .float16: return values.map { Float16($0).bitPattern }.withUnsafeBytes(Array.init)
        case .bfloat16:
            return values.map { UInt16(rounded($0, .bfloat16).bitPattern >> 16) }.withUnsafeBytes(Array.init)
        }
    }

    static func decode(_ bytes: [UInt8], _ dtype: CompileOptions.DType) -> [Float] {
        bytes.withUnsafeBytes { raw in
            switch dtype {
            case .float32: return Array(raw.bindMemory(to: Float.self))
            case .float16: return raw.bindMemory(to: UInt16.self).map { Float(Float16(bitPattern: $0)) }
            case .bfloat16: return raw.bindMemory(to: UInt16.self).map { Float(bitPattern: UInt32($0) << 16) }
            }
        }
    }

    /// Runs `plan` on raw input bytes; returns each compiled level's raw output bytes.
    static func run(_ plan: NeckPlan, _ input: [UInt8]) -> [Int: [UInt8]] {
        var outs: [Int: [UInt8]] = [:]
        for l in plan.options.levels {
            outs[l] = [UInt8](repeating: 0xEE, count: plan.outputCount(level: l)! * plan.options.outputDType.size)
        }
        var pointers: [UnsafeMutableRawPointer?] = [nil, nil, nil, nil]
        for l in plan.options.levels {
            pointers[l] = UnsafeMutableRawPointer.allocate(byteCount: outs[l]!.count, alignment: 64)
        }
        defer { pointers.forEach { $0?.deallocate() } }
        input.withUnsafeBytes { plan.run(input: $0.baseAddress!, outputs: pointers) }
        for l in plan.options.levels {
            outs[l] = Array(UnsafeRawBufferPointer(start: pointers[l], count: outs[l]!.count))
        }
        return outs
    }

    /// NCHW values `[B, d, h, w]` in `layout` order.
    static func relayout(_ v: [Float], _ layout: CompileOptions.OutputLayout, b: Int, d: Int, h: Int, w: Int) -> [Float]
    {
        var out = [Float](repeating: 0, count: v.count)
        for n in 0..<b {
            for c in 0..<d {
                for p in 0..<h * w {
                    let src = (n * d + c) * h * w + p
                    switch layout {
                    case .nchw: out[src] = v[src]
                    case .nhwc: out[(n * h * w + p) * d + c] = v[src]
                    case .sequence: out[(p * b + n) * d + c] = v[src]
                    }
                }
            }
        }
        return out
    }

    static func same(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
    }

    @Test(
        arguments: [CompileOptions.DType.float32, .float16, .bfloat16],
        [CompileOptions.DType.float32, .float16, .bfloat16])
    func everyTypeAndLayoutIsTheFloat32PlanExactly(input: CompileOptions.DType, output: CompileOptions.DType) throws {
        let neck = Neck(weights: Naive.weights(c: Self.c, d: Self.d, seed: 11))
        // A batch of two odd grids, and a grid of several row blocks per level (the input is
        // widened block by block).
        for (b, h, w, mask) in [(2, 5, 7, UInt32(0xF)), (2, 5, 7, 0x5), (1, 40, 30, 0xF)] {
            var rng = Naive.RNG(state: 3)
            var x = rng.floats(b * Self.c * h * w, scale: 2).map { Self.rounded($0, input) }
            x[5] = .nan  // NaN in the input stays NaN where it lands, in every type
            for layout in [CompileOptions.Layout.nchw, .nhwc] {
                do {
                    let base = try neck.compile(
                        CompileOptions(batch: b, height: h, width: w, layout: layout, levelsMask: mask, threads: 2))
                    let want = Self.run(base, Self.encode(x, .float32)).mapValues { Self.decode($0, .float32) }
                    for outLayout in [CompileOptions.OutputLayout.nchw, .nhwc, .sequence] {
                        let plan = try neck.compile(
                            CompileOptions(
                                batch: b, height: h, width: w, layout: layout, levelsMask: mask, threads: 2,
                                inputDType: input, outputDType: output, outputLayout: outLayout))
                        let got = Self.run(plan, Self.encode(x, input))
                        for l in plan.options.levels {
                            let s = plan.levelShapes[l]!
                            let expected = Self.relayout(
                                want[l]!.map { Self.rounded($0, output) }, outLayout, b: b, d: s[1], h: s[2], w: s[3])
                            #expect(
                                Self.same(Self.decode(got[l]!, output), expected),
                                "level \(l), \(b)×\(h)×\(w) \(layout) \(input) in, \(outLayout) \(output) out")
                        }
                    }
                }
            }
        }
    }

    @Test(
        arguments: [CompileOptions.OutputLayout.nchw, .nhwc, .sequence],
        [CompileOptions.DType.float32, .float16, .bfloat16])
    func positionEncodingsFollowTheOutputs(layout: CompileOptions.OutputLayout, dtype: CompileOptions.DType) throws {
        let neck = Neck(weights: Naive.weights(c: Self.c, d: Self.d, seed: 2))
        let plan = try neck.compile(
            CompileOptions(batch: 3, height: 3, width: 5, outputDType: dtype, outputLayout: layout))
        for l in plan.options.levels {
            let pe = plan.positionEncodings[l]!
            var bytes = [UInt8](repeating: 0, count: pe.count * dtype.size)
            bytes.withUnsafeMutableBytes { plan.writePositionEncoding(level: l, into: $0.baseAddress!) }
            let want = Self.relayout(
                pe.values.map { Self.rounded($0, dtype) }, layout, b: 1, d: pe.dModel, h: pe.height, w: pe.width)
            #expect(Self.same(Self.decode(bytes, dtype), want))
            #expect(plan.outputDimensions(level: l, batch: 1)!.reduce(1, *) == pe.count)
        }
    }

    /// The channel-major float32 store (each channel's pixels in a plane, the transposing store of
    /// every NCHW output) against a naive loop, through the dispatching code (an AVX2 8 × 8
    /// transpose where the CPU has it) and the portable code, on sizes with and without whole
    /// blocks of 8 pixels and 8 channels, strided rows (every other one, as level 0 stores a row
    /// parity) and pixels.
    @Test(arguments: [false, true])
    func channelMajorStoreIsATranspose(portable: Bool) {
        var rng = Naive.RNG(state: 17)
        for (rows, cols, channels, rowStep, pixelStep) in [
            (1, 1, 1, 1, 1), (3, 8, 8, 1, 1), (2, 16, 24, 2, 1), (4, 13, 21, 1, 1),
            (5, 37, 7, 2, 1), (2, 9, 17, 1, 2), (1, 64, 256, 2, 1),
        ] {
            let m = cols + 3, ldy = channels + 5  // the tile's row pitch and pixel pitch exceed what is stored
            let y = rng.floats(rows * m * ldy, scale: 1)
            let width = cols * pixelStep + 2, height = rows * rowStep + 1, plane = height * width + 3
            let sentinel: Float = -7.25
            var got = [Float](repeating: sentinel, count: channels * plane)
            var want = got
            for o in 0..<channels {
                for i in 0..<rows {
                    for j in 0..<cols {
                        want[o * plane + i * rowStep * width + j * pixelStep] = y[(i * m + j) * ldy + o]
                    }
                }
            }
            got.withUnsafeMutableBytes { out in
                if portable {
                    sam3neck_store_tile_portable(
                        y, ldy, Int32(m), Int32(rows), Int32(cols), Int32(channels), out.baseAddress,
                        rowStep * width, pixelStep, plane)
                } else {
                    sam3neck_store_tile(
                        y, ldy, Int32(m), Int32(rows), Int32(cols), Int32(channels), out.baseAddress,
                        rowStep * width, pixelStep, plane, CompileOptions.DType.float32.code)
                }
            }
            #expect(Self.same(got, want), "\(rows)×\(cols)×\(channels), row step \(rowStep), pixel step \(pixelStep)")
        }
    }

    /// The same store where rows and planes are whole 64-byte lines apart (16 floats, 32 halves:
    /// the vector code then streams whole lines), at offsets of the output within a line from none
    /// to one short of a line (each a different count of pixels before the first boundary), in
    /// each element type: the pixels before the first line boundary, the whole lines, the pixels
    /// after the last one and the channels past a multiple of 8 all land where a naive loop puts
    /// them (rounded as `rounded`), and nothing else is written.
    @Test(arguments: [CompileOptions.DType.float32, .float16, .bfloat16])
    func channelMajorStoreOnWholeLines(dtype: CompileOptions.DType) {
        var rng = Naive.RNG(state: 23)
        let size = dtype == .float32 ? 4 : 2, perLine = 64 / size
        for (rows, cols, channels) in [(3, 40, 8), (2, 77, 21), (1, 16, 256), (2, 31, 9), (2, 95, 16)] {
            let m = cols + 1, ldy = channels + 3, rowStep = 2, width = 96
            var y = rng.floats(rows * m * ldy, scale: 1)
            (y[0], y[ldy + 1], y[2 * ldy + 2]) = (.nan, .infinity, 1 + 0x1p-8)  // NaN, Inf, a bfloat16 tie
            let plane = width * (rows * rowStep + 1)  // a multiple of 32
            for offset in [0, 1, 3, perLine / 2, perLine - 1] {
                let count = channels * plane + perLine, sentinel: Float = -7.25
                var want = [Float](repeating: sentinel, count: count)
                for o in 0..<channels {
                    for i in 0..<rows {
                        for j in 0..<cols {
                            want[offset + o * plane + i * rowStep * width + j] = Self.rounded(
                                y[(i * m + j) * ldy + o], dtype)
                        }
                    }
                }
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: count * size, alignment: 64)
                defer { buffer.deallocate() }
                Self.encode([Float](repeating: sentinel, count: count), dtype).withUnsafeBytes {
                    buffer.copyMemory(from: $0.baseAddress!, byteCount: count * size)
                }
                sam3neck_store_tile(
                    y, ldy, Int32(m), Int32(rows), Int32(cols), Int32(channels), buffer + offset * size,
                    rowStep * width, 1, plane, dtype.code)
                let got = Self.decode(Array(UnsafeRawBufferPointer(start: buffer, count: count * size)), dtype)
                #expect(Self.same(got, want), "\(dtype) \(rows)×\(cols)×\(channels) at offset \(offset)")
            }
        }
    }

    /// The C conversions against Swift's Float16 and the bfloat16 formula, on the values where
    /// rounding is subtle: ties, subnormals, the overflow threshold, NaN and Inf; the dispatching
    /// code (F16C + AVX2 where the CPU has them) and the portable code.
    @Test(arguments: [false, true])
    func conversionsRoundToNearestEven(portable: Bool) {
        var values: [Float] = [
            0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 1e-8, 6e-8, 2.9802322e-8, 5.9604645e-8, 6.1035156e-5,
            6.0975552e-5, 1 + 1.0 / 2048, 1 + 3.0 / 2048, .infinity, -.infinity, .nan, .greatestFiniteMagnitude,
            Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x7F7F_FFFF),
        ]
        var rng = Naive.RNG(state: 9)
        values += rng.floats(1000, scale: 100) + rng.floats(1000, scale: 1e-5)
        for dtype in [CompileOptions.DType.float16, .bfloat16] {
            var half = [UInt16](repeating: 0, count: values.count)
            var back = [Float](repeating: 0, count: values.count)
            if portable {
                sam3neck_narrow_portable(values, &half, dtype.code, values.count)
                sam3neck_widen_portable(half, dtype.code, &back, values.count)
            } else {
                sam3neck_narrow(values, &half, dtype.code, values.count)
                sam3neck_widen(half, dtype.code, &back, values.count)
            }
            #expect(Self.same(back, values.map { Self.rounded($0, dtype) }), "\(dtype)")
        }
    }
}
