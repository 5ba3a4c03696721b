import Testing
@testable import Sam3Neck

/// Protocol-2 opcodes assembled by hand, so each test controls the exact bytes.
struct PickleBuilder {
    var bytes: [UInt8] = [0x80, 0x02]

    mutating func raw(_ b: [UInt8]) { bytes += b }
    mutating func mark() { raw([0x28]) }
    mutating func global(_ module: String, _ name: String) { raw([0x63] + Array("\(module)\n\(name)\n".utf8)) }
    mutating func str(_ s: String) {
        let u = Array(s.utf8)
        raw([0x58] + withUnsafeBytes(of: UInt32(u.count).littleEndian, Array.init) + u)
    }
    mutating func int(_ v: Int) {
        if (0..<256).contains(v) {
            raw([0x4B, UInt8(v)])
        } else if let small = Int32(exactly: v) {
            raw([0x4A] + withUnsafeBytes(of: small.littleEndian, Array.init))
        } else {
            raw([0x8A, 8] + withUnsafeBytes(of: Int64(v).littleEndian, Array.init))  // LONG1
        }
    }
    mutating func ints(_ vs: [Int]) {
        mark()
        vs.forEach { int($0) }
        raw([0x74])  // TUPLE
    }
    /// `name: _rebuild_tensor_v2(storage key, offset, size, stride)` as a dict item (no SETITEM).
    mutating func tensor(
        key: String, storage: String = "FloatStorage", numel: Int, offset: Int, shape: [Int], stride: [Int]
    ) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark(); str("storage"); global("torch", storage); str(key); str("cpu"); int(numel); raw([0x74, 0x51])
        int(offset); ints(shape); ints(stride); raw([0x89])
        global("collections", "OrderedDict"); raw([0x29, 0x52])
        raw([0x74, 0x52])
    }
    func stop() -> [UInt8] { bytes + [0x2E] }
}

/// A stored zip archive with the given entries (CRC left 0: the reader does not check it).
func zipArchive(_ entries: [(String, [UInt8])], zip64Offsets: Bool = false) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt16(v).littleEndian, Array.init) }
    func le32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian, Array.init) }
    func le64(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt64(v).littleEndian, Array.init) }
    var out: [UInt8] = [], central: [UInt8] = []
    for (name, data) in entries {
        let n = Array(name.utf8), offset = out.count
        out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
        out += le32(data.count) + le32(data.count) + le16(n.count) + le16(0) + n + data
        // With zip64Offsets the directory saturates the offset and gives it in the extra field.
        let extra = zip64Offsets ? le16(1) + le16(8) + le64(offset) : []
        central += le32(0x0201_4B50) + le16(45) + le16(45) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
        central += le32(data.count) + le32(data.count) + le16(n.count) + le16(extra.count) + le16(0) + le16(0) + le16(0)
        central += le32(0) + le32(zip64Offsets ? 0xFFFF_FFFF : offset) + n + extra
    }
    let start = out.count
    out += central
    out +=
        le32(0x0605_4B50) + le16(0) + le16(0) + le16(entries.count) + le16(entries.count) + le32(central.count)
        + le32(start) + le16(0)
    return out
}

func floats(_ v: [Float]) -> [UInt8] { v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }

func unpickle(_ bytes: [UInt8]) throws -> PickleValue {
    try bytes.withUnsafeBytes { try Unpickler(label: "test").load($0) }
}

@Suite struct PickleTests {
    @Test func integersOfEveryWidth() throws {
        var p = PickleBuilder()
        p.mark()
        p.int(7); p.int(300); p.int(-5)
        p.raw([0x8A, 3, 0x00, 0x00, 0x80])  // LONG1: -2^23
        p.raw([0x8A, 5, 0x00, 0x00, 0x00, 0x00, 0x01])  // LONG1: 2^32
        p.raw([0x8A, 0])  // LONG1 of no bytes: 0
        p.raw([0x74])
        guard case let .tuple(t) = try unpickle(p.stop()) else { Issue.record("not a tuple"); return }
        #expect(t.items.map(\.int) == [7, 300, -5, -(1 << 23), 1 << 32, 0])
    }

    @Test func memoSharesOneDict() throws {
        var p = PickleBuilder()
        p.raw([0x7D, 0x71, 3])  // EMPTY_DICT, BINPUT 3
        p.str("a"); p.int(1); p.raw([0x73])  // SETITEM
        p.raw([0x68, 3])  // BINGET 3: the same dict
        p.str("b"); p.int(2); p.raw([0x73, 0x30])  // SETITEM, then POP
        expectError(.format, containing: ["opcode 0x30"]) { _ = try unpickle(p.stop()) }  // POP: not in state dicts
        var q = PickleBuilder()
        q.raw([0x7D, 0x71, 3]); q.str("a"); q.int(1); q.raw([0x73])
        q.raw([0x68, 3]); q.str("b"); q.int(2); q.raw([0x73, 0x86])  // TUPLE2 of (dict, dict)
        guard case let .tuple(t) = try unpickle(q.stop()), case let .dict(x) = t.items[0],
            case let .dict(y) = t.items[1]
        else {
            Issue.record("not a tuple of dicts"); return
        }
        #expect(x === y && x.items.count == 2 && x["b"]?.int == 2)
    }

