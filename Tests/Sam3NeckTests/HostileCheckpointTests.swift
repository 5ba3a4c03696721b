import Foundation
import Testing
@testable import Sam3Neck

/// Files made by an attacker, small and generated here: each must give an error that names the
/// cause (or, where the file is valid after all, the right values), never a crash. The classes:
/// nesting depth, arithmetic on offsets and strides, memory claimed before it is backed, the
/// budgets of the pickle and JSON readers, file types and sharded folders.
@Suite struct HostileCheckpointTests {
    // MARK: Nesting

    /// `count` values built by repeating `body` on top of `seed`, then STOP.
    func nested(seed: [UInt8], repeating body: [UInt8], count: Int) -> [UInt8] {
        var p = PickleBuilder()
        p.raw(seed)
        for _ in 0..<count { p.raw(body) }
        return p.stop()
    }

    @Test func deepTuplesAreRefusedAtTheLimit() throws {
        // TUPLE1 repeated: a 70 KB pickle nesting 70,000 deep.
        expectError(.format, containing: ["nested 201 deep", "limit of \(Unpickler.maxDepth)"]) {
            _ = try unpickle(nested(seed: [0x4E], repeating: [0x85], count: 70_000))
        }
        // Up to the limit it parses (and is freed) fine.
        let ok = try unpickle(nested(seed: [0x4E], repeating: [0x85], count: Unpickler.maxDepth))
        #expect(ok.depth == Unpickler.maxDepth)
    }

    @Test func deepListsAndDictsAreRefused() {
        // EMPTY_LIST × n, then APPEND × (n−1): each list goes into the one below it.
        var lists = PickleBuilder()
        for _ in 0..<10_000 { lists.raw([0x5D]) }
        for _ in 0..<9_999 { lists.raw([0x61]) }
        expectError(.format, containing: ["nested", "limit of \(Unpickler.maxDepth)"]) {
            _ = try unpickle(lists.stop())
        }
        // EMPTY_DICT, key, EMPTY_DICT, key, …, then SETITEM × n.
        var dicts = PickleBuilder()
        dicts.raw([0x7D])
        for _ in 0..<10_000 { dicts.int(1); dicts.raw([0x7D]) }
        for _ in 0..<10_000 { dicts.raw([0x73]) }
        expectError(.format, containing: ["nested", "limit of \(Unpickler.maxDepth)"]) {
            _ = try unpickle(dicts.stop())
        }
    }

    @Test func rebuildFromTypeCannotNest() {
        // _rebuild_from_type_v2(_rebuild_from_type_v2, …): refused rather than followed.
        var p = PickleBuilder()
        p.global("torch._tensor", "_rebuild_from_type_v2")
        p.mark(); p.global("torch._tensor", "_rebuild_from_type_v2"); p.global("torch", "Tensor");
        p.raw([0x29, 0x7D, 0x74])
        p.raw([0x52])
        expectError(.format, containing: ["_rebuild_from_type_v2 with unexpected arguments"]) {
            _ = try unpickle(p.stop())
        }
    }

    @Test func cyclesAndChangesAfterNestingAreRefused() {
        // A list appended to itself (EMPTY_LIST, BINPUT 0, BINGET 0, APPEND).
        expectError(.format, containing: ["already inside another value"]) {
            _ = try unpickle(nested(seed: [0x5D, 0x71, 0, 0x68, 0, 0x61], repeating: [], count: 0))
        }
        // A dict put in a tuple, then changed through the memo.
        var p = PickleBuilder()
        p.raw([0x7D, 0x71, 0, 0x85, 0x68, 0]); p.int(1); p.int(2); p.raw([0x73])
        expectError(.format, containing: ["SETITEM", "already inside another value"]) { _ = try unpickle(p.stop()) }
    }

    // MARK: Budgets

    @Test func pickleBudgetsNameTheirLimits() {
        // A list of 5 M None (APPENDS): past the items budget.
        var list = PickleBuilder()
        list.raw([0x5D, 0x28])
        list.raw([UInt8](repeating: 0x4E, count: 100_000))
        list.raw([0x65])
        for _ in 0..<6 { list.raw([0x28] + [UInt8](repeating: 0x4E, count: 1_000_000) + [0x65]) }
        expectError(.format, containing: ["more than \(Unpickler.maxCells) items"]) { _ = try unpickle(list.stop()) }
        // 1 M + 1 memo entries.
        var memo = PickleBuilder()
        memo.raw([0x4E])
        for i in 0...Unpickler.maxMemo { memo.raw([0x72] + withUnsafeBytes(of: UInt32(i).littleEndian, Array.init)) }
        expectError(.format, containing: ["more than \(Unpickler.maxMemo) memo entries"]) {
            _ = try unpickle(memo.stop())
        }
        // 1 M + 1 values on the stack.
        expectError(.format, containing: ["more than \(Unpickler.maxStack) values on the stack"]) {
            _ = try unpickle(nested(seed: [], repeating: [0x4E], count: Unpickler.maxStack + 1))
        }
    }

