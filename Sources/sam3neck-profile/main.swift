// sam3neck-profile: where the time of a run goes, stage by stage (the benchmark's --profile).
//
//   swift run -c release sam3neck-profile WEIGHTS.safetensors [H W [BATCH [MASK [THREADS [RUNS]]]]]
//
// Prints the median wall time of each stage over RUNS runs after one warm-up run, with the
// direct FLOP count of the products for GFLOP/s.
import Dispatch
import Sam3Neck
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
guard args.count >= 2 else {
    print("usage: sam3neck-profile WEIGHTS.safetensors [H W [BATCH [MASK [THREADS [RUNS]]]]]")
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
let h = arg(2, 72), w = arg(3, 72), batch = arg(4, 1), mask = UInt32(arg(5, 0xF)), threads = arg(6, 0), runs = max(1, arg(7, 5))
func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, 36 - s.count)) }
/// "  12.3 ms"
func ms(_ s: Double) -> String {
    let t = (s * 1e4).rounded() / 10
    let text = "\(t) ms"
    return String(repeating: " ", count: max(0, 11 - text.count)) + text
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
    // What the first compile does, piece by piece (each timed on its own), then the compile itself.
    let options = CompileOptions(batch: batch, height: h, width: w, levelsMask: mask, threads: threads)
    var packed: PackedWeights!
    let tPacked = seconds { packed = PackedWeights(neck.weights) }
    let tUp = seconds { _ = UpsampleConv3x3(up: packed.up4Second, conv: packed.conv3x3[0], tile: NeckPlan.upsampleTile(options.precision)) }
    let tWino = seconds { _ = packed.winograd(NeckPlan.winogradTile(options.precision), levels: [1, 2, 3]) }
    var plan: NeckPlan!
    let tCompile = try seconds { plan = try neck.compile(options) }
    print("sam3neck-profile: load \(ms(load)); first compile \(ms(tCompile)) (alone: packing and folding \(ms(tPacked)), level 0's composed conv \(ms(tUp)), 3×3 Winograd weights of levels 1-3 \(ms(tWino)))")
    var input = [Float](repeating: 0, count: plan.inputCount)
    var state: UInt32 = 1
    for i in input.indices { state = state &* 1_664_525 &+ 1_013_904_223; input[i] = Float(Int32(bitPattern: state)) / Float(Int32.max) }
    let outs: [UnsafeMutablePointer<Float>?] = (0..<4).map { l in plan.outputCount(level: l).map { UnsafeMutablePointer<Float>.allocate(capacity: $0) } }
    var perStage: [String: [Double]] = [:]
    var order: [String] = []
    var totals: [Double] = []
    for r in 0...runs {
        let p = Profile()
        let t0 = DispatchTime.now().uptimeNanoseconds
        input.withUnsafeBufferPointer { plan.run(input: $0.baseAddress!, outputs: outs, profile: p) }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        if r == 0 { continue }  // warm-up
        totals.append(dt)
        order = p.order
        for (k, v) in p.seconds { perStage[k, default: []].append(v) }
    }
    func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }
    print("sam3neck-profile: batch \(batch), \(h)×\(w), mask 0x\(String(mask, radix: 16)), threads \(plan.threads), workspace \(plan.workspaceBytes >> 20) MiB, \(runs) runs")
    print(String(repeating: "-", count: 52))
    for stage in order {
        let m = median(perStage[stage]!)
        print("\(pad(stage)) \(ms(m))")
    }
    print(String(repeating: "-", count: 52))
    print("\(pad("total (median)")) \(ms(median(totals)))")
} catch {
    print("sam3neck-profile: \(error)")
    exit(1)
}
