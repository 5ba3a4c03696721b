// sam3neck-fuzz: the checkpoint parsers under libFuzzer, and the replay of saved inputs.
//
// Fuzzing (coverage-guided, bounded):   make fuzz FUZZ_SECONDS=60
// Replay (part of the normal tests):    .build/release/sam3neck-fuzz Tests/fuzz/corpus/* Tests/fuzz/regressions/*
//
// Each input is handed to the checkpoint reader (safetensors or PyTorch zip, chosen by content as
// for a real load: zip directory, restricted unpickler, strided storages) and, when it parses, to
// the neck loader, which reads the tensors it needs. Any outcome but a crash is fine: errors are the expected answer.
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
    for kind in NeckKind.allCases {
        if (try? Neck(bytes: bytes, kind: kind)) != nil { counts.necks += 1 }
    }
    if let file = try? Checkpoint.open(MemorySource(bytes)) {
        counts.headers += 1
        for name in file.names.prefix(64) { _ = try? file.readFloat32(name) }
    }
    return 0
}

func summary() -> String {
    "\(counts.inputs) inputs: \(counts.inputs - counts.headers) rejected by the checkpoint readers, " +
    "\(counts.headers) parsed, \(counts.necks) neck loads succeeded (sam3 and sam2 kinds tried on each)"
}

#if FUZZING
// SwiftPM links an executable's entry point as `<module>_main`; under libFuzzer that entry point
// hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@_cdecl("sam3neck_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc, vector = argv
    atexit { print("sam3neck-fuzz: \(summary())") }
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
        print("sam3neck-fuzz: replayed \(count) files without a crash; \(summary())")
    }
}
#endif
