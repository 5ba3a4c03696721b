/// Every failure of the core, with the kind a caller can branch on and a message for a person.
///
/// The message names the cause (file, tensor, expected vs found) so that the C layer can hand it
/// on unchanged as the last-error string.
public struct NeckError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        case invalidArgument, io, format, missingTensor, shape, dtype, notCompiled, outOfMemory, `internal`
    }

    public let kind: Kind
    public let message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// Prefixes the message with where it happened, keeping the kind.
    package func context(_ prefix: String) -> NeckError {
        NeckError(kind, "\(prefix): \(message)")
    }
}
