// sam3neck-api-fuzz: the C ABI (include/sam3_neck.h) under libFuzzer, as sequences of calls whose
// every status is checked against a model of what the header promises.
//
// Fuzzing (coverage-guided, bounded):   make fuzz FUZZ_SECONDS=60     (with the checkpoint fuzzer)
// Replay (part of the normal tests):    .build/release/sam3neck-api-fuzz Tests/fuzz/api-corpus/* Tests/fuzz/api-regressions/*
// (SAM3NECK_API_FUZZ_TRACE=1: print each input's calls and statuses)
//
// An input is a program: each operation is one byte (low 4 bits: the verb; bit 7: which of two
// handle slots) and the bytes its arguments take (`Decoder`; a missing byte reads as 0). Verbs:
// load a small valid checkpoint built here (4 sizes x 3 dtypes x 2 prefixes x 2 necks) from memory,
// with load params; load mutated bytes of one; free; compile and compile_io with arbitrary params
// (bad batch, sizes, layout, mask, threads, precision, struct_size, dtypes, output layout; the
// valid ones kept small: batch <= 2, H, W <= 16); run and run_io with arbitrary counts, NULL,
// misaligned and overlapping buffers, each buffer flush against a PROT_NONE page; the queries
// (shapes, counts, workspace, kernel name, position encodings, config, compile and I/O params, the
// loaded tensors); SAM3NECK_SGEMM_KERNEL set to generic, a bogus value, or unset.
//
// The model (`Slot`, `Plan`) knows what each call must answer: OK, or one of the statuses the
// header documents for the arguments' faults (when several faults apply, any of theirs). It also
// checks what the header promises beyond the status: a failed call leaves a non-empty last error
// naming the function, a successful one leaves the last error unchanged; a failed load sets *out to
// NULL; a failed compile leaves the handle uncompiled; a run writes exactly the promised elements
// (the rest of each buffer keeps its sentinel, levels not compiled are untouched, the input is not
// changed) and a refused run writes nothing; shapes, counts and parameters read back as compiled;
// the loaded tensors are the checkpoint's values. A mismatch aborts (libFuzzer saves the input).
import Sam3NeckABI
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Reading the input

struct Decoder {
    let bytes: UnsafeRawBufferPointer
    var at = 0
    var atEnd: Bool { at >= bytes.count }
    mutating func u8() -> Int {
        guard at < bytes.count else { return 0 }
        defer { at += 1 }
        return Int(bytes[at])
    }
    mutating func u16() -> Int { u8() | u8() << 8 }
    /// One of `valid` most of the time (bytes 0..<224), else one of `invalid`.
    mutating func pick(_ valid: [Int64], _ invalid: [Int64]) -> Int64 {
        let v = u8()
        return v < 224 || invalid.isEmpty ? valid[v % valid.count] : invalid[v % invalid.count]
    }
}

// MARK: - Statuses and the last error

let OK = SAM3_NECK_OK.rawValue, IA = SAM3_NECK_ERR_INVALID_ARGUMENT.rawValue, FORMAT = SAM3_NECK_ERR_FORMAT.rawValue
let MISSING = SAM3_NECK_ERR_MISSING_TENSOR.rawValue, SHAPE = SAM3_NECK_ERR_SHAPE.rawValue
let DTYPE = SAM3_NECK_ERR_DTYPE.rawValue, NOT_COMPILED = SAM3_NECK_ERR_NOT_COMPILED.rawValue
let OOM = SAM3_NECK_ERR_OUT_OF_MEMORY.rawValue

/// What the operations did so far, printed when a check fails.
nonisolated(unsafe) var trace: [String] = []

/// SAM3NECK_API_FUZZ_TRACE set: each operation and status is also printed as it happens.
let tracing = getenv("SAM3NECK_API_FUZZ_TRACE") != nil

func note(_ line: String) {
    trace.append(line)
    if tracing { print("  " + line); fflush(nil) }
}

func fail(_ what: String) -> Never {
    let out =
        "sam3neck-api-fuzz: MODEL MISMATCH: \(what)\n  operations of this input:\n"
        + trace.suffix(40).map { "    \($0)" }.joined(separator: "\n") + "\n"
    _ = out.withCString { write(2, $0, strlen($0)) }
    abort()
}

func require(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { fail(what()) } }

/// Calls `body` (the C function `function`) and checks its status against `errors`: empty means it
/// must succeed; otherwise it must fail with one of them (or may succeed too, when `okToo`). Checks
/// the last-error rule either way. Returns whether it succeeded.
@discardableResult
func call(_ function: String, _ errors: Set<UInt32>, okToo: Bool = false, _ body: () -> sam3_neck_status) -> Bool {
    let before = String(cString: sam3_neck_last_error())
    let status = body().rawValue
    note("\(function) -> \(String(cString: sam3_neck_status_string(sam3_neck_status(rawValue: status))))")
    let message = String(cString: sam3_neck_last_error())
    if status == OK {
        require(errors.isEmpty || okToo, "\(function) succeeded, but the header promises one of \(names(errors))")
        require(message == before, "\(function) succeeded but changed the last error from '\(before)' to '\(message)'")
        return true
    }
    require(!errors.isEmpty, "\(function) failed with \(names([status])) where it must succeed: \(message)")
    require(
        errors.contains(status),
        "\(function) failed with \(names([status])), the header promises one of \(names(errors)): \(message)")
    require(
        message.hasPrefix(function + ": ") && message.count > function.count + 2,
        "\(function) failed but the last error does not name it: '\(message)'")
    return false
}

