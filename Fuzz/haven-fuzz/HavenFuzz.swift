// haven-fuzz: the fuzzing harness of `scripts/fuzz.sh`.
//
// Built with libFuzzer (`-sanitize=fuzzer,address -DHAVEN_FUZZ
// -parse-as-library`, by the script), it is a fuzzer for the target named by
// HAVEN_FUZZ_TARGET. Built normally (every `swift build`), it replays inputs
// and writes the seed corpus and dictionary:
//
//   haven-fuzz replay <target> <file>...   runs each file, prints what broke
//   haven-fuzz seed <corpus dir>           writes Fuzz/corpus/<target>/ seeds
//   haven-fuzz dictionary                  prints Fuzz/haven.dict
#if HAVEN_FUZZ
import HavenFuzzTargets
import Foundation

private let target: FuzzTarget = {
    let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
    guard let name = ProcessInfo.processInfo.environment["HAVEN_FUZZ_TARGET"],
        let target = FuzzTarget(rawValue: name)
    else { fatalError("set HAVEN_FUZZ_TARGET to one of \(names)") }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    let problems = target.run(input)
    if !problems.isEmpty { fatalError("\(target.rawValue): " + problems.joined(separator: "; ")) }
    return 0
}

/// libFuzzer's driver (in its runtime, which -sanitize=fuzzer links).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's entry point as `<product>_main` (and
/// `main` as an alias of it), so libFuzzer's own `main` is not used: this one
/// hands the command line to libFuzzer's driver instead.
@_cdecl("haven_fuzz_main")
public func havenFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
#else
import Foundation
import HavenFuzzTargets

@main
struct HavenFuzz {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "replay" where arguments.count >= 2:
            guard let target = FuzzTarget(rawValue: arguments[1]) else {
                FileHandle.standardError.write(Data("unknown target \(arguments[1])\n".utf8))
                exit(64)
            }
            var failed = 0
            for path in arguments.dropFirst(2) {
                guard let data = FileManager.default.contents(atPath: path) else {
                    FileHandle.standardError.write(Data("cannot read \(path)\n".utf8))
                    exit(66)
                }
                let problems = target.run(Array(data))
                print(problems.isEmpty ? "ok      \(path)" : "BROKEN  \(path): \(problems.joined(separator: "; "))")
                if !problems.isEmpty { failed += 1 }
            }
            exit(failed == 0 ? 0 : 1)
        case "seed" where arguments.count == 2:
            let written = try FuzzSeeds.write(into: URL(fileURLWithPath: arguments[1], isDirectory: true))
            print("wrote \(written) seeds")
        case "dictionary":
            print(FuzzSeeds.dictionary(), terminator: "")
        default:
            FileHandle.standardError.write(
                Data("usage: haven-fuzz replay <target> <file>... | seed <corpus dir> | dictionary\n".utf8)
            )
            exit(64)
        }
    }
}
#endif
