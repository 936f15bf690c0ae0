// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "charlm",
    products: [
        .library(name: "CharTokenizer", targets: ["CharTokenizer"]),
        .library(name: "CharNN", targets: ["CharNN"]),
        .library(name: "CharLM", targets: ["CharLM"]),
        .library(name: "CharServe", targets: ["CharServe"]),
        .executable(name: "charlm", targets: ["CharLMTool"]),
    ],
    traits: [
        .trait(
            name: "MPI",
            description:
                "Data-parallel training under mpirun (needs an MPI library: Debian's libopenmpi-dev). "
                + "`swift build -c release --traits MPI`."
        )
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // `swift package generate-documentation`: the DocC catalogs of CharTokenizer and CharLM.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // MARK: - C libraries
        .systemLibrary(
            name: "CUTF8Proc",
            pkgConfig: "libutf8proc",
            providers: [.apt(["libutf8proc-dev"]), .brew(["utf8proc"])]
        ),
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]
        ),
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"]), .brew(["open-mpi"])]
        ),
        .target(name: "CKernels"),

        // MARK: - Libraries
        .target(name: "CharIO"),
        .target(name: "CharTokenizer", dependencies: ["CUTF8Proc", "CharIO"]),
        .target(name: "CharNN", dependencies: ["CBLAS", "CKernels"]),
        .target(
            name: "CharLM",
            dependencies: [
                "CharTokenizer", "CharNN", "CharIO", .target(name: "CMPI", condition: .when(traits: ["MPI"])),
            ]
        ),

        // `charlm serve`: an HTTP/1.1 server and the OpenAI-compatible API on CharLM's engine.
        .target(name: "CharServe", dependencies: ["CharLM"]),

        // MARK: - Command-line tool
        .executableTarget(
            name: "CharLMTool",
            dependencies: [
                "CharLM", "CharServe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - Tests
        .testTarget(name: "CharTokenizerTests", dependencies: ["CharTokenizer", "CUTF8Proc"]),
        .testTarget(name: "CharNNTests", dependencies: ["CharNN"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CharLMTests", dependencies: ["CharLM"]),
        .testTarget(name: "CharLMToolTests", dependencies: ["CharLMTool", "CharTokenizer"]),
        .testTarget(name: "CharServeTests", dependencies: ["CharServe", "CharLM", "CharNN"]),
    ]
)