    @Test func jsonBudgetAndDuplicateKeys() {
        let many = "[" + String(repeating: "1,", count: JSONParser.maxValues) + "1]"
        expectError(.format, containing: ["more than \(JSONParser.maxValues) values"]) {
            _ = try Array(many.utf8).withUnsafeBytes { try JSONParser.parse($0) }
        }
        // One key twice inside one safetensors entry: refused, not first- or last-wins.
        var b = SafetensorsBuilder()
        b.addRaw("x", dtype: "F32", shape: [2], bytes: Array(repeating: 0, count: 8))
        expectError(.format, containing: ["\"dtype\" appears twice"]) {
            _ = try load(
                b.build(headerOverride: #"{"x":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}"#))
        }
    }

    // MARK: Arithmetic and memory claimed by tensor views

    /// A PyTorch archive holding tensor "t" as a view of storage "0" (`numel` floats stored,
    /// `stored` of them written).
    func view(numel: Int, stored: Int? = nil, offset: Int, shape: [Int], stride: [Int]) -> [UInt8] {
        var p = PickleBuilder()
        p.raw([0x7D]); p.mark()
        p.str("t"); p.tensor(key: "0", numel: numel, offset: offset, shape: shape, stride: stride)
        p.raw([0x75])
        return zipArchive([("a/data.pkl", p.stop()), ("a/data/0", floats((0..<(stored ?? numel)).map(Float.init)))])
    }

    func read(_ bytes: [UInt8]) throws -> Tensor {
        try bytes.withUnsafeBytes { try TorchCheckpoint(source: MemorySource($0)).readFloat32("t") }
    }

    @Test func hugeStrideOfASizeOneAxisIsIgnored() throws {
        // Size-1 axes with strides near 2^63: they never step, so the view is just [2, 1, 3].
        let t = try read(view(numel: 6, offset: 0, shape: [2, 1, 3], stride: [3, Int.max - 1, 1]))
        #expect(t.shape == [2, 1, 3] && t.data == [0, 1, 2, 3, 4, 5])
        let u = try read(view(numel: 6, offset: 5, shape: [1, 1], stride: [Int.max, Int.max]))
        #expect(u.data == [5])
    }

    @Test(
        arguments: [
            (6, 0, [3, 3], [Int.max / 2 + 1, 1], ["'t'", "overflow"]),
            (6, Int.max - 2, [4], [1], ["'t'", "overflow"]),
            (6, 0, [3, 3], [3, 1], ["'t'", "reaches element 8 of a storage of 6"]),
            (Int.max / 2, 0, [2], [1], ["storage '0'", "should hold \(Int.max / 2) F32 elements"]),
        ] as [(Int, Int, [Int], [Int], [String])])
    func viewArithmeticIsChecked(numel: Int, offset: Int, shape: [Int], stride: [Int], words: [String]) {
        expectError(.format, containing: words) {
            _ = try read(view(numel: numel, stored: 6, offset: offset, shape: shape, stride: stride))
        }
    }

    @Test func expandedViewsMayNotClaimMoreThanTheirStorage() throws {
        // Stride 0 over one stored float: [2^20, 2^20] elements claimed from 4 bytes.
        expectError(.format, containing: ["'t'", "1099511627776 elements from 1 stored", "64 times"]) {
            _ = try read(view(numel: 1, offset: 0, shape: [1 << 20, 1 << 20], stride: [0, 0]))
        }
        // A modest expansion is a real (if rare) tensor: 64 copies of one value.
        let t = try read(view(numel: 1, offset: 0, shape: [8, 8], stride: [0, 0]))
        #expect(t.data == [Float](repeating: 0, count: 64))
    }

    @Test func theNecksSizeIsBoundedBeforeAnythingIsRead() {
        // A safetensors header claiming SAM 3's structure at d_model 65536 over data that is not
        // there: refused from the shapes alone (the data would be 600 GB).
        let d = 65536, c = 1024
        var json = "{"
        var offset = 0
        func add(_ name: String, _ shape: [Int]) {
            let bytes = shape.reduce(4, *)
            json +=
                "\"convs.\(name)\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[\(offset),\(offset + bytes)]},"
            offset += bytes
        }
        let shapes: [(String, [Int])] =
            [
                ("0.dconv_2x2_0", [c, c / 2, 2, 2]), ("0.dconv_2x2_1", [c / 2, c / 4, 2, 2]),
                ("0.conv_1x1", [d, c / 4, 1, 1]),
                ("1.dconv_2x2", [c, c / 2, 2, 2]), ("1.conv_1x1", [d, c / 2, 1, 1]),
                ("2.conv_1x1", [d, c, 1, 1]), ("3.conv_1x1", [d, c, 1, 1]),
            ] + (0...3).map { ("\($0).conv_3x3", [d, d, 3, 3]) }
        for (m, s) in shapes {
            add("\(m).weight", s)
            add(
                "\(m).bias",
                [
                    m.hasSuffix("dconv_2x2_0") || m.hasSuffix("dconv_2x2")
                        ? c / 2 : m.hasSuffix("dconv_2x2_1") ? c / 4 : d
                ])
        }
        json.removeLast()
        json += "}"
        // The source claims the bytes exist (as a sparse file would) without holding them.
        struct Claimed: ByteSource {
            let header: [UInt8], size: Int
            var name: String { "<sparse>" }
            func withBytes<R>(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
                guard offset + count <= header.count else { throw NeckError(.io, "data read at \(offset)") }
                return try header.withUnsafeBytes {
                    try body(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)]))
                }
            }
        }
        var header = Array(json.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        let bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
        expectError(.format, containing: ["parameters", "d_model 65536", "limit of \(NeckWeights.maxParameters)"]) {
            _ = try NeckWeights.load(SafetensorsFile(source: Claimed(header: bytes, size: bytes.count + offset)))
        }
    }

