// The Swift example (docs/swift.md): load, compile, run, read the pyramid — no pointers.
//   cd examples/swift && swift run neck-example CHECKPOINT   (from the repository root; CHECKPOINT:
//   safetensors, PyTorch .pt, or a sharded index, e.g. the one make demo writes to ~/.cache/sam3neck/)
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sam3Neck

guard CommandLine.arguments.count == 2 else {
    print("usage: neck-example CHECKPOINT (.safetensors, .pt, or a sharded index)")
    exit(2)
}
do {
    let neck = try Neck(path: CommandLine.arguments[1])   // only the neck's tensors are read
    print("trunk_dim \(neck.trunkDim), d_model \(neck.dModel)")
    let plan = try neck.compile(batch: 1, height: 16, width: 16, levels: [0, 1, 2])
    var x = FeatureMap(zeros: plan.inputShape)            // [1, trunk_dim, 16, 16], NCHW
    for c in 0..<x.shape.channels { x[0, c, 8, 8] = 1 }   // the trunk's features go here
    for level in try plan.run(x) {
        let pos = try plan.positionEncoding(level: level.level)
        print("level \(level.level) (scale \(level.scale)): features \(level.features.shape), position encoding \(pos.shape)")
    }
    do {
        _ = try plan.run([Float](repeating: 0, count: 3))  // a wrong size is an error, not a crash
    } catch let error as NeckError {
        print("refused: \(error.message)")
    }
} catch {
    print("neck-example: \(error)")
    exit(1)
}
