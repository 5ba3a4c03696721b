#if canImport(Glibc)
import Glibc
#endif
import Sam3Neck
import Sam3NeckABI

// The exported C functions. Each is checked by the compiler against include/sam3_neck.h
// (`@c @implementation`). This layer only checks arguments, converts between C and Swift
// types, and turns thrown errors into a status plus the thread's last-error message.

private func status(_ kind: NeckError.Kind) -> sam3_neck_status {
    switch kind {
    case .invalidArgument: return SAM3_NECK_ERR_INVALID_ARGUMENT
    case .io: return SAM3_NECK_ERR_IO
    case .format: return SAM3_NECK_ERR_FORMAT
    case .missingTensor: return SAM3_NECK_ERR_MISSING_TENSOR
    case .shape: return SAM3_NECK_ERR_SHAPE
    case .dtype: return SAM3_NECK_ERR_DTYPE
    case .notCompiled: return SAM3_NECK_ERR_NOT_COMPILED
    case .outOfMemory: return SAM3_NECK_ERR_OUT_OF_MEMORY
    case .`internal`: return SAM3_NECK_ERR_INTERNAL
    }
}

/// Runs `body`, mapping a thrown error to its status and recording the message for this thread.
private func guarded(_ function: String, _ body: () throws -> Void) -> sam3_neck_status {
    do {
        try body()
        return SAM3_NECK_OK
    } catch let e as NeckError {
        LastError.set("\(function): \(e.message)")
        return status(e.kind)
    } catch {
        LastError.set("\(function): \(error)")
        return SAM3_NECK_ERR_INTERNAL
    }
}

private func invalid(_ what: String) -> NeckError { NeckError(.invalidArgument, what) }

private func handle(_ p: OpaquePointer?) throws -> Handle {
    guard let p else { throw invalid("neck is NULL") }
    return Handle.from(p)
}

private func compiledPlan(_ p: OpaquePointer?) throws -> NeckPlan {
    guard let plan = try handle(p).plan else {
        throw NeckError(.notCompiled, "the neck has not been compiled (call sam3_neck_compile first)")
    }
    return plan
}

private func compiledLevel(_ plan: NeckPlan, _ level: Int32) throws -> Int {
    guard level >= 0, level < SAM3_NECK_NUM_LEVELS else {
        throw invalid("level must be in 0...\(SAM3_NECK_NUM_LEVELS - 1), got \(level)")
    }
    guard plan.options.includes(level: Int(level)) else {
        throw invalid(
            "level \(level) is not in the compiled levels mask 0x\(String(plan.options.levelsMask, radix: 16))")
    }
    return Int(level)
}

// MARK: - Versions and errors

nonisolated(unsafe) private let versionString: UnsafePointer<CChar> = {
    UnsafePointer(strdup("\(SAM3_NECK_VERSION_MAJOR).\(SAM3_NECK_VERSION_MINOR).\(SAM3_NECK_VERSION_PATCH)")!)
}()

@c @implementation
public func sam3_neck_abi_version() -> UInt32 { UInt32(SAM3_NECK_ABI_VERSION) }

@c @implementation
public func sam3_neck_version_string() -> UnsafePointer<CChar>! { versionString }

nonisolated(unsafe) private let statusStrings: [UnsafePointer<CChar>] =
    ([
        "ok", "invalid argument", "I/O error", "malformed checkpoint", "missing tensor",
        "wrong shape or size", "unsupported dtype", "not compiled", "out of memory", "internal error",
        "unknown status",
    ] as [String]).map { UnsafePointer(strdup($0)!) }

@c @implementation
public func sam3_neck_status_string(_ s: sam3_neck_status) -> UnsafePointer<CChar>! {
    let i = Int(s.rawValue)
    return i >= 0 && i < statusStrings.count - 1 ? statusStrings[i] : statusStrings[statusStrings.count - 1]
}

@c @implementation
public func sam3_neck_last_error() -> UnsafePointer<CChar>! { LastError.current }

// MARK: - Loading

@c @implementation
public func sam3_neck_load_default_params() -> sam3_neck_load_params {
    sam3_neck_load_params(kind: SAM3_NECK_KIND_SAM3, prefix: nil)
}

