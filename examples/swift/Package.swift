// swift-tools-version: 6.3
// The Swift example (docs/swift.md): an app that depends on sam3neck's `Sam3Neck` library product.
// Built and run by `make test-swift-example` (Tests/swift-example/run.sh).
import PackageDescription

let package = Package(
    name: "neck-example",
    dependencies: [
        // This repository, by path; an app elsewhere would use its URL and a version.
        .package(name: "sam3neck", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "neck-example",
            dependencies: [.product(name: "Sam3Neck", package: "sam3neck")],
            path: "Sources/neck-example"
        ),
    ]
)
