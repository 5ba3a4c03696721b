/// Every failure of the core, with the kind a caller can branch on and a message for a person.
///
/// The message names the cause (file, tensor, expected vs found) so that the C layer can hand it
/// on unchanged as the last-error string.
public struct NeckError: Error, CustomStringConvertible, Sendable {
    /// What failed, for code that handles some failures differently from others (one kind per
    /// status code of the C ABI, which maps them one to one).
    public enum Kind: Sendable, Equatable {
        /// An argument out of range or inconsistent: a level outside 0...3, an empty levels mask,
        /// a size or thread count out of bounds, a missing output buffer, the wrong input layout.
        case invalidArgument
        /// A file could not be opened or read, or is not a regular file.
        case io
        /// The checkpoint is malformed: its header, offsets, JSON, zip or pickle data.
        case format
        /// A tensor the neck needs is not in the checkpoint (or no neck is found under any prefix).
        case missingTensor
        /// A tensor, input or buffer has the wrong shape or size.
        case shape
        /// An element type that cannot be used: a needed tensor of a dtype other than F32, F16 or
        /// BF16, or a half-precision plan run through an API that holds float32.
        case dtype
        /// A run or query before a plan was compiled. The Swift API cannot produce it (a
        /// ``NeckPlan`` is always compiled); the C ABI's handles can.
        case notCompiled
        /// An allocation failed, or would exceed the machine's memory or what the products can index.
        case outOfMemory
        /// A bug in the library; the message says what broke (report it with the message).
        case `internal`
    }

    /// What failed, to branch on.
    public let kind: Kind
    /// What failed, for a person: it names the cause (file, tensor, expected and found values).
    public let message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message, so that printing the error (or interpolating it) shows the cause.
    public var description: String { message }

    /// Prefixes the message with where it happened, keeping the kind.
    package func context(_ prefix: String) -> NeckError {
        NeckError(kind, "\(prefix): \(message)")
    }
}