private func loadOptions(_ params: UnsafePointer<sam3_neck_load_params>?) throws -> (NeckKind, String?) {
    let p = params?.pointee ?? sam3_neck_load_default_params()
    let kind: NeckKind
    switch p.kind {
    case SAM3_NECK_KIND_SAM3: kind = .sam3
    case SAM3_NECK_KIND_SAM2: kind = .sam2
    default:
        throw invalid(
            "load params: kind must be SAM3_NECK_KIND_SAM3 (0) or SAM3_NECK_KIND_SAM2 (1), got \(Int32(bitPattern: p.kind.rawValue))"
        )
    }
    return (kind, p.prefix.map { String(cString: $0) })
}

private func load(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ make: () throws -> Neck) throws {
    guard let out else { throw invalid("out is NULL") }
    out.pointee = nil
    out.pointee = Handle(neck: try make()).retainedPointer()
}

@c @implementation
public func sam3_neck_load_file(
    _ path: UnsafePointer<CChar>?, _ params: UnsafePointer<sam3_neck_load_params>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> sam3_neck_status {
    guarded("sam3_neck_load_file") {
        try load(out) {
            guard let path else { throw invalid("path is NULL") }
            let (kind, prefix) = try loadOptions(params)
            return try Neck(path: String(cString: path), kind: kind, prefix: prefix)
        }
    }
}

@c @implementation
public func sam3_neck_load_memory(
    _ data: UnsafeRawPointer?, _ size: Int, _ params: UnsafePointer<sam3_neck_load_params>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> sam3_neck_status {
    guarded("sam3_neck_load_memory") {
        try load(out) {
            guard let data else { throw invalid("data is NULL") }
            // size_t arrives as Int: a size past Int.max is a negative number here.
            guard size >= 0 else {
                throw invalid(
                    "size \(UInt(bitPattern: size)) is larger than the largest buffer supported (\(Int.max) bytes)")
            }
            let (kind, prefix) = try loadOptions(params)
            return Neck(
                weights: try NeckWeights.load(
                    bytes: UnsafeRawBufferPointer(start: data, count: size), kind: kind, prefix: prefix))
        }
    }
}

@c @implementation
public func sam3_neck_free(_ neck: OpaquePointer?) {
    if let neck { Handle.release(neck) }
}

@c @implementation
public func sam3_neck_get_config(_ neck: OpaquePointer?, _ out: UnsafeMutablePointer<sam3_neck_config>?)
    -> sam3_neck_status
{
    guarded("sam3_neck_get_config") {
        let h = try handle(neck)
        guard let out else { throw invalid("out is NULL") }
        let s = Neck.scales
        out.pointee = sam3_neck_config(
            trunk_dim: Int32(h.neck.trunkDim), d_model: Int32(h.neck.dModel),
            scales: (s[0], s[1], s[2], s[3]))
    }
}

// MARK: - Compiling

@c @implementation
public func sam3_neck_compile_default_params() -> sam3_neck_compile_params {
    // CompileOptions' defaults are the one home of these values (Swift, C, C++ and Python read them).
    let o = CompileOptions()
    return sam3_neck_compile_params(
        batch: Int32(o.batch), height: Int32(o.height), width: Int32(o.width),
        layout: sam3_neck_layout(rawValue: UInt32(o.layout.rawValue)),
        levels_mask: o.levelsMask, threads: Int32(o.threads),
        precision: sam3_neck_precision(rawValue: UInt32(o.precision.rawValue)))
}

private func compileOptions(_ p: sam3_neck_compile_params) throws -> CompileOptions {
    guard let layout = CompileOptions.Layout(rawValue: Int(p.layout.rawValue)) else {
        throw invalid(
            "layout must be SAM3_NECK_LAYOUT_NCHW (0) or SAM3_NECK_LAYOUT_NHWC (1), got \(Int32(bitPattern: p.layout.rawValue))"
        )
    }
    guard let precision = CompileOptions.Precision(rawValue: Int(p.precision.rawValue)) else {
        throw invalid(
            "precision must be SAM3_NECK_PRECISION_DEFAULT (0), SAM3_NECK_PRECISION_STRICT (1) or SAM3_NECK_PRECISION_FAST (2), got \(Int32(bitPattern: p.precision.rawValue))"
        )
    }
    return CompileOptions(
        batch: Int(p.batch), height: Int(p.height), width: Int(p.width), layout: layout,
        levelsMask: p.levels_mask, threads: Int(p.threads), precision: precision)
}

// MARK: - Structs versioned by size

/// The size of the first version of `sam3_neck_io_params` (0.3.0: struct_size and three enums).
/// Pinned: a caller built against that header passes 16 whatever this library's struct has
/// grown to (`MemoryLayout<sam3_neck_io_params>.size` is this library's own, newer, size).
private let ioParamsV1Size = 16

/// The largest struct_size accepted, whatever the struct: no version of a parameter struct comes
/// near it, so a larger value is an unset (garbage) field, not a newer struct.
private let maxStructSize = 4096

/// The header's rule for a struct versioned by its leading `uint32_t struct_size` ("Structs
/// versioned by size"): struct_size from the first version's size up to `maxStructSize`; the
/// fields this library knows that struct_size covers are read, the others take `defaults`; bytes
/// past this library's struct (a newer header's fields) must all be zero, else INVALID_ARGUMENT
/// naming the struct and the first non-zero offset. Never reads past struct_size.
private func readVersioned<T>(_ p: UnsafePointer<T>, _ name: String, firstSize: Int, defaults: T) throws -> T {
    let raw = UnsafeRawPointer(p)
    let size = Int(raw.loadUnaligned(as: UInt32.self))
    try checkStructSize(size, name, firstSize: firstSize)
    let known = MemoryLayout<T>.size
    if size > known, let offset = (known..<size).first(where: { raw.load(fromByteOffset: $0, as: UInt8.self) != 0 }) {
        throw invalid(
            "\(name): struct_size is \(size), larger than this library's \(known) (sam3neck \(SAM3_NECK_VERSION_MAJOR).\(SAM3_NECK_VERSION_MINOR).\(SAM3_NECK_VERSION_PATCH)), and the byte at offset \(offset) is not zero: a field this library does not know is set. Leave fields a newer header added at zero, or run a library at least as new as the header"
        )
    }
    var value = defaults
    withUnsafeMutableBytes(of: &value) {
        $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(size, known)))
    }
    return value
}

