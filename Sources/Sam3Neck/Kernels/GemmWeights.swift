/// One GEMM right-hand side `B[k × n]`, row-major, with the bias added per column: the form every
/// layer of the neck takes once the plan's algebra is done (`PackedWeights`), and what the
/// product kernels pack.
package struct GemmWeights: Sendable {
    /// Row-major (on huge pages, as the packed forms: tens of MB made at every first compile);
    /// empty when only a packed form is kept.
    package let b: AlignedFloats
    package let bias: [Float]
    package let k: Int, n: Int

    package init(b: AlignedFloats, bias: [Float], k: Int, n: Int) {
        (self.b, self.bias, self.k, self.n) = (b, bias, k, n)
    }
}
