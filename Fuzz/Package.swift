// swift-tools-version:6.0
// Fuzz targets for charlm's readers, built with libFuzzer (`scripts/fuzz.sh` builds and runs
// them). Not part of the charlm package: every target here needs `-sanitize=fuzzer`.
import PackageDescription

let readers = ["FuzzSafeTensors", "FuzzTokenizerFile", "FuzzRunConfig", "FuzzTrainerState", "FuzzPrompt", "FuzzHTTP"]

let package = Package(
    name: "charlm-fuzz",
    dependencies: [.package(name: "charlm", path: "..")],
    targets: [.target(name: "FuzzSupport")] + readers.map { name in
        .executableTarget(
            name: name,
            dependencies: ["FuzzSupport"] + ["CharLM", "CharNN", "CharTokenizer", "CharServe"].map { .product(name: $0, package: "charlm") }
        )
    }
)