/// The same rule for a versioned struct the library writes: the caller's struct_size is checked
/// and kept, and the fields this library knows that it covers are written. Bytes past this
/// library's struct (a newer header's fields) are not touched: a struct_size that was never set
/// (garbage, yet within the limits) then costs no write past the caller's struct.
private func writeVersioned<T>(_ value: T, to p: UnsafeMutablePointer<T>, _ name: String, firstSize: Int) throws {
    let raw = UnsafeMutableRawPointer(p)
    let size = Int(raw.loadUnaligned(as: UInt32.self))
    try checkStructSize(size, name, firstSize: firstSize)
    let header = MemoryLayout<UInt32>.size
    withUnsafeBytes(of: value) { bytes in
        (raw + header).copyMemory(from: bytes.baseAddress! + header, byteCount: min(size, bytes.count) - header)
    }
}

private func checkStructSize(_ size: Int, _ name: String, firstSize: Int) throws {
    let fix = "set it to sizeof(\(name)), or start from \(name.dropLast("_params".count))_default_params()"
    guard size >= firstSize else {
        throw invalid("\(name): struct_size is \(size), smaller than its first version's \(firstSize) (\(fix))")
    }
    guard size <= maxStructSize else {
        throw invalid(
            "\(name): struct_size is \(size), larger than any version of it can be (at most \(maxStructSize)): is struct_size set? (\(fix))"
        )
    }
}