    @Test(arguments: [
        ("os", "system", "'os.system'"),
        ("builtins", "eval", "'builtins.eval'"),
        ("torch", "load", "'torch.load'"),
    ])
    func forbiddenGlobalsAreNamed(module: String, name: String, expected: String) {
        var p = PickleBuilder()
        p.global(module, name)
        p.str("echo hi"); p.raw([0x85, 0x52])  // TUPLE1, REDUCE
        expectError(.format, containing: [expected, "not allowed"]) { _ = try unpickle(p.stop()) }
    }

    @Test func allowedArgumentTypesCannotBeCalled() {
        var p = PickleBuilder()
        p.global("torch", "FloatStorage"); p.raw([0x29, 0x52])
        expectError(.format, containing: ["'torch.FloatStorage' cannot be called"]) { _ = try unpickle(p.stop()) }
    }

    @Test(
        arguments: [
            ([0x80, 0x02, 0x4B], "truncated"),
            ([0x80, 0x02, 0x4B, 1], "no STOP"),
            ([0x80, 0x02, 0x4B, 1, 0x4B, 2, 0x2E], "STOP with 2 values"),
            ([0x80, 0x02, 0x74, 0x2E], "no MARK"),
            ([0x80, 0x02, 0x28, 0x85, 0x2E], "stack underflow"),
            ([0x80, 0x02, 0x68, 9, 0x2E], "memo entry 9"),
            ([0x80, 0x02, 0x4B, 1, 0x61, 0x2E], "APPEND to a"),
            ([0x80, 0x09, 0x2E], "protocol 9"),
            ([0x80, 0x02, 0x63, 0x6F, 0x73, 0x2E], "truncated"),
        ] as [([UInt8], String)])
    func malformedPicklesAreRejected(bytes: [UInt8], words: String) {
        expectError(.format, containing: [words]) { _ = try unpickle(bytes) }
    }
}

@Suite struct TorchCheckpointTests {
    /// A [3, 4] tensor stored transposed ([4, 3] storage, strides (1, 3)), after an offset of 2,
    /// next to a second tensor sharing the storage.
    func archive(zip64: Bool = false) -> [UInt8] {
        var p = PickleBuilder()
        p.global("collections", "OrderedDict"); p.raw([0x29, 0x52]); p.mark()
        p.str("t"); p.tensor(key: "0", numel: 14, offset: 2, shape: [3, 4], stride: [1, 3])
        p.str("head"); p.tensor(key: "0", numel: 14, offset: 0, shape: [2], stride: [1])
        p.str("c"); p.tensor(key: "1", storage: "ComplexFloatStorage", numel: 1, offset: 0, shape: [1], stride: [1])
        p.raw([0x75])
        let storage = floats((0..<14).map(Float.init))
        return zipArchive(
            [
                ("ck/data.pkl", p.stop()), ("ck/byteorder", Array("little".utf8)),
                ("ck/data/0", storage), ("ck/data/1", [UInt8](repeating: 0, count: 8)),
            ], zip64Offsets: zip64)
    }

    func open(_ bytes: [UInt8], _ body: (TorchCheckpoint) throws -> Void) throws {
        try bytes.withUnsafeBytes { try body(TorchCheckpoint(source: MemorySource($0))) }
    }

    @Test(arguments: [false, true])
    func stridedViewsAndSharedStorages(zip64: Bool) throws {
        try open(archive(zip64: zip64)) { ck in
            #expect(ck.names == ["t", "head", "c"])
            let t = try ck.readFloat32("t")
            // Oracle: element (i, j) of the view is storage[2 + i*1 + j*3].
            var expected: [Float] = []
            for i in 0..<3 { for j in 0..<4 { expected.append(Float(2 + i + 3 * j)) } }
            #expect(t.shape == [3, 4] && t.data == expected)
            let head = try ck.readFloat32("head")
            #expect(head.data == [0, 1])
            let c = try ck.info("c")
            #expect(c?.dtypeName == "C64")
            expectError(.dtype, containing: ["'c'", "C64"]) { _ = try ck.readFloat32("c") }
        }
    }

    @Test func bigEndianArchivesAreRefused() {
        var p = PickleBuilder()
        p.raw([0x7D])
        let bytes = zipArchive([("a/data.pkl", p.stop()), ("a/byteorder", Array("big".utf8))])
        expectError(.format, containing: ["byte order 'big'"]) { try open(bytes) { _ in } }
    }

    @Test func zipWithoutPickleListsItsEntries() {
        let bytes = zipArchive([("x/readme.txt", [1, 2, 3])])
        expectError(.format, containing: ["without '<name>/data.pkl'", "'x/readme.txt'"]) { try open(bytes) { _ in } }
    }

    @Test func wrappersAreLookedThrough() throws {
        var p = PickleBuilder()
        p.raw([0x7D]); p.mark()
        p.str("epoch"); p.int(3)
        p.str("state_dict"); p.raw([0x7D]); p.mark()
        p.str("w"); p.tensor(key: "0", numel: 2, offset: 0, shape: [2], stride: [1])
        p.raw([0x75, 0x75])
        let bytes = zipArchive([("m/data.pkl", p.stop()), ("m/data/0", floats([5, 6]))])
        try open(bytes) { ck in
            let w = try ck.readFloat32("w")
            #expect(w.data == [5, 6])
        }
        var q = PickleBuilder()
        q.raw([0x7D]); q.str("epoch"); q.int(3); q.raw([0x73])
        let none = zipArchive([("m/data.pkl", q.stop())])
        expectError(.missingTensor, containing: ["no tensors", "'epoch'"]) { try open(none) { _ in } }
    }
}
