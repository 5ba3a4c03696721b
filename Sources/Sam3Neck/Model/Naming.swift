/// Where the neck's tensors live in a checkpoint: `{prefix}{group}.{branch}.{module}.{weight|bias}`.
public enum NeckKind: String, Sendable, CaseIterable {
    /// The detection neck, group "convs".
    case sam3
    /// The SAM 2 / tracker neck of video checkpoints, group "sam2_convs" (same structure).
    case sam2

    public var group: String { self == .sam3 ? "convs" : "sam2_convs" }
}

public enum NeckNaming {
    /// Prefixes under which SAM 3 files keep the vision backbone: the official checkpoint, the
    /// same after the loader strips "detector.", extracts, and none.
    public static let knownPrefixes = [
        "detector.backbone.vision_backbone.",
        "backbone.vision_backbone.",
        "vision_backbone.",
        "",
    ]

    /// The modules of each branch in the order they are applied (branch 3 starts with a max pool,
    /// which has no weights).
    public static let branchModules: [[String]] = [
        ["dconv_2x2_0", "dconv_2x2_1", "conv_1x1", "conv_3x3"],
        ["dconv_2x2", "conv_1x1", "conv_3x3"],
        ["conv_1x1", "conv_3x3"],
        ["conv_1x1", "conv_3x3"],
    ]

    public static func name(prefix: String, kind: NeckKind, branch: Int, module: String, param: String) -> String {
        "\(prefix)\(kind.group).\(branch).\(module).\(param)"
    }

    /// Finds the prefix of the neck among `names`: the explicit one if given, else the known
    /// prefix under which the neck's probe tensor exists. Errors list what was found.
    public static func resolvePrefix(names: [String], kind: NeckKind, explicit: String?, file: String) throws -> String {
        let probe = "\(kind.group).2.conv_1x1.weight"
        let present = Set(names)
        if let explicit {
            if present.contains(explicit + probe) { return explicit }
            throw NeckError(.missingTensor, "\(file): no \(kind.rawValue) neck under prefix '\(explicit)' (tensor '\(explicit + probe)' not found)\(candidates(names: names, kind: kind))")
        }
        let matches = knownPrefixes.filter { present.contains($0 + probe) }
        if matches.count == 1 { return matches[0] }
        if matches.isEmpty {
            throw NeckError(.missingTensor, "\(file): no \(kind.rawValue) neck found: looked for '\(probe)' under the prefixes \(knownPrefixes.map { "'\($0)'" }.joined(separator: ", "))\(candidates(names: names, kind: kind))")
        }
        throw NeckError(.invalidArgument, "\(file): the \(kind.rawValue) neck appears under several prefixes (\(matches.map { "'\($0)'" }.joined(separator: ", "))); choose one with the prefix option")
    }

    /// A hint for error messages: tensors that look like a neck, or the file's size in tensors.
    private static func candidates(names: [String], kind: NeckKind) -> String {
        let marker = ".\(kind.group).2.conv_1x1.weight"
        let near = names.filter { $0.hasSuffix(marker) }
        if !near.isEmpty {
            return "; found '\(near.prefix(5).joined(separator: "', '"))' — pass the part before '\(kind.group).' as the prefix"
        }
        let others = names.filter { $0.contains("convs.") }.prefix(3)
        return "; the file holds \(names.count) tensors" + (others.isEmpty ? "" : ", e.g. '\(others.joined(separator: "', '"))'")
    }
}