/// `options` with the element types and output layout of `io` (NULL: the defaults).
private func withIO(_ options: CompileOptions, _ io: UnsafePointer<sam3_neck_io_params>?) throws -> CompileOptions {
    guard let io else { return options }
    let p = try readVersioned(
        io, "sam3_neck_io_params", firstSize: ioParamsV1Size, defaults: sam3_neck_io_default_params())
    func dtype(_ v: sam3_neck_dtype, _ field: String) throws -> CompileOptions.DType {
        guard let t = CompileOptions.DType(rawValue: Int(v.rawValue)) else {
            throw invalid(
                "io params: \(field) must be SAM3_NECK_DTYPE_FLOAT32 (0), _FLOAT16 (1) or _BFLOAT16 (2), got \(Int32(bitPattern: v.rawValue))"
            )
        }
        return t
    }
    var o = options
    o.inputDType = try dtype(p.input_dtype, "input_dtype")
    o.outputDType = try dtype(p.output_dtype, "output_dtype")
    guard let layout = CompileOptions.OutputLayout(rawValue: Int(p.output_layout.rawValue)) else {
        throw invalid(
            "io params: output_layout must be SAM3_NECK_OUTPUT_NCHW (0), _NHWC (1) or _SEQUENCE (2), got \(Int32(bitPattern: p.output_layout.rawValue))"
        )
    }
    o.outputLayout = layout
    return o
}

@c @implementation
public func sam3_neck_compile(_ neck: OpaquePointer?, _ params: UnsafePointer<sam3_neck_compile_params>?)
    -> sam3_neck_status
{
    guarded("sam3_neck_compile") { try compile(neck, params, nil) }
}

@c @implementation
public func sam3_neck_io_default_params() -> sam3_neck_io_params {
    // By value: the return's layout is the first version's for good (see the header).
    let o = CompileOptions()
    return sam3_neck_io_params(
        struct_size: UInt32(ioParamsV1Size),
        input_dtype: sam3_neck_dtype(rawValue: UInt32(o.inputDType.rawValue)),
        output_dtype: sam3_neck_dtype(rawValue: UInt32(o.outputDType.rawValue)),
        output_layout: sam3_neck_output_layout(rawValue: UInt32(o.outputLayout.rawValue)))
}

@c @implementation
public func sam3_neck_compile_io(
    _ neck: OpaquePointer?, _ params: UnsafePointer<sam3_neck_compile_params>?,
    _ io: UnsafePointer<sam3_neck_io_params>?
) -> sam3_neck_status {
    guarded("sam3_neck_compile_io") { try compile(neck, params, io) }
}

private func compile(
    _ neck: OpaquePointer?, _ params: UnsafePointer<sam3_neck_compile_params>?,
    _ io: UnsafePointer<sam3_neck_io_params>?
) throws {
    let h = try handle(neck)
    h.plan = nil  // on failure the handle is left uncompiled; also frees the old workspace first
    let options = try withIO(try compileOptions(params?.pointee ?? sam3_neck_compile_default_params()), io)
    h.plan = try h.neck.compile(options)
}

@c @implementation
public func sam3_neck_get_io_params(_ neck: OpaquePointer?, _ out: UnsafeMutablePointer<sam3_neck_io_params>?)
    -> sam3_neck_status
{
    guarded("sam3_neck_get_io_params") {
        let o = try compiledPlan(neck).options
        guard let out else { throw invalid("out is NULL") }
        let p = sam3_neck_io_params(
            struct_size: UInt32(MemoryLayout<sam3_neck_io_params>.size),
            input_dtype: sam3_neck_dtype(rawValue: UInt32(o.inputDType.rawValue)),
            output_dtype: sam3_neck_dtype(rawValue: UInt32(o.outputDType.rawValue)),
            output_layout: sam3_neck_output_layout(rawValue: UInt32(o.outputLayout.rawValue)))
        try writeVersioned(p, to: out, "sam3_neck_io_params", firstSize: ioParamsV1Size)
    }
}

@c @implementation
public func sam3_neck_output_shape(
    _ neck: OpaquePointer?, _ level: Int32, _ shape: UnsafeMutablePointer<Int64>?,
    _ rank: UnsafeMutablePointer<Int32>?
) -> sam3_neck_status {
    guarded("sam3_neck_output_shape") {
        let plan = try compiledPlan(neck)
        let l = try compiledLevel(plan, level)
        guard let shape, let rank else { throw invalid("shape and rank must not be NULL") }
        let dims = plan.outputDimensions(level: l)!
        rank.pointee = Int32(dims.count)
        for i in 0..<4 { shape[i] = i < dims.count ? Int64(dims[i]) : 0 }
    }
}