    // MARK: Files and folders

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sam3neck-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func onlyRegularFilesAreOpened() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("pipe.safetensors").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // Would block forever in open() without O_NONBLOCK (no writer): refused at once instead.
        expectError(.io, containing: ["FIFO", "not a regular file"]) { _ = try Checkpoint.open(path: fifo) }
        expectError(.io, containing: ["character device"]) { _ = try Checkpoint.open(path: "/dev/null") }
    }

    /// A sharded checkpoint of the tiny test neck in `folder`, its shard written as `shard` (a
    /// path relative to `folder`, or elsewhere through `link`).
    func writeShardedNeck(in folder: URL, shardFile: URL, linkAs name: String? = nil) throws -> NeckWeights {
        let w = Naive.weights(c: 4, d: 2, seed: 3)
        try Data(SafetensorsBuilder.neck(w, prefix: "").build()).write(to: shardFile)
        let shardName = name ?? shardFile.lastPathComponent
        if let name {
            try FileManager.default.createSymbolicLink(
                atPath: folder.appendingPathComponent(name).path,
                withDestinationPath: shardFile.path)
        }
        let map = NeckNaming.tensors.map { "\"convs.\($0)\": \"\(shardName)\"" }
        try Data("{\"metadata\": {}, \"weight_map\": {\(map.joined(separator: ", "))}}".utf8)
            .write(to: folder.appendingPathComponent("model.safetensors.index.json"))
        return w
    }

    @Test func shardsThatLinkOutOfTheFolderAreRefused() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let inside = dir.appendingPathComponent("index")
        try FileManager.default.createDirectory(at: inside, withIntermediateDirectories: true)
        _ = try writeShardedNeck(
            in: inside, shardFile: dir.appendingPathComponent("outside.safetensors"), linkAs: "model-1.safetensors")
        expectError(.format, containing: ["'model-1.safetensors'", "outside the index's folder"]) {
            _ = try NeckWeights.load(Checkpoint.open(path: inside.path))
        }
        // A FIFO named as a shard is refused, not waited on.
        try FileManager.default.removeItem(at: inside.appendingPathComponent("model-1.safetensors"))
        #expect(mkfifo(inside.appendingPathComponent("model-1.safetensors").path, 0o600) == 0)
        expectError(.io, containing: ["FIFO"]) { _ = try NeckWeights.load(Checkpoint.open(path: inside.path)) }
    }

    @Test func theHubCacheLayoutLoads() throws {
        // models--org--name/snapshots/REV/model-1.safetensors -> ../../blobs/HASH
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let repo = dir.appendingPathComponent("models--facebook--sam3")
        let snapshot = repo.appendingPathComponent("snapshots/0123abcd")
        let blobs = repo.appendingPathComponent("blobs")
        for f in [snapshot, blobs] { try FileManager.default.createDirectory(at: f, withIntermediateDirectories: true) }
        let w = try writeShardedNeck(
            in: snapshot, shardFile: blobs.appendingPathComponent("9f86d081"), linkAs: "model-1.safetensors")
        let loaded = try NeckWeights.load(Checkpoint.open(path: snapshot.path))
        #expect(loaded.level3.conv3x3.weight == w.level3.conv3x3.weight)
        // The same link from a folder that is not a hub snapshot is refused.
        let plain = dir.appendingPathComponent("plain")
        try FileManager.default.createDirectory(at: plain, withIntermediateDirectories: true)
        _ = try writeShardedNeck(
            in: plain, shardFile: blobs.appendingPathComponent("9f86d081"), linkAs: "model-1.safetensors")
        expectError(.format, containing: ["outside the index's folder"]) {
            _ = try NeckWeights.load(Checkpoint.open(path: plain.path))
        }
    }
}
