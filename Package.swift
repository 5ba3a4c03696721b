// swift-tools-version: 6.3
// SPDX-License-Identifier: Apache-2.0 (LICENSE)
import PackageDescription

// `make fuzz` builds the exports into an instrumented executable (sam3neck-api-fuzz) with
// SAM3NECK_FUZZ_BUILD=1: there the version script, which makes the library export the header's
// functions only, would also hide the sanitizer runtime's interceptors (malloc, free, ...) from
// the shared libraries the executable loads.
let fuzzBuild = Context.environment["SAM3NECK_FUZZ_BUILD"] != nil

let package = Package(
    name: "sam3neck",
    products: [
        // The C ABI: libsam3neck.so, exporting exactly the functions of include/sam3_neck.h.
        .library(name: "sam3neck", type: .dynamic, targets: ["Sam3NeckC"]),
        // The Swift core for Swift apps (`import Sam3Neck`): no unsafe flags, so other packages can
        // depend on it (examples/swift).
        .library(name: "Sam3Neck", targets: ["Sam3Neck"]),
    ],
    targets: [
        // OpenBLAS's CBLAS interface (Debian: libopenblas-dev; pkg-config name "openblas").
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // Kernels written in C for vector instructions chosen at run time (AVX2 + FMA when the CPU
        // has them; portable code otherwise). Internal to the core.
        .target(
            name: "CKernels",
            path: "Sources/CKernels"
        ),
        // The Swift core: checkpoint reading, weights, plans, kernels. No C-ABI concerns.
        .target(
            name: "Sam3Neck",
            dependencies: ["COpenBLAS", "CKernels"],
            path: "Sources/Sam3Neck"
        ),
        // The public C header, imported by the exports so `@c @implementation` checks each
        // exported function against it. The one C file pins the ABI's struct layouts.
        .target(
            name: "Sam3NeckABI",
            path: "include",
            sources: ["abi_layout_check.c"],
            publicHeadersPath: "."
        ),
        // The exported C functions: argument checks, status codes, error messages, handles.
        .target(
            name: "Sam3NeckC",
            dependencies: ["Sam3Neck", "Sam3NeckABI"],
            path: "Sources/Sam3NeckC",
            exclude: ["exports.map"],
            linkerSettings: [
                // Export only the header's functions, not the Swift symbols of the modules inside.
                // The soname carries SAM3_NECK_ABI_VERSION of include/sam3_neck.h (`make install`
                // and Tests/install/run.sh check that the two agree).
                .unsafeFlags(
                    fuzzBuild
                        ? []
                        : [
                            "-Xlinker", "--version-script=Sources/Sam3NeckC/exports.map",
                            "-Xlinker", "-soname=libsam3neck.so.1",
                        ])
            ]
        ),
        // Developer tool: per-stage timing of a run (`swift run -c release sam3neck-profile W.safetensors`).
        .executableTarget(
            name: "sam3neck-profile",
            dependencies: ["Sam3Neck"],
            path: "Sources/sam3neck-profile"
        ),
        // The parsers under libFuzzer (`make fuzz`); built normally, it replays saved inputs.
        .executableTarget(
            name: "sam3neck-fuzz",
            dependencies: ["Sam3Neck"],
            path: "Sources/sam3neck-fuzz"
        ),
        // The C ABI under libFuzzer, as sequences of calls checked against the header's promises
        // (`make fuzz`); built normally, it replays saved inputs. It links the exports' target.
        .executableTarget(
            name: "sam3neck-api-fuzz",
            dependencies: ["Sam3NeckC", "Sam3NeckABI"],
            path: "Sources/sam3neck-api-fuzz"
        ),
        // Developer tool: the packed SGEMM of CKernels against OpenBLAS on the neck's shapes
        // (`swift run -c release sam3neck-gemm-bench`).
        .executableTarget(
            name: "sam3neck-gemm-bench",
            dependencies: ["CKernels", "COpenBLAS"],
            path: "Sources/sam3neck-gemm-bench"
        ),
        .testTarget(
            name: "Sam3NeckTests",
            // Sam3NeckABI: the header's SAM3_NECK_BOUND_* macros, the bounds the plans are held to.
            dependencies: ["Sam3Neck", "CKernels", "Sam3NeckABI"],
            path: "Tests/Sam3NeckTests"
        ),
    ]
)
