// swift-tools-version: 6.0
// cfm — streaming edge daemon for multimodal (RGB + 3D) industrial anomaly detection
// by crossmodal feature mapping. The target list reads as the pipeline:
// tensors → geometry → models → detector → data → service → cfm (the command line).
import PackageDescription

let package = Package(
    name: "cfm",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cfm", targets: ["cfm"]),
        // For the libFuzzer targets in fuzz/ (their own package, built with -sanitize=fuzzer).
        .library(name: "CFMData", targets: ["CFMData"]),
        .library(name: "CFMGeometry", targets: ["CFMGeometry"]),
        .library(name: "CFMService", targets: ["CFMService"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // System libraries (Debian packages; see README). Each is a module map + shim header.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas"),
        .systemLibrary(name: "CZeroMQ"),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd"),
        .systemLibrary(name: "CLibPNG", pkgConfig: "libpng"),
        .systemLibrary(name: "CLibTIFF", pkgConfig: "libtiff-4"),

        // The bf16 GEMM (AVX512-BF16 vdpbf16ps, fp32 accumulation) and CPU feature detection, in C
        // (its AVX-512 functions carry their own target attributes; callers check the CPU first).
        .target(name: "CBF16", cSettings: [.unsafeFlags(["-O3"])]),
        // The fp32 GEMM for linear layers on AVX-512 with weights packed once at load and the bias,
        // residual and GELU fused into its epilogue (the ViT's transformer blocks; GELU's
        // arithmetic shared with CVectorMath's); built without fused multiply-add contraction.
        .target(name: "CPackedGEMM", dependencies: ["CVectorMath"], cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        // Softmax rows, GELU, LayerNorm and the scorer's reductions over 16-lane vectors, in C:
        // each body built for AVX-512 and for baseline x86-64, chosen at run time (`VectorPath`);
        // and the fused attention head (AVX-512 only).
        .target(name: "CVectorMath", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off", "-fno-math-errno"])]),

        // Float32 tensors, BLAS-backed and packed fp32 kernels (bf16 GEMMs opt-in) and safetensors IO.
        .target(name: "CFMTensor", dependencies: ["COpenBLAS", "CBF16", "CPackedGEMM", "CVectorMath"]),
        // Organized point clouds, background removal, FPS, KNN and 3-NN interpolation.
        .target(name: "CFMGeometry", dependencies: ["CFMTensor"]),
        // Frozen extractors (DINO ViT, Point-MAE), mappers, tiers, weight loading and init.
        .target(name: "CFMModels", dependencies: ["CFMTensor"]),
        // PNG/TIFF IO, the MVTec 3D-AD layout reader and the synthetic dataset generator.
        .target(name: "CFMData", dependencies: ["CFMTensor", "CLibPNG", "CLibTIFF"]),
        // Frame → map, score and verdict: preprocessing, alignment, crossmodal scoring, the detector.
        .target(name: "CFMDetector", dependencies: [
            "CFMData", "CFMGeometry", "CFMModels", "CFMTensor", "Yams", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // `cfm import`: the authors' release checkpoints (PyTorch zip + a restricted unpickler,
        // timm safetensors) → extractor weights and a complete model bundle, without Python.
        .target(name: "CFMImport", dependencies: [
            "CFMDetector", "CFMModels", "CFMTensor", "ZIPFoundation", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Mapper training on nominal parts (backprop, Adam), calibration, feature cache.
        .target(name: "CFMTraining", dependencies: ["CFMDetector", "CFMModels", "CFMTensor"]),
        // The offline workflows as library jobs with typed options and results: training,
        // calibration, evaluation (the command line parses, calls one and prints).
        .target(name: "CFMJobs", dependencies: ["CFMTraining", "CFMDetector", "CFMData", "CFMModels", "CFMTensor"]),
        // The edge daemon's parts: YAML config, wire protocol v1, ZeroMQ sockets, the bounded
        // pipeline, sd_notify, the journald log handler and the Prometheus exposition.
        .target(name: "CFMService", dependencies: [
            "CFMDetector", "CFMData", "CFMModels", "CFMTensor", "CZeroMQ", "CSystemd", "Yams",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The command line.
        .executableTarget(
            name: "cfm",
            dependencies: [
                "CFMTensor", "CFMModels", "CFMData", "CFMDetector", "CFMImport", "CFMTraining", "CFMJobs", "CFMService", "Yams",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Fixture loading and comparison helpers shared by the test targets.
        .target(name: "CFMTestSupport", dependencies: ["CFMTensor"], path: "Tests/Support"),
        .testTarget(name: "CFMTensorTests", dependencies: ["CFMTensor", "CFMTestSupport"]),
        .testTarget(name: "CFMGeometryTests", dependencies: ["CFMGeometry", "CFMTensor", "CFMTestSupport"]),
        .testTarget(name: "CFMModelsTests", dependencies: ["CFMModels", "CFMTensor", "CFMTestSupport"]),
        .testTarget(name: "CFMDataTests", dependencies: ["CFMData", "CFMTensor", "CFMTestSupport", "CLibTIFF"]),
        .testTarget(name: "CFMDetectorTests", dependencies: ["CFMDetector", "CFMData", "CFMGeometry", "CFMModels", "CFMTensor", "CFMTestSupport"]),
        .testTarget(name: "CFMServiceTests", dependencies: ["CFMService", "CFMDetector", "CFMData", "CFMModels", "CFMTensor", "CSystemd", "CZeroMQ",
                                                            .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "CFMImportTests", dependencies: ["CFMImport", "CFMDetector", "CFMModels", "CFMTensor", "CFMTestSupport", "ZIPFoundation",
                                                           .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "CFMTrainingTests", dependencies: ["CFMTraining", "CFMDetector", "CFMModels", "CFMTensor", "CFMTestSupport"]),
        .testTarget(name: "CFMJobsTests", dependencies: ["CFMJobs", "CFMTraining", "CFMDetector", "CFMData", "CFMModels", "CFMTensor",
                                                         "CFMTestSupport"]),
    ]
)