@c @implementation
public func sam3_neck_get_compile_params(_ neck: OpaquePointer?, _ out: UnsafeMutablePointer<sam3_neck_compile_params>?)
    -> sam3_neck_status
{
    guarded("sam3_neck_get_compile_params") {
        let o = try compiledPlan(neck).options
        guard let out else { throw invalid("out is NULL") }
        out.pointee = sam3_neck_compile_params(
            batch: Int32(o.batch), height: Int32(o.height), width: Int32(o.width),
            layout: sam3_neck_layout(rawValue: UInt32(o.layout.rawValue)), levels_mask: o.levelsMask,
            threads: Int32(o.threads), precision: sam3_neck_precision(rawValue: UInt32(o.precision.rawValue)))
    }
}

@c @implementation
public func sam3_neck_level_shape(_ neck: OpaquePointer?, _ level: Int32, _ shape: UnsafeMutablePointer<Int64>?)
    -> sam3_neck_status
{
    guarded("sam3_neck_level_shape") {
        let plan = try compiledPlan(neck)
        let l = try compiledLevel(plan, level)
        guard let shape else { throw invalid("shape is NULL") }
        for (i, v) in plan.levelShapes[l]!.enumerated() { shape[i] = Int64(v) }
    }
}

@c @implementation
public func sam3_neck_input_count(_ neck: OpaquePointer?, _ count: UnsafeMutablePointer<Int>?) -> sam3_neck_status {
    guarded("sam3_neck_input_count") {
        let plan = try compiledPlan(neck)
        guard let count else { throw invalid("count is NULL") }
        count.pointee = plan.inputCount
    }
}

@c @implementation
public func sam3_neck_workspace_size(_ neck: OpaquePointer?, _ bytes: UnsafeMutablePointer<Int>?) -> sam3_neck_status {
    guarded("sam3_neck_workspace_size") {
        let plan = try compiledPlan(neck)
        guard let bytes else { throw invalid("bytes is NULL") }
        bytes.pointee = plan.workspaceBytes
    }
}

/// The names `sam3_neck_kernel_name` hands out, made once: static storage for the process.
nonisolated(unsafe) private let kernelNames: [String: UnsafePointer<CChar>] = {
    Dictionary(GemmBackend.codeNames.map { ($0, UnsafePointer(strdup($0)!)) }, uniquingKeysWith: { a, _ in a })
}()

@c @implementation
public func sam3_neck_kernel_name(_ neck: OpaquePointer?, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?)
    -> sam3_neck_status
{
    guarded("sam3_neck_kernel_name") {
        let plan = try compiledPlan(neck)
        guard let name else { throw invalid("name is NULL") }
        let kernel = plan.productKernel
        guard let p = kernelNames[kernel] else {
            throw NeckError(.internal, "no static name for the product code '\(kernel)'")
        }
        name.pointee = p
    }
}

@c @implementation
public func sam3_neck_position_encoding(
    _ neck: OpaquePointer?, _ level: Int32, _ out: UnsafeMutablePointer<Float>?, _ count: Int
) -> sam3_neck_status {
    guarded("sam3_neck_position_encoding") {
        let plan = try compiledPlan(neck)
        let l = try compiledLevel(plan, level)
        guard let out else { throw invalid("out is NULL") }
        let pos = plan.positionEncodings[l]!
        guard sizeT(count) >= pos.count else {
            throw NeckError(
                .shape,
                "level \(l) position encoding has \(pos.count) floats [1, \(pos.dModel), \(pos.height), \(pos.width)] but count is \(sizeT(count))"
            )
        }
        pos.fill(out)
    }
}

@c @implementation
public func sam3_neck_position_encoding_io(
    _ neck: OpaquePointer?, _ level: Int32, _ out: UnsafeMutableRawPointer?,
    _ count: Int
) -> sam3_neck_status {
    guarded("sam3_neck_position_encoding_io") {
        let plan = try compiledPlan(neck)
        let l = try compiledLevel(plan, level)
        guard let out else { throw invalid("out is NULL") }
        let need = plan.positionEncodings[l]!.count
        guard sizeT(count) >= need else {
            throw NeckError(
                .shape,
                "level \(l) position encoding \(describeShape(plan.outputDimensions(level: l, batch: 1)!)) has \(need) elements but count is \(sizeT(count))"
            )
        }
        plan.writePositionEncoding(level: l, into: out)
    }
}

