// sam3neck-profile: where the time of a run goes, stage by stage (the benchmark's --profile).
//
//   swift run -c release sam3neck-profile WEIGHTS.safetensors [H W [BATCH [MASK [THREADS [RUNS]]]]]
//
// Prints the median wall time of each stage over RUNS runs after one warm-up run, the products
// each stage executes (Winograd's, not the direct count), their rate, and that rate against the
// machine's measured product peak (the plan's own kernels on THREADS workers at once).
//
// A last argument `strict` or `fast` picks that precision (default: the default one); in the fast
// mode the peak is that of its bfloat16 products.
//
//   sam3neck-profile --cost WEIGHTS [H W [BATCH [MASK [THREADS]]]]
//
// prints only, as one JSON line, the peaks and the products one image of each level executes in
// each precision mode (the benchmark's efficiency column).
//
//   sam3neck-profile --compile WEIGHTS [H W [BATCH [MASK [THREADS [RUNS]]]]] [strict | fast]
//
// times only first compiles: RUNS times, a fresh load of the weights and its first compile.
//
// `--cpu-time` anywhere: each stage's time is the CPU time of all the process's threads divided
// by THREADS, not wall time: on a busy machine the time other processes take is not charged, so
// two builds compare on a shared machine (serial tails and waits are not charged either).
import Dispatch
import Sam3Neck
#if canImport(Glibc)
import Glibc
#endif

let cpuTime = CommandLine.arguments.contains("--cpu-time")
let argv = CommandLine.arguments.filter { $0 != "--cpu-time" }
let costOnly = argv.count > 1 && argv[1] == "--cost"
let compileOnly = argv.count > 1 && argv[1] == "--compile"
let mode = argv.last.flatMap { ["strict": CompileOptions.Precision.strict, "fast": .fast][$0] }
let modeName = mode == .strict ? "strict" : mode == .fast ? "fast" : "default"
let args = argv.enumerated().filter {
    !((costOnly || compileOnly) && $0.offset == 1) && !(mode != nil && $0.offset == argv.count - 1)
}.map(\.element)
guard args.count >= 2 else {
    print(
        "usage: sam3neck-profile [--cost | --compile] [--cpu-time] WEIGHTS.safetensors [H W [BATCH [MASK [THREADS [RUNS]]]]] [strict | fast]"
    )
    exit(2)
}
/// Integer argument i (decimal, or hex with 0x), or `d` when absent.
func arg(_ i: Int, _ d: Int) -> Int {
    guard args.count > i else { return d }
    let a = args[i]
    guard let v = a.hasPrefix("0x") ? Int(a.dropFirst(2), radix: 16) : Int(a) else {
        print("sam3neck-profile: '\(a)' is not an integer"); exit(2)
    }
    return v
}
let defaults = CompileOptions()  // the library's defaults: SAM 3's 72 × 72 grid, batch 1, every level
let h = arg(2, defaults.height), w = arg(3, defaults.width), batch = arg(4, defaults.batch)
let mask = UInt32(arg(5, Int(defaults.levelsMask))), threads = arg(6, defaults.threads), runs = max(1, arg(7, 5))
func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, 56 - s.count)) }
/// "  12.3 ms"
func ms(_ s: Double) -> String {
    let t = (s * 1e4).rounded() / 10
    let text = "\(t) ms"
    return String(repeating: " ", count: max(0, 11 - text.count)) + text
}

/// Seconds the first compile of `neck` takes (exits on an error).
func neckCompileSeconds(_ neck: Neck, _ options: CompileOptions) -> Double {
    do {
        return try seconds { _ = try neck.compile(options) }
    } catch {
        print("sam3neck-profile: \(error)")
        exit(1)
    }
}

/// Seconds `body` takes.
func seconds(_ body: () throws -> Void) rethrows -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
}

