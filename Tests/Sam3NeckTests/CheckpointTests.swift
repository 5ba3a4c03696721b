import Foundation
import Testing
@testable import Sam3Neck

/// Builds safetensors bytes in the test, independently of the reader.
struct SafetensorsBuilder {
    var items: [(name: String, dtype: String, shape: [Int], data: [UInt8])] = []

    mutating func add(_ name: String, _ t: Tensor, dtype: String = "F32") {
        var bytes = [UInt8]()
        for v in t.data {
            switch dtype {
            case "F32": withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 }
            case "F16": withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { bytes += $0 }
            case "BF16":
                withUnsafeBytes(of: UInt16(truncatingIfNeeded: v.bitPattern >> 16).littleEndian) { bytes += $0 }
            default: fatalError()
            }
        }
        items.append((name, dtype, t.shape, bytes))
    }

    mutating func addRaw(_ name: String, dtype: String, shape: [Int], bytes: [UInt8]) {
        items.append((name, dtype, shape, bytes))
    }

    func build(headerOverride: String? = nil) -> [UInt8] {
        var json = "{\"__metadata__\":{\"format\":\"pt\"}"
        var data = [UInt8]()
        for it in items {
            json +=
                ",\"\(it.name)\":{\"dtype\":\"\(it.dtype)\",\"shape\":[\(it.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(data.count),\(data.count + it.data.count)]}"
            data += it.data
        }
        json += "}"
        var header = Array((headerOverride ?? json).utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out += $0 }
        return out + header + data
    }

    /// Every tensor of `w` under `prefix` + "convs.".
    static func neck(
        _ w: NeckWeights, prefix: String, group: String = "convs", dtype: String = "F32", skip: String? = nil
    ) -> SafetensorsBuilder {
        var b = SafetensorsBuilder()
        for t in NeckNaming.tensors {
            let name = "\(prefix)\(group).\(t)"
            if name != skip { b.add(name, w.tensor(t)!, dtype: dtype) }
        }
        return b
    }
}

func load(_ bytes: [UInt8], kind: NeckKind = .sam3, prefix: String? = nil) throws -> NeckWeights {
    try bytes.withUnsafeBytes {
        try NeckWeights.load(SafetensorsFile(source: MemorySource($0)), kind: kind, prefix: prefix)
    }
}

func expectError(_ kind: NeckError.Kind, containing words: [String], _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a \(kind) error containing \(words)")
    } catch let e as NeckError {
        #expect(e.kind == kind, "\(e.message)")
        for w in words { #expect(e.message.contains(w), "message '\(e.message)' lacks '\(w)'") }
    } catch {
        Issue.record("unexpected error \(error)")
    }
}

@Suite struct JSONTests {
    func parse(_ s: String) throws -> JSONValue { try Array(s.utf8).withUnsafeBytes { try JSONParser.parse($0) } }

    @Test func parsesWhatHeadersContain() throws {
        let v = try parse(
            #" {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "e\u00e9\ud83d\ude00": [true, false, null, -1.5e3]} "#
        )
        #expect(v["a"]?["shape"]?.array == [.number("2"), .number("3")])
        #expect(v["a"]?["data_offsets"]?.array?[1].int64 == 24)
        #expect(v["eé😀"]?.array == [.bool(true), .bool(false), .null, .number("-1.5e3")])
    }