// MARK: - Running

/// A C size_t as Swift imports it (Int) back to its value: counts past 2⁶³ are no negative numbers,
/// in comparisons (SIZE_MAX is a capacity of at least anything) or in messages.
private func sizeT(_ n: Int) -> UInt { UInt(bitPattern: n) }

@c @implementation
public func sam3_neck_run(
    _ neck: OpaquePointer?, _ input: UnsafePointer<Float>?, _ inputCount: Int,
    _ outputs: UnsafePointer<UnsafeMutablePointer<Float>?>?, _ outputCounts: UnsafePointer<Int>?
) -> sam3_neck_status {
    guarded("sam3_neck_run") {
        let plan = try compiledPlan(neck)
        let o = plan.options
        guard o.inputDType == .float32, o.outputDType == .float32 else {
            throw NeckError(
                .dtype,
                "the plan was compiled for \(o.inputDType.name) input and \(o.outputDType.name) outputs; sam3_neck_run takes float32 only: use sam3_neck_run_io"
            )
        }
        // sam3_neck_run promises [B, d, h, w] outputs: a plan compiled for another output layout
        // would write that layout into buffers its caller reads as NCHW.
        guard o.outputLayout == .nchw else {
            throw invalid(
                "the plan was compiled for \(o.outputLayout == .nhwc ? "NHWC" : "sequence") outputs; sam3_neck_run writes NCHW [B, d, h, w] only: use sam3_neck_run_io"
            )
        }
        try run(
            plan, UnsafeRawPointer(input), inputCount,
            outputs.map { UnsafeRawPointer($0).assumingMemoryBound(to: UnsafeMutableRawPointer?.self) }, outputCounts)
    }
}

@c @implementation
public func sam3_neck_run_io(
    _ neck: OpaquePointer?, _ input: UnsafeRawPointer?, _ inputCount: Int,
    _ outputs: UnsafePointer<UnsafeMutableRawPointer?>?, _ outputCounts: UnsafePointer<Int>?
) -> sam3_neck_status {
    guarded("sam3_neck_run_io") { try run(try compiledPlan(neck), input, inputCount, outputs, outputCounts) }
}

/// The checks and the call both run entry points share; counts are in elements of the compiled types.
private func run(
    _ plan: NeckPlan, _ input: UnsafeRawPointer?, _ inputCount: Int,
    _ outputs: UnsafePointer<UnsafeMutableRawPointer?>?, _ outputCounts: UnsafePointer<Int>?
) throws {
    guard let input else { throw invalid("input is NULL") }
    guard let outputs else { throw invalid("outputs is NULL") }
    guard let outputCounts else { throw invalid("output_counts is NULL") }
    let o = plan.options, elements = o.inputDType == .float32 ? "floats" : "\(o.inputDType.name) elements"
    guard inputCount == plan.inputCount else {
        let dims =
            o.layout == .nchw
            ? "[\(o.batch), \(plan.trunkDim), \(o.height), \(o.width)] (NCHW)"
            : "[\(o.batch), \(o.height), \(o.width), \(plan.trunkDim)] (NHWC)"
        throw NeckError(
            .shape,
            "input_count is \(sizeT(inputCount)) but the compiled input \(dims) has \(plan.inputCount) \(elements)")
    }
    // The bytes each buffer holds for this run, to check alignment and overlap (both documented
    // preconditions; cheap next to a run, and a violation is otherwise silent wrong data).
    var regions: [(name: String, start: UInt, end: UInt)] = []
    func region(_ name: String, _ p: UnsafeRawPointer, elements: Int, size: Int) throws {
        let start = UInt(bitPattern: Int(bitPattern: p))
        guard start % UInt(size) == 0 else {
            throw invalid("\(name) (\(p)) is not aligned to its element type (\(size) bytes)")
        }
        let end = start &+ UInt(elements) &* UInt(size)
        if let other = regions.first(where: { start < $0.end && $0.start < end }) {
            throw invalid("\(name) overlaps \(other.name): the input and the outputs must be separate buffers")
        }
        regions.append((name, start, end))
    }
    try region("input", input, elements: inputCount, size: o.inputDType.size)
    var buffers: [UnsafeMutableRawPointer?] = Array(repeating: nil, count: Int(SAM3_NECK_NUM_LEVELS))
    for level in o.levels {
        guard let p = outputs[level] else { throw invalid("outputs[\(level)] is NULL but level \(level) is compiled") }
        let need = plan.outputCount(level: level)!
        guard sizeT(outputCounts[level]) >= need else {
            let unit = o.outputDType == .float32 ? "floats" : "\(o.outputDType.name) elements"
            throw NeckError(
                .shape,
                "output_counts[\(level)] is \(sizeT(outputCounts[level])) but level \(level) \(describeShape(plan.outputDimensions(level: level)!)) needs \(need) \(unit)"
            )
        }
        try region("outputs[\(level)]", UnsafeRawPointer(p), elements: need, size: o.outputDType.size)
        buffers[level] = p
    }
    plan.run(input: input, outputs: buffers)
}