do {
    var neck: Neck!
    let load = try seconds { neck = try Neck(path: args[1]) }
    var options = CompileOptions(batch: batch, height: h, width: w, levelsMask: mask, threads: threads)
    if let mode { options.precision = mode }
    if costOnly {
        var modes: [String] = []
        for precision in CompileOptions.Precision.allCases {
            var o = options
            o.precision = precision
            let plan = try neck.compile(o)
            let levels = (0..<4).map { l -> String in
                let f = plan.executedFlops(level: l)
                return "\"\(l)\": \((f.phase1 + f.conv) * 1e-9)"
            }
            modes.append("\"\(precision)\": {\(levels.joined(separator: ", "))}")
        }
        let t = threads == 0 ? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) : threads
        let peak = options.gemm.measuredPeak(threads: t)
        var fast = options
        fast.precision = .fast
        let fastPeak = fast.fastKernel.map { fast.productGemm.measuredPeak(threads: t, bf16: $0) } ?? peak
        let fastProducts = fast.fastKernel.map(GemmBackend.bf16Name) ?? options.gemm.name
        print(
            "{\"peak_gflops\": \(peak), \"fast_peak_gflops\": \(fastPeak), \"threads\": \(t), \"products\": \"\(options.gemm.name)\", \"fast_products\": \"\(fastProducts)\", \"executed_gflop_per_image\": {\(modes.joined(separator: ", "))}}"
        )
        exit(0)
    }
    if compileOnly {
        var times: [Double] = [neckCompileSeconds(neck, options)]
        for _ in 1..<runs { times.append(neckCompileSeconds(try Neck(path: args[1]), options)) }
        times.sort()
        print(
            "sam3neck-profile: first compile of \(runs) fresh loads, \(modeName) precision: median \(ms(times[times.count / 2])), min \(ms(times[0])), max \(ms(times[times.count - 1]))"
        )
        exit(0)
    }
    // The compile first, as a fresh process meets it; then its pieces again, each on its own.
    var plan: NeckPlan!
    let tCompile = try seconds { plan = try neck.compile(options) }
    var packed: PackedWeights!
    let gemm = options.productGemm, fast = options.fastKernel
    let tPacked = seconds { packed = PackedWeights(neck.weights, packProducts: gemm != .openBLAS) }
    let (upTile, upSplit) = NeckPlan.upsampleTile(options)
    let tUp = seconds {
        _ = UpsampleConv3x3(
            up: packed.up4Second, conv: packed.conv3x3[0], tile: upTile, gemm: gemm, bf16x3: upSplit, bf16: fast)
    }
    let (convTile, convSplit) = NeckPlan.winogradTile(options)
    let tWino = seconds { _ = packed.winograd(convTile, levels: [1, 2, 3], gemm: gemm, bf16x3: convSplit, bf16: fast) }
    print(
        "sam3neck-profile: load \(ms(load)); first compile \(ms(tCompile)) (alone: packing and folding \(ms(tPacked)), level 0's composed conv \(ms(tUp)), 3×3 Winograd weights of levels 1-3 \(ms(tWino)))"
    )
    var input = [Float](repeating: 0, count: plan.inputCount)
    var state: UInt32 = 1
    for i in input.indices {
        state = state &* 1_664_525 &+ 1_013_904_223; input[i] = Float(Int32(bitPattern: state)) / Float(Int32.max)
    }
    let outs: [UnsafeMutablePointer<Float>?] = (0..<4).map { l in
        plan.outputCount(level: l).map { UnsafeMutablePointer<Float>.allocate(capacity: $0) }
    }
    var perStage: [String: [Double]] = [:]
    var order: [String] = []
    var totals: [Double] = []
    for r in 0...runs {
        let p = Profile(cpuTime: cpuTime)
        let t0 = p.clock()
        input.withUnsafeBufferPointer { plan.run(input: $0.baseAddress!, outputs: outs, profile: p) }
        let dt = p.clock() - t0
        if r == 0 { continue }  // warm-up
        // CPU time: all the threads' seconds, per worker
        let scale = cpuTime ? 1 / Double(plan.threads) : 1
        totals.append(dt * scale)
        order = p.order
        for (k, v) in p.seconds { perStage[k, default: []].append(v * scale) }
    }
    func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }
    let peak =
        fast.map { gemm.measuredPeak(threads: plan.threads, bf16: $0) }
        ?? plan.options.gemm.measuredPeak(threads: plan.threads)
    print(
        "sam3neck-profile: batch \(batch), \(h)×\(w), mask 0x\(String(mask, radix: 16)), \(modeName) precision, threads \(plan.threads), workspace \(plan.workspaceBytes >> 20) MiB, \(runs) runs\(cpuTime ? "; times are CPU time / threads" : "")"
    )
    let amx =
        plan.bf16x3Levels.sorted().map { "phase 1 of L\($0)" }
        + (plan.level0ComposedBF16x3 ? ["L0's composed conv"] : [])
        + plan.convBF16x3Levels.sorted().map { "L\($0) conv_3x3" }
    if let fast {
        print(
            "products: bfloat16 operands, float32 sums, on \(GemmBackend.bf16Name(fast)); their measured peak on \(plan.threads) workers: \(Int(peak.rounded())) GFLOP/s"
        )
    } else {
        print(
            "products on \(plan.options.gemm.name)\(amx.isEmpty ? "" : " (\(amx.joined(separator: ", ")): bf16×3 on AMX, above this peak)"); their measured peak on \(plan.threads) workers: \(Int(peak.rounded())) GFLOP/s"
        )
    }
    /// The products a stage executes per run: "L<level> …" stages with "Winograd" in the name
    /// are the last conv, the max pool has none, the rest are phase 1.
    func executed(_ stage: String) -> Double {
        guard stage.hasPrefix("L"), let level = Int(String(stage.dropFirst().prefix(1))), !stage.contains("maxpool")
        else { return 0 }
        let f = plan.executedFlops(level: level)
        return Double(batch) * (stage.contains("Winograd") ? f.conv : f.phase1)
    }
    /// `x` with `digits` decimals, right-aligned in `width` characters.
    func fixed(_ x: Double, _ digits: Int, _ width: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (x * scale).rounded() / scale
        var text = digits == 0 ? String(Int(r)) : String(r)
        if digits > 0, let dot = text.firstIndex(of: ".") {
            let have = text.distance(from: dot, to: text.endIndex) - 1
            if have < digits { text += String(repeating: "0", count: digits - have) }
        }
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
    func row(_ name: String, _ seconds: Double, _ flops: Double) -> String {
        let rate: Double = flops / seconds * 1e-9
        let share: Double = 100 * rate / peak
        let cells =
            flops > 0 ? " " + fixed(flops * 1e-9, 2, 9) + " " + fixed(rate, 1, 9) + " " + fixed(share, 0, 7) + "%" : ""
        return pad(name) + " " + ms(seconds) + cells
    }
    print(pad("stage") + "        time  executed   GFLOP/s  of peak")
    print(String(repeating: "-", count: 98))
    var total = 0.0
    for stage in order {
        total += executed(stage)
        print(row(stage, median(perStage[stage]!), executed(stage)))
    }
    print(String(repeating: "-", count: 98))
    print(row("total (median)", median(totals), total))
    print(row("total (fastest run)", totals.min()!, total))
    print(
        "executed = GFLOP of products per run as the algorithms execute them (Winograd's, not the direct count); of peak = their rate / the measured peak"
    )
} catch {
    print("sam3neck-profile: \(error)")
    exit(1)
}
