// sam3neck-fuzz: the checkpoint parsers under libFuzzer, and the replay of saved inputs.
//
// Fuzzing (coverage-guided, bounded):   make fuzz FUZZ_SECONDS=60
// Replay (part of the normal tests):    .build/release/sam3neck-fuzz Tests/fuzz/corpus/* Tests/fuzz/regressions/*
//
// Three kinds of input, told apart by their first four bytes:
// - a checkpoint file (anything else): handed to the checkpoint reader (safetensors or PyTorch zip,
//   chosen by content as for a real load) and, when it parses, to the neck loader;
// - "S3PK" + a pickle: wrapped by the harness into a torch.save archive with four storages of 64
//   floats, so that mutations act on pickle opcodes (nesting, memo, reductions, strides) rather
//   than on the zip around them; under libFuzzer a custom mutator also inserts opcodes, repeats
//   slices (deeper nesting) and plants extreme integers (offsets, sizes, strides near 2^63);
// - "S3SH" + index JSON + NUL + shard bytes: written as a sharded folder beside a FIFO, a folder,
//   and links inside and outside it, which the index may name as shards.
// Any outcome but a crash or a hang is fine: errors are the expected answer.
import Sam3Neck
#if canImport(Glibc)
import Glibc
#endif

/// Inputs seen, inputs whose header parsed, inputs from which a neck loaded (for the summary).
nonisolated(unsafe) var counts = (inputs: 0, headers: 0, necks: 0)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    counts.inputs += 1
    guard let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if bytes.starts(with: pickleTag) {
        let archive = torchArchive(pickle: bytes.dropFirst(4))
        archive.withUnsafeBytes { checkpoint($0) }
    } else if bytes.starts(with: shardedTag) {
        shardedFolder(bytes.dropFirst(4))
    } else {
        checkpoint(bytes)
    }
    return 0
}

let pickleTag = Array("S3PK".utf8), shardedTag = Array("S3SH".utf8)

/// One checkpoint image through both readers: the neck loader (both kinds) and every tensor.
func checkpoint(_ bytes: UnsafeRawBufferPointer) {
    for kind in NeckKind.allCases {
        if (try? NeckWeights.load(bytes: bytes, kind: kind)) != nil { counts.necks += 1 }
    }
    if let file = try? Checkpoint.open(MemorySource(bytes)) {
        counts.headers += 1
        for name in file.names.prefix(64) { _ = try? file.readFloat32(name) }
    }
}

/// A stored zip archive as torch.save lays it out: `a/data.pkl` and storages `a/data/0` … `3`.
func torchArchive(pickle: Slice<UnsafeRawBufferPointer>) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16(v >> 16 & 0xFFFF) }
    let storage = (0..<64).flatMap { withUnsafeBytes(of: Float($0).bitPattern.littleEndian, Array.init) }
    let entries: [(String, [UInt8])] = [("a/data.pkl", Array(pickle))] + (0..<4).map { ("a/data/\($0)", storage) }
    var out: [UInt8] = [], central: [UInt8] = []
    for (name, body) in entries {
        let n = Array(name.utf8), offset = out.count
        out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
        out += le32(body.count) + le32(body.count) + le16(n.count) + le16(0) + n + body
        central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
        central += le32(body.count) + le32(body.count) + le16(n.count) + le16(0) + le16(0) + le16(0) + le16(0)
        central += le32(0) + le32(offset) + n
    }
    let start = out.count
    out += central + le32(0x0605_4B50) + le16(0) + le16(0) + le16(entries.count) + le16(entries.count)
    return out + le32(central.count) + le32(start) + le16(0)
}