// MARK: - Experimental

@c @implementation
public func sam3_neck_inspect_file(
    _ path: UnsafePointer<CChar>?, _ buf: UnsafeMutablePointer<CChar>?, _ size: Int,
    _ needed: UnsafeMutablePointer<Int>?
) -> sam3_neck_status {
    guarded("sam3_neck_inspect_file") {
        guard let path else { throw invalid("path is NULL") }
        guard let needed else { throw invalid("needed is NULL") }
        let text = try Inspection.report(path: String(cString: path)).description
        let bytes = Array(text.utf8) + [0]
        needed.pointee = bytes.count
        guard bytes.count <= size else {
            throw invalid(
                "the report needs \(bytes.count) bytes, the buffer has \(size); call again with a buffer of *needed bytes"
            )
        }
        guard let buf else { throw invalid("buf is NULL but size is \(size)") }
        bytes.withUnsafeBufferPointer { b in
            UnsafeMutableRawPointer(buf).copyMemory(from: b.baseAddress!, byteCount: b.count)
        }
    }
}

nonisolated(unsafe) private let tensorNames: [UnsafePointer<CChar>] = NeckNaming.tensors.map {
    UnsafePointer(strdup($0.description)!)
}

@c @implementation
public func sam3_neck_experimental_tensor_name(_ index: Int32) -> UnsafePointer<CChar>? {
    index >= 0 && Int(index) < tensorNames.count ? tensorNames[Int(index)] : nil
}

@c @implementation
public func sam3_neck_experimental_get_tensor(
    _ neck: OpaquePointer?, _ name: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<Float>?, _ capacity: Int,
    _ shape: UnsafeMutablePointer<Int64>?, _ rank: UnsafeMutablePointer<Int32>?
) -> sam3_neck_status {
    guarded("sam3_neck_experimental_get_tensor") {
        let weights = try handle(neck).neck.weights
        guard let name else { throw invalid("name is NULL") }
        guard let shape, let rank else { throw invalid("shape and rank must not be NULL") }
        let text = String(cString: name)
        guard let tensor = NeckTensor(name: text), let t = weights.tensor(tensor) else {
            throw invalid(
                "no tensor '\(text)': names are '<level>.<module>.<weight|bias>', e.g. '\(NeckNaming.tensors[0])' (see sam3_neck_experimental_tensor_name)"
            )
        }
        rank.pointee = Int32(t.shape.count)
        for i in 0..<4 { shape[i] = i < t.shape.count ? Int64(t.shape[i]) : 0 }
        guard sizeT(capacity) >= t.count else {
            throw NeckError(
                .shape,
                "tensor '\(text)' \(describeShape(t.shape)) has \(t.count) floats but capacity is \(sizeT(capacity))")
        }
        guard let out else { throw invalid("out is NULL but capacity is \(sizeT(capacity))") }
        t.data.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: t.count) }
    }
}

private func describeShape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
