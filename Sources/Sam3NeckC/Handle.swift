import Sam3Neck

/// What a `sam3_neck *` points to: the loaded neck and, once compiled, its plan.
final class Handle {
    let neck: Neck
    var plan: NeckPlan?

    init(neck: Neck) { self.neck = neck }

    /// Returns a +1 reference as the C handle; `release` balances it.
    func retainedPointer() -> OpaquePointer { OpaquePointer(Unmanaged.passRetained(self).toOpaque()) }

    static func from(_ p: OpaquePointer) -> Handle {
        Unmanaged<Handle>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
    }

    static func release(_ p: OpaquePointer) { Unmanaged<Handle>.fromOpaque(UnsafeRawPointer(p)).release() }
}
