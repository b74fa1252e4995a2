// swift-tools-version: 6.0
// Release timing and profiling of the geometry kernels of preprocessing (background removal
// at the sensor's resolution), in its own package so the main build never carries it:
//   swift build -c release --package-path tools/geometry-bench
//   tools/geometry-bench/.build/release/geometry-bench --width 2448 --height 2048 --runs 9
// and under callgrind for repeatable instruction counts (see docs/architecture.md).
import PackageDescription

let package = Package(
    name: "geometry-bench",
    dependencies: [.package(name: "cfm", path: "../..")],
    targets: [
        .executableTarget(name: "geometry-bench", dependencies: [.product(name: "CFMData", package: "cfm"), .product(name: "CFMGeometry", package: "cfm")]),
    ]
)