func names(_ s: Set<UInt32>) -> String {
    s.sorted().map { String(cString: sam3_neck_status_string(sam3_neck_status(rawValue: $0))) }.joined(separator: " | ")
}

// MARK: - Guarded memory

/// `bytes` of writable memory that end exactly where a PROT_NONE page begins: a read or write past
/// the end faults.
final class Guarded {
    let base: UnsafeMutableRawPointer, mapped: Int, start: UnsafeMutableRawPointer, bytes: Int
    static let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    init(bytes: Int) {
        let page = Guarded.page, span = (max(bytes, 1) + page - 1) / page * page
        mapped = span + page
        guard let p = mmap(nil, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED,
            mprotect(p + span, page, PROT_NONE) == 0
        else {
            fail("mmap of \(bytes) bytes failed")
        }
        base = p
        start = p + span - bytes
        self.bytes = bytes
    }

    deinit { munmap(base, mapped) }
}

/// The element type codes of sam3_neck_dtype: their sizes and sentinels, bit patterns no
/// computation stores (signaling NaNs; arithmetic and the kernels' conversions quiet a NaN).
func elementSize(_ dtype: UInt32) -> Int { dtype == 0 ? 4 : 2 }
func sentinel(_ dtype: UInt32) -> UInt32 { dtype == 0 ? 0x7F8D_EAD1 : dtype == 1 ? 0x7D01 : 0xFF81 }

/// A buffer of `count` elements of `dtype`, flush against a guard page, filled with the sentinel.
final class ElementBuffer {
    let memory: Guarded, count: Int, dtype: UInt32
    init(count: Int, dtype: UInt32, misaligned: Bool = false) {
        self.count = count
        self.dtype = dtype
        memory = Guarded(bytes: count * elementSize(dtype) + (misaligned ? 1 : 0))
        for i in 0..<count { set(i, sentinel(dtype)) }
    }
    /// The elements' start: they end at the guard page, or one byte before it when misaligned
    /// (the start is then one byte off the element alignment).
    var pointer: UnsafeMutableRawPointer { memory.start }
    func get(_ i: Int) -> UInt32 {
        elementSize(dtype) == 4
            ? (pointer + 4 * i).loadUnaligned(as: UInt32.self)
            : UInt32((pointer + 2 * i).loadUnaligned(as: UInt16.self))
    }
    func set(_ i: Int, _ v: UInt32) {
        if elementSize(dtype) == 4 {
            (pointer + 4 * i).storeBytes(of: v, toByteOffset: 0, as: UInt32.self)
        } else {
            (pointer + 2 * i).storeBytes(of: UInt16(truncatingIfNeeded: v), toByteOffset: 0, as: UInt16.self)
        }
    }
    /// Elements 0..<written hold no sentinel; the rest all do.
    func check(written: Int, _ what: String) {
        for i in 0..<count {
            let untouched = get(i) == sentinel(dtype)
            require(
                i < written ? !untouched : untouched,
                "\(what): element \(i) of \(count) is \(untouched ? "not written" : "written"); \(written) promised")
        }
    }
}

// MARK: - Checkpoints

/// The neck's tensors for trunk width c and d_model d, in sam3_neck_experimental_tensor_name order.
func tensorShapes(c: Int, d: Int) -> [(name: String, shape: [Int])] {
    func tconv(_ n: String, _ i: Int, _ o: Int) -> [(String, [Int])] {
        [(n + ".weight", [i, o, 2, 2]), (n + ".bias", [o])]
    }
    func conv(_ n: String, _ i: Int, _ o: Int, _ k: Int) -> [(String, [Int])] {
        [(n + ".weight", [o, i, k, k]), (n + ".bias", [o])]
    }
    return tconv("0.dconv_2x2_0", c, c / 2) + tconv("0.dconv_2x2_1", c / 2, c / 4) + conv("0.conv_1x1", c / 4, d, 1)
        + conv("0.conv_3x3", d, d, 3) + tconv("1.dconv_2x2", c, c / 2) + conv("1.conv_1x1", c / 2, d, 1)
        + conv("1.conv_3x3", d, d, 3) + conv("2.conv_1x1", c, d, 1) + conv("2.conv_3x3", d, d, 3)
        + conv("3.conv_1x1", c, d, 1) + conv("3.conv_3x3", d, d, 3)
}

struct Variant: Hashable {
    let c: Int, d: Int, dtype: Int, prefix: String, sam2: Bool
    /// 48 variants: C 4 or 8, d 2 or 4 (d_model is even: the position encoding halves it),
    /// F32/F16/BF16, no prefix or "vision_backbone.", the detection or the tracker neck.
    init(_ v: Int) {
        let size = v % 4
        c = size < 2 ? 4 : 8
        d = [2, 4, 2, 4][size]
        dtype = v / 4 % 3
        prefix = v / 12 % 2 == 0 ? "" : "vision_backbone."
        sam2 = v / 24 % 2 == 1
    }
}

/// A tensor's values: multiples of 1/64 in [-1, 1], exact in float32, float16 and bfloat16.
func values(_ variant: Variant, tensor: Int, count: Int) -> [Float] {
    (0..<count).map { k in
        var x = UInt32(
            truncatingIfNeeded: (tensor &* 7919 &+ k &* 104_729 &+ variant.c &* 31 &+ variant.d) &* 2_654_435_761)
        x ^= x >> 15
        return Float(Int(x % 129) - 64) / 64
    }
}

nonisolated(unsafe) var images: [Variant: [UInt8]] = [:]

/// The safetensors image of `variant`, made once.
func image(_ variant: Variant) -> [UInt8] {
    if let made = images[variant] { return made }
    let group = variant.prefix + (variant.sam2 ? "sam2_convs." : "convs.")
    let dtypeName = ["F32", "F16", "BF16"][variant.dtype], size = variant.dtype == 0 ? 4 : 2
    var header: [String] = [], data: [UInt8] = []
    for (t, (name, shape)) in tensorShapes(c: variant.c, d: variant.d).enumerated() {
        let count = shape.reduce(1, *), start = data.count
        for v in values(variant, tensor: t, count: count) {
            switch variant.dtype {
            case 0: withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 }
            case 1: withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { data += $0 }
            default: withUnsafeBytes(of: UInt16(v.bitPattern >> 16).littleEndian) { data += $0 }
            }
        }
        header.append(
            "\"\(group)\(name)\":{\"dtype\":\"\(dtypeName)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(start),\(start + count * size)]}"
        )
    }
    let json = Array(("{" + header.joined(separator: ",") + "}").utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { out += $0 }
    out += json + data
    images[variant] = out
    return out
}

// MARK: - The model

struct Plan {
    var params: sam3_neck_compile_params
    var io: sam3_neck_io_params
    var levels: [Int] { (0..<4).filter { params.levels_mask >> UInt32($0) & 1 == 1 } }
    func spatial(_ level: Int) -> (Int, Int) {
        let h = Int(params.height), w = Int(params.width)
        switch level {
        case 0: return (4 * h, 4 * w)
        case 1: return (2 * h, 2 * w)
        case 2: return (h, w)
        default: return (h / 2, w / 2)
        }
    }
}

struct Slot {
    var handle: OpaquePointer?
    var c = 0, d = 0
    /// The loaded checkpoint, when it was a valid one (its tensors' values are known).
    var variant: Variant?
    var plan: Plan?
    func need(_ plan: Plan, _ level: Int) -> Int {
        let (h, w) = plan.spatial(level)
        return Int(plan.params.batch) * d * h * w
    }
    func inputCount(_ plan: Plan) -> Int {
        Int(plan.params.batch) * c * Int(plan.params.height) * Int(plan.params.width)
    }
}

/// SAM3NECK_SGEMM_KERNEL as the harness set it: nil (unset), "generic" or "bogus".
nonisolated(unsafe) var environment: String? = nil
nonisolated(unsafe) var slots = [Slot(), Slot()]
let documentedKernels: Set<String> = ["avx512", "avx2", "generic", "openblas", "amx_bf16x3", "amx_bf16", "avx512_bf16"]

// MARK: - Operations

func load(_ s: Int, _ r: inout Decoder, mutate: Bool) {
    sam3_neck_free(slots[s].handle)
    slots[s] = Slot()
    let variant = Variant(r.u8())
    var bytes = image(variant)
    // Load params: NULL, the right kind, the other kind, a bad kind; prefix NULL, right, wrong.
    let kindChoice = r.u8() % 5, prefixChoice = r.u8() % 3
    var errors: Set<UInt32> = []
    var lp = sam3_neck_load_default_params()  // kind SAM3: the detection neck
    let passParams = kindChoice != 0 || prefixChoice != 0
    switch kindChoice {
    case 0: break
    case 2: lp.kind = variant.sam2 ? SAM3_NECK_KIND_SAM3 : SAM3_NECK_KIND_SAM2
    case 3: lp.kind = sam3_neck_kind(rawValue: 7); errors.insert(IA)
    default: lp.kind = variant.sam2 ? SAM3_NECK_KIND_SAM2 : SAM3_NECK_KIND_SAM3
    }
    // the other neck
    if lp.kind == (variant.sam2 ? SAM3_NECK_KIND_SAM3 : SAM3_NECK_KIND_SAM2) { errors.insert(MISSING) }
    let prefix = prefixChoice == 1 ? variant.prefix : "nope."
    if prefixChoice == 2 { errors.insert(MISSING) }
    if mutate {
        for _ in 0..<(1 + r.u8() % 8) { bytes[r.u16() % bytes.count] = UInt8(r.u8()) }
        if r.u8() >= 200 { bytes.removeLast(bytes.count - r.u16() % bytes.count) }
        // Anything but a crash, INTERNAL, NOT_COMPILED or IO (memory has no I/O).
        errors = [IA, FORMAT, MISSING, SHAPE, DTYPE, OOM]
    }
    note(
        "load\(mutate ? " mutated" : "") slot \(s): C \(variant.c), d \(variant.d), dtype \(variant.dtype), prefix '\(variant.prefix)', \(variant.sam2 ? "sam2" : "sam3"); params \(passParams ? "kind \(lp.kind.rawValue) prefix \(prefixChoice == 0 ? "NULL" : prefix)" : "NULL")"
    )
    var out: OpaquePointer? = OpaquePointer(bitPattern: 0x1)
    let ok = prefix.withCString { p -> Bool in
        if prefixChoice != 0 { lp.prefix = p }
        return bytes.withUnsafeBytes { b in
            call("sam3_neck_load_memory", errors, okToo: mutate) {
                passParams
                    ? withUnsafePointer(to: lp) { sam3_neck_load_memory(b.baseAddress, b.count, $0, &out) }
                    : sam3_neck_load_memory(b.baseAddress, b.count, nil, &out)
            }
        }
    }
    guard ok else {
        require(out == nil, "a failed sam3_neck_load_memory left *out non-NULL")
        return
    }
    require(out != nil, "sam3_neck_load_memory succeeded with *out NULL")
    slots[s].handle = out
    let config = UnsafeMutablePointer<sam3_neck_config>.allocate(capacity: 1)
    defer { config.deallocate() }
    call("sam3_neck_get_config", []) { sam3_neck_get_config(out, config) }
    let cfg = config.pointee
    slots[s].c = Int(cfg.trunk_dim)
    slots[s].d = Int(cfg.d_model)
    require(cfg.scales == (4, 2, 1, 0.5), "config.scales are not 4, 2, 1, 0.5")
    if mutate {
        require(
            cfg.trunk_dim >= 4 && cfg.trunk_dim % 4 == 0 && cfg.d_model >= 1,
            "config of a loaded neck: C \(cfg.trunk_dim), d \(cfg.d_model)")
    } else {
        require(
            Int(cfg.trunk_dim) == variant.c && Int(cfg.d_model) == variant.d,
            "config C \(cfg.trunk_dim), d \(cfg.d_model) of a checkpoint with C \(variant.c), d \(variant.d)")
        slots[s].variant = variant
    }
}

func compileParams(_ r: inout Decoder) -> (sam3_neck_compile_params?, Set<UInt32>) {
    guard r.u8() % 8 != 0 else { return (nil, []) }  // NULL: the defaults, 72 x 72 (cheap with these weights)
    let batch = r.pick([1, 2], [0, -1, 1_048_577, Int64(Int32.min)])
    let height = r.pick((1...16).map(Int64.init), [0, -1, 32769, Int64(Int32.max)])
    let width = r.pick((1...16).map(Int64.init), [0, -1, 32769, Int64(Int32.max)])
    let layout = r.pick([0, 1], [2, 0xFFFF_FFFF])
    let mask = r.pick((1...15).map(Int64.init), [0, 0x10, 0x1F, 0xFFFF_FFFF])
    let threads = r.pick([0, 1, 2, 3, 4, 7], [-1, 1025])
    let precision = r.pick([0, 1, 2], [3, 0xFFFF_FFFF])
    var errors: Set<UInt32> = []
    if !(1...1_048_576).contains(batch) || !(1...32768).contains(height) || !(1...32768).contains(width)
        || !(0...1).contains(layout) || mask == 0 || mask & ~0xF != 0 || !(0...1024).contains(threads)
        || !(0...2).contains(precision)
    {
        errors.insert(IA)
    }
    if mask & 0x8 != 0, height < 2 || width < 2 { errors.insert(SHAPE) }
    let p = sam3_neck_compile_params(
        batch: Int32(truncatingIfNeeded: batch), height: Int32(truncatingIfNeeded: height),
        width: Int32(truncatingIfNeeded: width), layout: sam3_neck_layout(rawValue: UInt32(truncatingIfNeeded: layout)),
        levels_mask: UInt32(truncatingIfNeeded: mask), threads: Int32(truncatingIfNeeded: threads),
        precision: sam3_neck_precision(rawValue: UInt32(truncatingIfNeeded: precision)))
    return (p, errors)
}

func compile(_ s: Int, _ r: inout Decoder, io withIO: Bool) {
    let (params, paramErrors) = compileParams(&r)
    var errors = paramErrors
    if environment == "bogus" { errors.insert(IA) }
    // The I/O params: NULL, or a struct of struct_size bytes flush against a guard page.
    var io = sam3_neck_io_default_params(), ioMemory: Guarded? = nil, ioDesc = "NULL"
    if withIO, r.u8() % 6 != 0 {
        io.input_dtype = sam3_neck_dtype(rawValue: UInt32(truncatingIfNeeded: r.pick([0, 1, 2], [3, 0x8000_0000])))
        io.output_dtype = sam3_neck_dtype(rawValue: UInt32(truncatingIfNeeded: r.pick([0, 1, 2], [3, 0x8000_0000])))
        io.output_layout = sam3_neck_output_layout(rawValue: UInt32(truncatingIfNeeded: r.pick([0, 1, 2], [3])))
        if io.input_dtype.rawValue > 2 || io.output_dtype.rawValue > 2 || io.output_layout.rawValue > 2 {
            errors.insert(IA)
        }
        // struct_size: 16 mostly; too small; grown with a zero tail; grown with a non-zero byte; too large.
        let sizeChoice = r.u8() % 10, tailByte = r.u8()
        let size = [16, 16, 16, 16, 16, 12, 0, 20, 24, 4097][sizeChoice]
        if size < 16 || size > 4096 { errors.insert(IA) }
        let memory = Guarded(bytes: min(max(size, 16), 4096))
        io.struct_size = UInt32(size)
        memory.start.storeBytes(of: io, as: sam3_neck_io_params.self)
        if sizeChoice == 8 {  // one unknown byte set: refused, naming the offset
            let offset = 16 + tailByte % 8
            memory.start.storeBytes(of: UInt8(1 + tailByte % 255), toByteOffset: offset, as: UInt8.self)
            errors.insert(IA)
        }
        ioMemory = memory
        ioDesc =
            "struct_size \(size) in \(io.input_dtype.rawValue) out \(io.output_dtype.rawValue) layout \(io.output_layout.rawValue)"
    }
    if slots[s].handle == nil { errors = [IA] }
    let function = withIO ? "sam3_neck_compile_io" : "sam3_neck_compile"
    note(
        "\(function) slot \(s): \(params.map { "batch \($0.batch) \($0.height)x\($0.width) layout \($0.layout.rawValue) mask 0x\(String($0.levels_mask, radix: 16)) threads \($0.threads) precision \($0.precision.rawValue)" } ?? "NULL"); io \(ioDesc); env \(environment ?? "unset")"
    )
    let pmem = params.map { p -> Guarded in
        let g = Guarded(bytes: MemoryLayout<sam3_neck_compile_params>.size)
        g.start.storeBytes(of: p, as: sam3_neck_compile_params.self)
        return g
    }
    let pp = pmem.map {
        UnsafePointer<sam3_neck_compile_params>($0.start.assumingMemoryBound(to: sam3_neck_compile_params.self))
    }
    let iop = ioMemory.map {
        UnsafePointer<sam3_neck_io_params>($0.start.assumingMemoryBound(to: sam3_neck_io_params.self))
    }
    let ok = call(function, errors) {
        withIO ? sam3_neck_compile_io(slots[s].handle, pp, iop) : sam3_neck_compile(slots[s].handle, pp)
    }
    if slots[s].handle != nil {
        slots[s].plan = ok ? Plan(params: params ?? sam3_neck_compile_default_params(), io: io) : nil
    }
    if ok, let plan = slots[s].plan {
        // The kernel follows the precision and the environment.
        var name: UnsafePointer<CChar>? = nil
        call("sam3_neck_kernel_name", []) { sam3_neck_kernel_name(slots[s].handle, &name) }
        let kernel = String(cString: name!)
        require(documentedKernels.contains(kernel), "sam3_neck_kernel_name gave '\(kernel)', not a documented name")
        if plan.params.precision == SAM3_NECK_PRECISION_STRICT {
            require(!kernel.contains("bf16"), "strict plan on '\(kernel)'")
        }
        if environment == "generic" {
            require(
                kernel == "generic" || (plan.params.precision == SAM3_NECK_PRECISION_FAST && kernel.hasSuffix("_bf16")),
                "SAM3NECK_SGEMM_KERNEL=generic but the plan runs on '\(kernel)'")
        }
    }
}

/// The statuses a query of level `level` must give before its own argument checks.
func planErrors(_ s: Int, level: Int? = nil) -> Set<UInt32>? {
    guard slots[s].handle != nil else { return [IA] }
    guard let plan = slots[s].plan else { return [NOT_COMPILED] }
    if let level, !plan.levels.contains(level) { return [IA] }
    return nil
}

func run(_ s: Int, _ r: inout Decoder, io: Bool) {
    let plan = slots[s].plan
    let inD = io ? plan?.io.input_dtype.rawValue ?? 0 : 0, outD = io ? plan?.io.output_dtype.rawValue ?? 0 : 0
    var errors: Set<UInt32> = []
    if !io, let plan {
        if plan.io.input_dtype.rawValue != 0 || plan.io.output_dtype.rawValue != 0 { errors.insert(DTYPE) }
        if plan.io.output_layout.rawValue != 0 { errors.insert(IA) }
    }
    // The input: the plan's count, one more or less, none, SIZE_MAX, or NULL.
    let exact = plan.map { slots[s].inputCount($0) } ?? 16
    let inputChoice = r.u8() % 16, seed = UInt32(r.u8())
    var claimed = exact, allocated = exact
    switch inputChoice {
    case 11: (claimed, allocated) = (exact + 1, exact + 1)
    case 12: (claimed, allocated) = (exact - 1, exact - 1)
    case 13: (claimed, allocated) = (0, 0)
    case 14: claimed = Int(bitPattern: UInt.max)
    default: break
    }
    if claimed != exact { errors.insert(SHAPE) }
    let input = ElementBuffer(count: allocated, dtype: inD)
    var state = seed &+ 1
    for i in 0..<allocated {
        state = state &* 1_664_525 &+ 1_013_904_223
        let v = Float(Int32(bitPattern: state) >> 8) / Float(1 << 22)
        input.set(i, inD == 0 ? v.bitPattern : inD == 1 ? UInt32(Float16(v).bitPattern) : v.bitPattern >> 16)
    }
    let inputBefore = Array(UnsafeRawBufferPointer(start: input.pointer, count: allocated * elementSize(inD)))
    if inputChoice == 15 { errors.insert(IA) }
    let inputPointer: UnsafeMutableRawPointer? = inputChoice == 15 ? nil : input.pointer
    // The outputs: per level its need, one more or less, NULL, another level's buffer, misaligned,
    // or the input.
    var buffers: [ElementBuffer?] = [nil, nil, nil, nil], pointers: [UnsafeMutableRawPointer?] = [nil, nil, nil, nil]
    var counts = [Int](repeating: 0, count: 4), aliased = false, desc: [String] = []
    for level in 0..<4 {
        let choice = r.u8() % 16
        guard let plan, plan.levels.contains(level) else {
            if choice != 12 {  // an ignored level's buffer must stay untouched
                buffers[level] = ElementBuffer(count: 8, dtype: outD)
                pointers[level] = buffers[level]!.pointer
                counts[level] = 8
            }
            desc.append("-")
            continue
        }
        let need = slots[s].need(plan, level)
        counts[level] = need
        switch choice {
        case 10: counts[level] = need + 3
        case 11: counts[level] = need - 1; errors.insert(SHAPE)
        case 12: errors.insert(IA)
        case 13, 15:
            // Another compiled level's buffer (an ignored level's entry is no buffer of the run).
            let other = choice == 15 ? inputPointer : plan.levels.filter { $0 < level }.compactMap { pointers[$0] }.last
            if let other { pointers[level] = other; aliased = true; errors.insert(IA) }
        case 14: errors.insert(IA)
        default: break
        }
        if choice != 12, pointers[level] == nil {
            buffers[level] = ElementBuffer(count: counts[level], dtype: outD, misaligned: choice == 14)
            pointers[level] = buffers[level]!.pointer
        }
        desc.append("\(choice)")
    }
    let arraysChoice = r.u8()
    let nullOutputs = arraysChoice == 250, nullCounts = arraysChoice == 251
    if nullOutputs || nullCounts { errors.insert(IA) }
    if slots[s].handle == nil { errors = [IA] } else if plan == nil { errors = [NOT_COMPILED] }
    let function = io ? "sam3_neck_run_io" : "sam3_neck_run"
    note(
        "\(function) slot \(s): input \(inputChoice) (\(claimed) of \(exact)), outputs \(desc.joined(separator: ",")), arrays \(arraysChoice)"
    )
    let ok = pointers.withUnsafeBufferPointer { pb in
        counts.withUnsafeBufferPointer { cb in
            call(function, errors) {
                let outs = nullOutputs ? nil : pb.baseAddress, cnts = nullCounts ? nil : cb.baseAddress
                if io { return sam3_neck_run_io(slots[s].handle, inputPointer, claimed, outs, cnts) }
                let input = inputPointer?.assumingMemoryBound(to: Float.self)
                guard let outs else { return sam3_neck_run(slots[s].handle, input, claimed, nil, cnts) }
                return outs.withMemoryRebound(to: UnsafeMutablePointer<Float>?.self, capacity: 4) {
                    sam3_neck_run(slots[s].handle, input, claimed, $0, cnts)
                }
            }
        }
    }
    require(
        Array(UnsafeRawBufferPointer(start: input.pointer, count: allocated * elementSize(inD))) == inputBefore,
        "\(function) changed its input")
    guard !aliased else { return }
    for level in 0..<4 {
        guard let b = buffers[level] else { continue }
        let written = ok && plan!.levels.contains(level) ? slots[s].need(plan!, level) : 0
        b.check(written: written, "\(function) \(ok ? "succeeded" : "failed"), level \(level)'s buffer")
    }
}

func shapeQueries(_ s: Int, _ r: inout Decoder) {
    let level = r.u8() % 6 - 1, nullShape = r.u8() == 255
    let shape = Guarded(bytes: 32), rank = Guarded(bytes: 4)
    let sp = nullShape ? nil : shape.start.assumingMemoryBound(to: Int64.self)
    // Where several faults apply, any of their statuses (the header orders no checks).
    var errors = planErrors(s, level: level) ?? []
    if nullShape { errors.insert(IA) }
    note("level_shape / output_shape slot \(s): level \(level)\(nullShape ? ", shape NULL" : "")")
    if call("sam3_neck_level_shape", errors, { sam3_neck_level_shape(slots[s].handle, Int32(level), sp) }),
        let plan = slots[s].plan
    {
        let (h, w) = plan.spatial(level)
        let got = (0..<4).map { Int(sp![$0]) }
        require(got == [Int(plan.params.batch), slots[s].d, h, w], "level_shape(\(level)) is \(got)")
    }
    let rp = rank.start.assumingMemoryBound(to: Int32.self)
    if call("sam3_neck_output_shape", errors, { sam3_neck_output_shape(slots[s].handle, Int32(level), sp, rp) }),
        let plan = slots[s].plan
    {
        let (h, w) = plan.spatial(level), b = Int(plan.params.batch), d = slots[s].d
        let want = [[b, d, h, w], [b, h, w, d], [h * w, b, d, 0]][Int(plan.io.output_layout.rawValue)]
        let got = (0..<4).map { Int(sp![$0]) }
        require(
            got == want && Int(rp.pointee) == (plan.io.output_layout.rawValue == 2 ? 3 : 4),
            "output_shape(\(level)) is \(got) rank \(rp.pointee), want \(want)")
    }
}

func countQueries(_ s: Int, _ r: inout Decoder) {
    let nulls = r.u8() == 255, errors = (planErrors(s) ?? []).union(nulls ? [IA] : [])
    note("input_count / workspace_size / kernel_name slot \(s)\(nulls ? ", NULL out" : "")")
    let out = Guarded(bytes: 8), p = nulls ? nil : out.start.assumingMemoryBound(to: Int.self)
    if call("sam3_neck_input_count", errors, { sam3_neck_input_count(slots[s].handle, p) }), let plan = slots[s].plan {
        require(p!.pointee == slots[s].inputCount(plan), "input_count \(p!.pointee), want \(slots[s].inputCount(plan))")
    }
    call("sam3_neck_workspace_size", errors) { sam3_neck_workspace_size(slots[s].handle, p) }
    let name = Guarded(bytes: 8), np = nulls ? nil : name.start.assumingMemoryBound(to: UnsafePointer<CChar>?.self)
    if call("sam3_neck_kernel_name", errors, { sam3_neck_kernel_name(slots[s].handle, np) }) {
        require(
            documentedKernels.contains(String(cString: np!.pointee!)), "kernel_name '\(String(cString: np!.pointee!))'")
    }
}

func positionEncoding(_ s: Int, _ r: inout Decoder, io: Bool) {
    let level = r.u8() % 6 - 1, choice = r.u8() % 8
    let plan = slots[s].plan, dtype = io ? plan?.io.output_dtype.rawValue ?? 0 : 0
    let need =
        plan.map { p -> Int in
            let (h, w) = p.spatial(max(0, min(level, 3))); return slots[s].d * h * w
        } ?? 4
    var count = need
    var errors = planErrors(s, level: level) ?? []
    switch choice {
    case 5: count = need + 2
    case 6: count = need - 1; if slots[s].plan != nil { errors.insert(SHAPE) }
    case 7: count = 0; errors.insert(IA); if slots[s].plan != nil { errors.insert(SHAPE) }  // out NULL
    default: break
    }
    let nullOut = choice == 7
    let buffer = ElementBuffer(count: max(count, 0), dtype: dtype)
    let function = io ? "sam3_neck_position_encoding_io" : "sam3_neck_position_encoding"
    note("\(function) slot \(s): level \(level), count \(count) of \(need)\(nullOut ? ", out NULL" : "")")
    let out = nullOut ? nil : buffer.pointer
    let ok = call(function, errors) {
        io
            ? sam3_neck_position_encoding_io(slots[s].handle, Int32(level), out, count)
            : sam3_neck_position_encoding(
                slots[s].handle, Int32(level), out?.assumingMemoryBound(to: Float.self), count)
    }
    buffer.check(written: ok ? need : 0, "\(function) \(ok ? "succeeded" : "failed")")
    if ok, dtype == 0 {
        for i in 0..<need {
            require(abs(Float(bitPattern: buffer.get(i))) <= 1, "position encoding element \(i) outside [-1, 1]")
        }
    }
}

func paramQueries(_ s: Int, _ r: inout Decoder) {
    let choice = r.u8() % 6
    note("get_config / get_compile_params / get_io_params slot \(s): \(choice)")
    let config = Guarded(bytes: MemoryLayout<sam3_neck_config>.size)
    let cp = config.start.assumingMemoryBound(to: sam3_neck_config.self)
    if call("sam3_neck_get_config", slots[s].handle == nil ? [IA] : [], { sam3_neck_get_config(slots[s].handle, cp) }) {
        require(Int(cp.pointee.trunk_dim) == slots[s].c && Int(cp.pointee.d_model) == slots[s].d, "get_config changed")
    }
    let compiled = Guarded(bytes: MemoryLayout<sam3_neck_compile_params>.size)
    let pp = compiled.start.assumingMemoryBound(to: sam3_neck_compile_params.self)
    if call("sam3_neck_get_compile_params", planErrors(s) ?? [], { sam3_neck_get_compile_params(slots[s].handle, pp) })
    {
        let want = slots[s].plan!.params, got = pp.pointee
        require(
            got.batch == want.batch && got.height == want.height && got.width == want.width && got.layout == want.layout
                && got.levels_mask == want.levels_mask && got.threads == want.threads
                && got.precision == want.precision,
            "get_compile_params is not what was compiled")
    }
    // get_io_params with struct_size 16, a grown one (its tail must stay as it was), or out of range.
    let size = [16, 16, 24, 12, 4097, 16][choice]
    let io = Guarded(bytes: min(size, 4096) < 16 ? 16 : min(size, 4096))
    for i in 0..<io.bytes { io.start.storeBytes(of: 0xAB, toByteOffset: i, as: UInt8.self) }
    io.start.storeBytes(of: UInt32(size), as: UInt32.self)
    var errors = planErrors(s) ?? []
    if size < 16 || size > 4096 { errors.insert(IA) }
    let iop = io.start.assumingMemoryBound(to: sam3_neck_io_params.self)
    if call("sam3_neck_get_io_params", errors, { sam3_neck_get_io_params(slots[s].handle, iop) }) {
        let want = slots[s].plan!.io, got = iop.pointee
        require(
            got.struct_size == UInt32(size) && got.input_dtype == want.input_dtype
                && got.output_dtype == want.output_dtype
                && got.output_layout == want.output_layout, "get_io_params is not what was compiled")
        for i in 16..<io.bytes {
            require(io.start.load(fromByteOffset: i, as: UInt8.self) == 0xAB, "get_io_params wrote byte \(i)")
        }
    }
}

func tensorQuery(_ s: Int, _ r: inout Decoder) {
    let index = r.u8() % 24 - 1, choice = r.u8() % 6
    let name = sam3_neck_experimental_tensor_name(Int32(index))
    let shapes = tensorShapes(c: max(slots[s].c, 4), d: max(slots[s].d, 1))
    guard (0..<22).contains(index) else {
        require(name == nil, "experimental_tensor_name(\(index)) is not NULL")
        return
    }
    require(name != nil && String(cString: name!) == shapes[index].name, "experimental_tensor_name(\(index))")
    let shape = shapes[index].shape, need = shape.reduce(1, *)
    var capacity = need, errors: Set<UInt32> = slots[s].handle == nil ? [IA] : []
    if errors.isEmpty {
        switch choice {
        case 3: capacity = need + 2
        case 4: capacity = need - 1; errors = [SHAPE]
        case 5: capacity = 0; errors = [SHAPE]  // asks for the shape (out NULL)
        default: break
        }
    }
    let out = ElementBuffer(count: capacity, dtype: 0), dims = Guarded(bytes: 32), rank = Guarded(bytes: 4)
    let dp = dims.start.assumingMemoryBound(to: Int64.self), rp = rank.start.assumingMemoryBound(to: Int32.self)
    note("experimental_get_tensor slot \(s): \(shapes[index].name), capacity \(capacity) of \(need)")
    let ok = call("sam3_neck_experimental_get_tensor", errors) {
        sam3_neck_experimental_get_tensor(
            slots[s].handle, name, choice == 5 ? nil : out.pointer.assumingMemoryBound(to: Float.self), capacity, dp, rp
        )
    }
    if slots[s].handle != nil {  // shape and rank written, also when the capacity is short
        let got = (0..<Int(rp.pointee)).map { Int(dp[$0]) }
        require(got == shape, "experimental_get_tensor shape \(got), want \(shape)")
    }
    if ok, let variant = slots[s].variant {
        let want = values(variant, tensor: index, count: need)
        for i in 0..<need {
            require(
                Float(bitPattern: out.get(i)) == want[i], "tensor \(shapes[index].name)[\(i)] is not the checkpoint's")
        }
    }
    if ok {  // exactly the tensor's floats written
        for i in need..<capacity {
            require(out.get(i) == sentinel(0), "experimental_get_tensor wrote element \(i) of \(need)")
        }
    } else {
        out.check(written: 0, "experimental_get_tensor failed")
    }
}

func misc(_ r: inout Decoder) {
    let choice = r.u8() % 8
    note("misc \(choice)")
    switch choice {
    case 0: sam3_neck_free(nil)
    case 1:
        var out: OpaquePointer? = nil
        call("sam3_neck_load_memory", [IA]) { sam3_neck_load_memory(nil, 16, nil, &out) }
        require(out == nil, "load_memory(NULL data) set *out")
    case 2:
        call("sam3_neck_load_memory", [IA]) {
            [UInt8](repeating: 0, count: 16).withUnsafeBytes { sam3_neck_load_memory($0.baseAddress, 16, nil, nil) }
        }
    case 3:
        var out: OpaquePointer? = nil
        let size = r.u8() % 8  // too small to hold a header
        call("sam3_neck_load_memory", [FORMAT]) {
            [UInt8](repeating: 0, count: 8).withUnsafeBytes { sam3_neck_load_memory($0.baseAddress, size, nil, &out) }
        }
    case 4:
        require(sam3_neck_abi_version() == UInt32(SAM3_NECK_ABI_VERSION), "abi_version")
        require(
            String(cString: sam3_neck_version_string())
                == "\(SAM3_NECK_VERSION_MAJOR).\(SAM3_NECK_VERSION_MINOR).\(SAM3_NECK_VERSION_PATCH)", "version_string")
        require(
            String(cString: sam3_neck_status_string(sam3_neck_status(rawValue: UInt32(r.u8() * 99)))).count > 0,
            "status_string")
    default:
        call("sam3_neck_compile", [IA]) { sam3_neck_compile(nil, nil) }
    }
}

func setEnvironment(_ r: inout Decoder) {
    switch r.u8() % 3 {
    case 0: unsetenv("SAM3NECK_SGEMM_KERNEL"); environment = nil
    case 1: setenv("SAM3NECK_SGEMM_KERNEL", "generic", 1); environment = "generic"
    default: setenv("SAM3NECK_SGEMM_KERNEL", "bogus", 1); environment = "bogus"
    }
    note("SAM3NECK_SGEMM_KERNEL=\(environment ?? "(unset)")")
}

/// Counts for the summary.
nonisolated(unsafe) var counts = (inputs: 0, operations: 0, runs: 0)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    counts.inputs += 1
    trace = []
    guard let data else { return 0 }
    var r = Decoder(bytes: UnsafeRawBufferPointer(start: data, count: size))
    var operations = 0
    while !r.atEnd, operations < 48 {
        operations += 1
        let op = r.u8(), s = op >> 7
        switch op & 0xF {
        case 0, 1: load(s, &r, mutate: false)
        case 2: load(s, &r, mutate: true)
        case 3:
            note("free slot \(s)")
            sam3_neck_free(slots[s].handle)
            slots[s] = Slot()
        case 4: compile(s, &r, io: false)
        case 5: compile(s, &r, io: true)
        case 6: run(s, &r, io: false); counts.runs += 1
        case 7: run(s, &r, io: true); counts.runs += 1
        case 8: shapeQueries(s, &r)
        case 9: countQueries(s, &r)
        case 10: positionEncoding(s, &r, io: false)
        case 11: positionEncoding(s, &r, io: true)
        case 12: paramQueries(s, &r)
        case 13: tensorQuery(s, &r)
        case 14: setEnvironment(&r)
        default: misc(&r)
        }
    }
    counts.operations += operations
    for s in 0..<2 {
        sam3_neck_free(slots[s].handle)
        slots[s] = Slot()
    }
    unsetenv("SAM3NECK_SGEMM_KERNEL")
    environment = nil
    return 0
}

func summary() -> String {
    "\(counts.inputs) inputs, \(counts.operations) operations (\(counts.runs) runs), every status as the header promises"
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

// SwiftPM links an executable's entry point as `<module>_main`; under libFuzzer it hands control
// to libFuzzer's driver.
@_cdecl("sam3neck_api_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc, vector = argv
    unsetenv("SAM3NECK_SGEMM_KERNEL")
    atexit { print("sam3neck-api-fuzz: \(summary())") }
    return LLVMFuzzerRunDriver(&count, &vector, fuzzOneInput)
}
#else

/// Without libFuzzer: runs each file named on the command line through the same entry point.
@main
struct Replay {
    static func main() {
        unsetenv("SAM3NECK_SGEMM_KERNEL")
        var replayed = 0
        for path in CommandLine.arguments.dropFirst() {
            guard let f = fopen(path, "rb") else {
                print("sam3neck-api-fuzz: cannot open \(path)")
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
            if tracing { print("\(path):") }
            _ = bytes.withUnsafeBufferPointer { fuzzOneInput($0.baseAddress, $0.count) }
            replayed += 1
        }
        print("sam3neck-api-fuzz: replayed \(replayed) files; \(summary())")
    }
}
#endif
