// swift-tools-version:5.4
// libFuzzer targets for cfm, in their own package so the main build never sees
// -sanitize=fuzzer. Build and run one with scripts/fuzz.sh TARGET SECONDS; each target's seed
// corpus is fuzz/corpus/<target>/, replayed by `swift test` (FuzzCorpusReplayTests).
//
// Tools version 5.4 on purpose: from 5.5 on SwiftPM renames every executable's entry point
// and links `main` to it, which collides with libFuzzer's own `main`. Each target is a
// single main.swift compiled with -parse-as-library (no top-level code, so no Swift `main`),
// exporting LLVMFuzzerTestOneInput for libFuzzer's driver.
import PackageDescription

let package = Package(
    name: "cfm-fuzz",
    dependencies: [.package(name: "cfm", path: "..")],
    targets: [
        // Protocol-v1 input messages: FrameCodec.decode with small limits.
        .executableTarget(name: "FuzzFrameDecoder", dependencies: [.product(name: "CFMService", package: "cfm")]),
        // YAML config files: ServiceConfig.parse.
        .executableTarget(name: "FuzzConfigParser", dependencies: [.product(name: "CFMService", package: "cfm")]),
        // Organized clouds of any finite coordinates: background removal, FPS, KNN, 3-NN.
        .executableTarget(name: "FuzzGeometry", dependencies: [
            .product(name: "CFMGeometry", package: "cfm"),
        ]),
    ]
)
