#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// PyTorch's default `nn.GELU()`: 0.5·x·(1 + erf(x/√2)) — the exact form, not the tanh one.
@inlinable
public func gelu(_ x: Float) -> Float {
    // erfc(−x/√2) = 1 + erf(x/√2), without the cancellation that flushes large negative x to 0.
    0.5 * x * erfcf(x * -0.707_106_781_186_547_524_4)
}