    @Test(arguments: [
        "", "{", "{\"a\":}", "[1,]", "{\"a\":1,}", "01", "1.", "\"\\x\"", "\"\u{01}\"", "nul", "{} x",
        "\"\\ud800\"", String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func rejectsMalformed(text: String) {
        #expect(throws: NeckError.self) { try parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        let bytes: [UInt8] = [0x22, 0xFF, 0xFE, 0x22]
        #expect(throws: NeckError.self) { try bytes.withUnsafeBytes { try JSONParser.parse($0) } }
    }
}

@Suite struct CheckpointTests {
    let weights = Naive.weights(c: 8, d: 4, seed: 5)

    @Test(arguments: NeckNamingScheme.original.knownPrefixes)
    func loadsUnderEveryKnownPrefixAndSkipsTheRest(prefix: String) throws {
        var b = SafetensorsBuilder.neck(weights, prefix: prefix)
        // Unrelated tensors, including a dtype the neck cannot use and another neck.
        b.addRaw(
            "\(prefix)trunk.blocks.0.attn.freqs_cis", dtype: "C64", shape: [2], bytes: Array(repeating: 1, count: 16))
        b.addRaw("text.tokens", dtype: "I64", shape: [1], bytes: Array(repeating: 0, count: 8))
        let other = Naive.weights(c: 8, d: 4, seed: 6)
        for it in SafetensorsBuilder.neck(other, prefix: prefix, group: "sam2_convs").items { b.items.append(it) }
        let loaded = try load(b.build())
        #expect(loaded.trunkDim == 8 && loaded.dModel == 4)
        #expect(loaded.level0.dconv0.weight == weights.level0.dconv0.weight)
        #expect(loaded.level3.conv3x3.bias == weights.level3.conv3x3.bias)
        let sam2 = try load(b.build(), kind: .sam2)
        #expect(sam2.level1.conv1x1.weight == other.level1.conv1x1.weight)
    }

    @Test(arguments: ["F16", "BF16"])
    func halfPrecisionTensorsAreWidened(dtype: String) throws {
        let loaded = try load(SafetensorsBuilder.neck(weights, prefix: "", dtype: dtype).build())
        let src = weights.level2.conv1x1.weight.data
        let got = loaded.level2.conv1x1.weight.data
        for (a, b) in zip(src, got) {
            let want = dtype == "F16" ? Float(Float16(a)) : Float(bitPattern: a.bitPattern & 0xFFFF_0000)
            #expect(b == want)
        }
    }

    @Test func missingTensorIsNamed() {
        let name = "convs.1.conv_3x3.weight"
        let bytes = SafetensorsBuilder.neck(weights, prefix: "", skip: name).build()
        expectError(.missingTensor, containing: [name]) { _ = try load(bytes) }
    }

    @Test func misShapedTensorIsNamedWithBothShapes() {
        var b = SafetensorsBuilder.neck(weights, prefix: "vision_backbone.")
        let i = b.items.firstIndex { $0.name == "vision_backbone.convs.0.dconv_2x2_1.weight" }!
        b.items[i].shape = [4, 4, 1, 2]  // same byte count, wrong shape
        expectError(.shape, containing: ["vision_backbone.convs.0.dconv_2x2_1.weight", "[4, 4, 1, 2]", "[4, *, 2, 2]"])
        { _ = try load(b.build()) }
    }

    @Test func unsupportedDtypeOfANeededTensor() {
        var b = SafetensorsBuilder.neck(weights, prefix: "")
        let i = b.items.firstIndex { $0.name == "convs.2.conv_3x3.bias" }!
        b.items[i] = ("convs.2.conv_3x3.bias", "I32", [4], Array(repeating: 0, count: 16))
        expectError(.dtype, containing: ["convs.2.conv_3x3.bias", "I32"]) { _ = try load(b.build()) }
    }

    @Test func noNeckListsWhatWasFound() {
        var b = SafetensorsBuilder.neck(weights, prefix: "model.weird.")
        expectError(
            .missingTensor, containing: ["no sam3 neck", "a sam3 neck (original names) under prefix 'model.weird.'"]
        ) { _ = try load(b.build()) }
        // With the explicit prefix it loads.
        #expect(throws: Never.self) { _ = try load(b.build(), prefix: "model.weird.") }
        b.items.removeAll()
        expectError(.missingTensor, containing: ["no sam3 neck"]) { _ = try load(b.build()) }
    }

    @Test func ambiguousPrefixesAskForAChoice() throws {
        var b = SafetensorsBuilder.neck(weights, prefix: "")
        b.items += SafetensorsBuilder.neck(weights, prefix: "vision_backbone.").items
        expectError(.invalidArgument, containing: ["appears 2 times", "under 'vision_backbone.'", "prefix option"]) {
            _ = try load(b.build())
        }
        _ = try load(b.build(), prefix: "vision_backbone.")
    }

    @Test func malformedFilesAreFormatErrors() {
        let good = SafetensorsBuilder.neck(weights, prefix: "").build()
        // Truncated at every header byte and at and around every tensor's data boundaries: never
        // a crash, always an error.
        let headerEnd = 8 + Int(good.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let ranges = good.withUnsafeBytes {
            try! SafetensorsFile(source: MemorySource($0)).entries.values.map(\.byteRange)
        }
        #expect(ranges.count == 22)
        let boundaries = ranges.flatMap { [$0.lowerBound, $0.lowerBound + 1, $0.upperBound - 1, $0.upperBound] }
        for cut in Set(Array(0..<headerEnd + 4) + boundaries) where cut < good.count {
            #expect(throws: NeckError.self) { _ = try load(Array(good.prefix(cut))) }
        }
        // Header length past the end of the file.
        var huge = good
        huge.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init))
        expectError(.format, containing: ["header length"]) { _ = try load(huge) }
        // Offsets outside the data, wrong byte count, duplicate names.
        var b = SafetensorsBuilder()
        b.addRaw("x", dtype: "F32", shape: [2], bytes: Array(repeating: 0, count: 8))
        expectError(.format, containing: ["'x'", "data_offsets"]) {
            _ = try load(b.build(headerOverride: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#))
        }
        expectError(.format, containing: ["'x'", "needs 12 bytes"]) {
            _ = try load(b.build(headerOverride: #"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#))
        }
        expectError(.format, containing: ["\"x\"", "twice"]) {
            _ = try load(
                b.build(
                    headerOverride:
                        #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
                ))
        }
        expectError(.format, containing: ["'x'", "overflows"]) {
            _ = try load(
                b.build(
                    headerOverride:
                        #"{"x":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,8]}}"#))
        }
        expectError(.format, containing: ["not a JSON object"]) { _ = try load(b.build(headerOverride: "[]")) }
        expectError(.format, containing: ["'x'", "'y'", "overlap"]) {
            _ = try load(
                b.build(
                    headerOverride:
                        #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
                ))
        }
    }

    /// A file that is neither safetensors nor a zip (a text file, random bytes, a few bytes) is
    /// named as such, with its first bytes shown printably, not read as a safetensors header
    /// length of exabytes; a damaged safetensors file keeps the safetensors reader's message.
    @Test func nonCheckpointFilesSaySo() {
        func openAny(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { _ = try Checkpoint.open(MemorySource($0)) }
        }
        let text = Array("Hello, this is a text file, not weights.\n".utf8)
        expectError(
            .format,
            containing: [
                "not a recognised checkpoint", "neither safetensors nor a PyTorch zip",
                #"first bytes "Hello, this is a"..."#,
            ]
        ) {
            try openAny(text)
        }
        var rng = SystemRandomNumberGenerator()
        var noise = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        noise[8] = 0x00  // not '{'
        noise[7] = 0xF0  // a length of exabytes
        noise[0] = 0x00  // not "PK", not a pickle
        expectError(.format, containing: ["not a recognised checkpoint", "first bytes \"\\x00"]) { try openAny(noise) }
        expectError(.format, containing: ["not a recognised checkpoint", #"first bytes "hi\n""#]) {
            try openAny(Array("hi\n".utf8))
        }
        expectError(.format, containing: ["not a recognised checkpoint", "the file is empty"]) { try openAny([]) }
        #expect(Checkpoint.escaped([0x41, 0x0A, 0x22, 0x5C, 0x00, 0xFF]) == #"A\n\"\\\x00\xff"#)
        // Still safetensors: a valid file, and one whose length runs past its end ('{' follows).
        let good = SafetensorsBuilder.neck(weights, prefix: "").build()
        #expect(good.withUnsafeBytes { Checkpoint.looksLikeSafetensors(MemorySource($0)) })
        var huge = good
        huge.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init))
        expectError(.format, containing: ["safetensors", "header length", "exceeds the"]) { try openAny(huge) }
        huge.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(good.count + 100).littleEndian, Array.init))
        expectError(.format, containing: ["safetensors", "header length", "runs past the end"]) { try openAny(huge) }
    }

    /// Weights are not ours to judge: NaN and ±Inf in a checkpoint load as they are.
    @Test func nonFiniteWeightsLoad() throws {
        var w = Naive.weights(c: 8, d: 4, seed: 9)
        w.level1.conv3x3.weight.data[0] = .nan
        w.level1.conv3x3.weight.data[1] = .infinity
        let loaded = try load(SafetensorsBuilder.neck(w, prefix: "").build())
        #expect(loaded.level1.conv3x3.weight.data[0].isNaN)
        #expect(loaded.level1.conv3x3.weight.data[1] == .infinity)
    }

    @Test func fileSourceReadsOnlyWhatIsAskedAndReportsMissingFiles() throws {
        expectError(.io, containing: ["/nonexistent/x.safetensors"]) {
            _ = try FileSource(path: "/nonexistent/x.safetensors")
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sam3neck-test-\(getpid()).safetensors")
        try Data(SafetensorsBuilder.neck(weights, prefix: "").build()).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let neck = try Neck(path: url.path)
        #expect(neck.trunkDim == 8 && neck.dModel == 4)
    }
}
