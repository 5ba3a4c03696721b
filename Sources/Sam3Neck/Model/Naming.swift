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
package enum NeckNamingScheme: String, Sendable, CaseIterable {
    /// Upstream SAM 3 (`sam3.pt`): `convs.0.dconv_2x2_0`, …, `conv_1x1`, `conv_3x3`.
    case original
    /// Transformers (`Sam3VisionNeck`): `fpn_layers.0.scale_layers.0`, …, `proj1`, `proj2`.
    case transformers

    package func group(_ kind: NeckKind) -> String {
        switch (self, kind) {
        case (.original, .sam3): return "convs"
        case (.original, .sam2): return "sam2_convs"
        case (.transformers, .sam3): return "fpn_layers"
        case (.transformers, .sam2): return "tracker_neck.fpn_layers"
        }
    }

    /// The scheme's name for `module`.
    package func name(_ module: NeckModule) -> String {
        guard self == .transformers else { return module.rawValue }
        switch module {
        case .dconv2x2_0, .dconv2x2: return "scale_layers.0"
        case .dconv2x2_1: return "scale_layers.2"  // scale_layers.1 is the GELU
        case .conv1x1: return "proj1"
        case .conv3x3: return "proj2"
        }
    }

    /// Prefixes under which files of this scheme keep the neck, most specific first.
    package var knownPrefixes: [String] {
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
package struct NeckLocation: Sendable, Equatable, CustomStringConvertible {
    package let kind: NeckKind
    package let scheme: NeckNamingScheme
    package let prefix: String

    package func name(_ tensor: NeckTensor) -> String {
        "\(prefix)\(scheme.group(kind)).\(tensor.level).\(scheme.name(tensor.module)).\(tensor.isBias ? "bias" : "weight")"
    }

    /// The tensor whose presence marks the neck (level 2's 1×1 conv, which every neck has).
    var probe: String { name(NeckTensor(level: 2, module: .conv1x1, isBias: false)) }

    package var description: String { "\(kind.rawValue) neck, \(scheme.rawValue) names, prefix '\(prefix)'" }
}

/// A module of the neck that has weights, by its upstream name (the one place these names live).
package enum NeckModule: String, Sendable, CaseIterable {
    case dconv2x2_0 = "dconv_2x2_0", dconv2x2_1 = "dconv_2x2_1", dconv2x2 = "dconv_2x2"
    case conv1x1 = "conv_1x1", conv3x3 = "conv_3x3"
}

/// One tensor of the neck, independent of how a file names it: level, module, weight or bias.
/// Its description, "0.dconv_2x2_0.weight", is upstream's name without group and prefix (the
/// name the C ABI's weight export takes).
package struct NeckTensor: Sendable, Hashable, CustomStringConvertible {
    package let level: Int
    package let module: NeckModule
    package let isBias: Bool

    package var description: String { "\(level).\(module.rawValue).\(isBias ? "bias" : "weight")" }

    /// The tensor named `name` ("3.conv_3x3.bias"), if the neck has it.
    package init?(name: String) {
        guard let t = NeckNaming.tensors.first(where: { $0.description == name }) else { return nil }
        self = t
    }

    init(level: Int, module: NeckModule, isBias: Bool) {
        self.level = level
        self.module = module
        self.isBias = isBias
    }
}

package enum NeckNaming {
    /// The modules of each level in the order they are applied (level 3 starts with a max pool,
    /// which has no weights).
    package static let levelModules: [[NeckModule]] = [
        [.dconv2x2_0, .dconv2x2_1, .conv1x1, .conv3x3],
        [.dconv2x2, .conv1x1, .conv3x3],
        [.conv1x1, .conv3x3],
        [.conv1x1, .conv3x3],
    ]

    /// Every tensor of the neck: levels in order, modules in order, weight before bias.
    package static let tensors: [NeckTensor] = levelModules.enumerated().flatMap { level, modules in
        modules.flatMap { m in [false, true].map { NeckTensor(level: level, module: m, isBias: $0) } }
    }

    /// Every (scheme, prefix) under which a neck of `kind` is present in `names`; with an
    /// explicit prefix, only that prefix is tried (in both schemes).
    package static func candidates(names: [String], kind: NeckKind, prefix explicit: String? = nil) -> [NeckLocation] {
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
    package static func resolve(names: [String], kind: NeckKind, explicit: String?, file: String) throws -> NeckLocation
    {
        let found = candidates(names: names, kind: kind, prefix: explicit)
        if found.count == 1 { return found[0] }
        if found.count > 1 {
            throw NeckError(
                .invalidArgument,
                "\(file): the \(kind.rawValue) neck appears \(found.count) times (\(found.map { "\($0.scheme.rawValue) names under '\($0.prefix)'" }.joined(separator: "; "))); choose one with the prefix option"
            )
        }
        let probes = NeckNamingScheme.allCases.map {
            NeckLocation(kind: kind, scheme: $0, prefix: explicit ?? "").probe
        }
        let looked =
            explicit.map { "under prefix '\($0)' (tensors '\($0)\(probes[0])' or '\($0)\(probes[1])')" }
            ?? "for '\(probes[0])' or '\(probes[1])' under the known prefixes"
        throw NeckError(
            .missingTensor, "\(file): no \(kind.rawValue) neck found: looked \(looked)\(hint(names: names, kind: kind))"
        )
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
            return "; the file holds " + lines.prefix(6).joined(separator: ", ")
                + " — choose it with the neck and prefix options"
        }
        let sample = names.filter { $0.contains("convs.") || $0.contains("fpn_layers.") }.prefix(3)
        return "; the file holds \(names.count) tensors"
            + (sample.isEmpty ? "" : ", e.g. '\(sample.joined(separator: "', '"))'")
    }
}
