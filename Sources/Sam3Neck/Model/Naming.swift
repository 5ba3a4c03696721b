/// Which of a checkpoint's two necks to load.
public enum NeckKind: String, Sendable, CaseIterable {
    /// The detection neck: "convs" in the original checkpoint, "fpn_layers" in the Transformers port.
    case sam3
    /// The SAM 2 / tracker neck of video checkpoints (same structure, own weights): "sam2_convs",
    /// or "tracker_neck.fpn_layers" in the Transformers port.
    case sam2
}

/// How a file spells the neck's tensors: `{prefix}{group}.{branch}.{module}.{weight|bias}`, with
/// the group and module names of the original code or of the Hugging Face Transformers port.
public enum NeckNamingScheme: String, Sendable, CaseIterable {
    /// Upstream SAM 3 (`sam3.pt`): `convs.0.dconv_2x2_0`, …, `conv_1x1`, `conv_3x3`.
    case original
    /// Transformers (`Sam3VisionNeck`): `fpn_layers.0.scale_layers.0`, …, `proj1`, `proj2`.
    case transformers

    public func group(_ kind: NeckKind) -> String {
        switch (self, kind) {
        case (.original, .sam3): return "convs"
        case (.original, .sam2): return "sam2_convs"
        case (.transformers, .sam3): return "fpn_layers"
        case (.transformers, .sam2): return "tracker_neck.fpn_layers"
        }
    }

    /// The scheme's name for one of `NeckNaming.branchModules` (the original names).
    public func module(_ original: String) -> String {
        guard self == .transformers else { return original }
        switch original {
        case "dconv_2x2_0", "dconv_2x2": return "scale_layers.0"
        case "dconv_2x2_1": return "scale_layers.2"  // scale_layers.1 is the GELU
        case "conv_1x1": return "proj1"
        case "conv_3x3": return "proj2"
        default: return original
        }
    }

    /// Prefixes under which files of this scheme keep the neck, most specific first.
    public var knownPrefixes: [String] {
        switch self {
        case .original:
            // The official checkpoint, the same after its loader strips "detector.", extracts, none.
            return ["detector.backbone.vision_backbone.", "backbone.vision_backbone.", "vision_backbone.", ""]
        case .transformers:
            // The video model's file wraps the detector as "detector_model."; the tracker neck
            // sits at the top ("tracker_neck.fpn_layers…", prefix "").
            return ["detector_model.vision_encoder.neck.", "vision_encoder.neck.", ""]
        }
    }
}

/// Where one neck's tensors are in a file: its scheme and prefix.
public struct NeckLocation: Sendable, Equatable, CustomStringConvertible {
    public let kind: NeckKind
    public let scheme: NeckNamingScheme
    public let prefix: String

    public func name(branch: Int, module: String, param: String) -> String {
        "\(prefix)\(scheme.group(kind)).\(branch).\(scheme.module(module)).\(param)"
    }

    /// The tensor whose presence marks the neck (branch 2's 1×1 conv, which every neck has).
    var probe: String { name(branch: 2, module: "conv_1x1", param: "weight") }

    public var description: String { "\(kind.rawValue) neck, \(scheme.rawValue) names, prefix '\(prefix)'" }
}

public enum NeckNaming {
    /// The modules of each branch in the order they are applied (branch 3 starts with a max pool,
    /// which has no weights), by their original names.
    public static let branchModules: [[String]] = [
        ["dconv_2x2_0", "dconv_2x2_1", "conv_1x1", "conv_3x3"],
        ["dconv_2x2", "conv_1x1", "conv_3x3"],
        ["conv_1x1", "conv_3x3"],
        ["conv_1x1", "conv_3x3"],
    ]

    /// Every (scheme, prefix) under which a neck of `kind` is present in `names`; with an
    /// explicit prefix, only that prefix is tried (in both schemes).
    public static func candidates(names: [String], kind: NeckKind, prefix explicit: String? = nil) -> [NeckLocation] {
        let present = Set(names)
        var found: [NeckLocation] = []
        for scheme in NeckNamingScheme.allCases {
            for prefix in explicit.map({ [$0] }) ?? scheme.knownPrefixes {
                let location = NeckLocation(kind: kind, scheme: scheme, prefix: prefix)
                if present.contains(location.probe) { found.append(location) }
            }
        }
        return found
    }

    /// The one location of the neck of `kind` in `names`. Errors list what was found instead.
    public static func resolve(names: [String], kind: NeckKind, explicit: String?, file: String) throws -> NeckLocation {
        let found = candidates(names: names, kind: kind, prefix: explicit)
        if found.count == 1 { return found[0] }
        if found.count > 1 {
            throw NeckError(.invalidArgument, "\(file): the \(kind.rawValue) neck appears \(found.count) times (\(found.map { "\($0.scheme.rawValue) names under '\($0.prefix)'" }.joined(separator: "; "))); choose one with the prefix option")
        }
        let probes = NeckNamingScheme.allCases.map { NeckLocation(kind: kind, scheme: $0, prefix: explicit ?? "").probe }
        let looked = explicit.map { "under prefix '\($0)' (tensors '\($0)\(probes[0])' or '\($0)\(probes[1])')" }
            ?? "for '\(probes[0])' or '\(probes[1])' under the known prefixes"
        throw NeckError(.missingTensor, "\(file): no \(kind.rawValue) neck found: looked \(looked)\(hint(names: names, kind: kind))")
    }

    /// For error messages: necks found elsewhere (other prefix, other kind), or what the file holds.
    private static func hint(names: [String], kind: NeckKind) -> String {
        var lines: [String] = []
        for k in NeckKind.allCases {
            for scheme in NeckNamingScheme.allCases {
                let marker = NeckLocation(kind: k, scheme: scheme, prefix: "").probe
                for n in names where n.hasSuffix(marker) {
                    let prefix = String(n.dropLast(marker.count))
                    // "tracker_neck.fpn_layers…" also ends in "fpn_layers…": report it once, as sam2.
                    if k == .sam3, scheme == .transformers, prefix.hasSuffix("tracker_neck.") { continue }
                    lines.append("a \(k.rawValue) neck (\(scheme.rawValue) names) under prefix '\(prefix)'")
                }
            }
        }
        if !lines.isEmpty {
            return "; the file holds " + lines.prefix(6).joined(separator: ", ") + " — choose it with the neck and prefix options"
        }
        let sample = names.filter { $0.contains("convs.") || $0.contains("fpn_layers.") }.prefix(3)
        return "; the file holds \(names.count) tensors" + (sample.isEmpty ? "" : ", e.g. '\(sample.joined(separator: "', '"))'")
    }
}