/// The folder sharded inputs are written to: one per process, with fixed neighbours to name;
/// removed at exit (`removeShardFolder`).
nonisolated(unsafe) var shardFolderMade = false
let shardFolder: String = {
    shardFolderMade = true
    var template = Array("/tmp/sam3neck-fuzz-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    mkfifo(dir + "/fifo.safetensors", 0o600)
    mkdir(dir + "/folder.safetensors", 0o700)
    symlink("/etc/passwd", dir + "/link-out.safetensors")
    symlink("a.safetensors", dir + "/link-in.safetensors")
    return dir
}()

func removeShardFolder() {
    guard shardFolderMade else { return }
    for name in [
        "model.safetensors.index.json", "a.safetensors", "fifo.safetensors", "link-out.safetensors",
        "link-in.safetensors",
    ] {
        unlink(shardFolder + "/" + name)
    }
    rmdir(shardFolder + "/folder.safetensors")
    rmdir(shardFolder)
}

/// `index JSON` NUL `shard bytes`: written as `model.safetensors.index.json` and `a.safetensors`.
func shardedFolder(_ input: Slice<UnsafeRawBufferPointer>) {
    let split = input.firstIndex(of: 0) ?? input.endIndex
    func save(_ name: String, _ body: Slice<UnsafeRawBufferPointer>) {
        let fd = open(shardFolder + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return }
        let raw = UnsafeRawBufferPointer(rebasing: body)
        _ = write(fd, raw.baseAddress, raw.count)
        close(fd)
    }
    save("model.safetensors.index.json", input[..<split])
    save("a.safetensors", split < input.endIndex ? input[(split + 1)...] : input[split...])
    for kind in NeckKind.allCases {
        if (try? Neck(path: shardFolder, kind: kind)) != nil { counts.necks += 1 }
    }
}

func summary() -> String {
    "\(counts.inputs) inputs: \(counts.inputs - counts.headers) rejected by the checkpoint readers, "
        + "\(counts.headers) parsed, \(counts.necks) neck loads succeeded (sam3 and sam2 kinds tried on each)"
}

#if FUZZING
// SwiftPM links an executable's entry point as `<module>_main`; under libFuzzer that entry point
// hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

@_silgen_name("LLVMFuzzerMutate")
func LLVMFuzzerMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int) -> Int

/// Pickle-aware mutations for "S3PK" inputs, half of the time: insert an opcode snippet, repeat
/// a slice (nesting grows), or plant an extreme integer; libFuzzer's own mutations otherwise.
@_cdecl("LLVMFuzzerCustomMutator")
func customMutator(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
    var rng = seed
    func next(_ n: Int) -> Int {
        rng = rng &* 1_103_515_245 &+ 12345
        return Int(rng >> 8) % max(n, 1)
    }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard bytes.starts(with: pickleTag), size > 6, next(2) == 0 else { return LLVMFuzzerMutate(data, size, maxSize) }
    let snippets: [[UInt8]] = [
        [0x85], [0x86], [0x87], [0x28], [0x74], [0x5D, 0x61], [0x7D, 0x73], [0x29], [0x4E], [0x65], [0x75],
        [0x68, 0], [0x71, 0], [0x94], [0x52], [0x51], [0x62],
        [0x8A, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], [0x8A, 8, 0, 0, 0, 0, 0, 0, 0, 0x40],
        [0x8A, 1, 0xFF], [0x4A, 0xFF, 0xFF, 0xFF, 0x7F], [0x4B, 0],
    ]
    var out = bytes
    let at = 6 + next(size - 6)  // after the tag and PROTO
    switch next(3) {
    case 0:
        out.insert(contentsOf: snippets[next(snippets.count)], at: at)
    case 1:
        let length = 1 + next(min(16, size - at))
        let slice = Array(out[at..<min(size, at + length)])
        for _ in 0..<(1 + next(64)) { out.insert(contentsOf: slice, at: at) }
    default:
        let extreme: [UInt8] =
            next(2) == 0 ? [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F] : [0, 0, 0, 0, 0, 0, 0, 0x40]
        for k in 0..<min(8, size - at) { out[at + k] = extreme[k] }
    }
    let n = min(out.count, maxSize)
    for k in 0..<n { data[k] = out[k] }
    return n
}

@_cdecl("sam3neck_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc, vector = argv
    atexit {
        removeShardFolder()
        print("sam3neck-fuzz: \(summary())")
    }
    return LLVMFuzzerRunDriver(&count, &vector, fuzzOneInput)
}
#else

/// Without libFuzzer: runs each file named on the command line through the same entry point.
@main
struct Replay {
    static func main() {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            guard let f = fopen(path, "rb") else {
                print("sam3neck-fuzz: cannot open \(path)")
                exit(2)
            }
            var bytes = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&chunk, 1, chunk.count, f)
                if n <= 0 { break }
                bytes += chunk[0..<n]
            }
            fclose(f)
            _ = bytes.withUnsafeBufferPointer { fuzzOneInput($0.baseAddress, $0.count) }
            count += 1
        }
        removeShardFolder()
        print("sam3neck-fuzz: replayed \(count) files without a crash; \(summary())")
    }
}
#endif
