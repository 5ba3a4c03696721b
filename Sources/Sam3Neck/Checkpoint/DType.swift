/// Element types of checkpoint tensors, and their conversion to float32.
package enum DType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"
    case f64 = "F64", i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"
    case c64 = "C64", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2", u16 = "U16", u32 = "U32", u64 = "U64"

    package var byteSize: Int {
        switch self {
        case .f64, .i64, .c64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: return 1
        }
    }

    /// Whether the neck can use tensors of this type (converted to float32 on load).
    package var isLoadable: Bool { self == .f32 || self == .f16 || self == .bf16 }

    /// Converts `count` little-endian elements at `raw` to float32 into `out`.
    package func convert(_ raw: UnsafeRawBufferPointer, count: Int, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(isLoadable && raw.count >= count * byteSize && out.count >= count)
        switch self {
        case .f32:
            for k in 0..<count {
                out[k] = Float(
                    bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self)))
            }
        case .f16:
            for k in 0..<count {
                let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self))
                out[k] = Float(halfBits: bits)
            }
        case .bf16:
            for k in 0..<count {
                let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self))
                out[k] = Float(bitPattern: UInt32(bits) << 16)
            }
        default:
            fatalError("unreachable: \(self) is not loadable")
        }
    }
}

extension Float {
    /// IEEE 754 binary16 → binary32, exact (every half value is a float), without relying on the
    /// platform's Float16 support.
    @inlinable
    init(halfBits h: UInt16) {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x03FF)
        if exponent == 0x1F {  // Inf / NaN: keep the payload
            self = Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        } else if exponent != 0 {  // normal
            self = Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
        } else {  // zero or subnormal: mantissa · 2^-24
            let magnitude = Float(mantissa) * 0x1p-24
            self = sign != 0 ? -magnitude : magnitude
        }
    }
}
