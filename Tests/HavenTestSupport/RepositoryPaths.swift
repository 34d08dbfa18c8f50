import Foundation
import HavenProtocol
import Synchronization

/// Paths inside the repository, found from this file's location so tests run
/// the same from `swift test`, an IDE, or CI's fresh clone.
public enum RepositoryPaths {
    /// The repository root.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // HavenTestSupport
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    /// `Protos/`.
    public static var protos: URL { root.appendingPathComponent("Protos") }

    /// Every `.proto` file, relative to `Protos/`, sorted.
    public static func protoFiles() throws -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: protos.path)
        var files: [String] = []
        while let path = enumerator?.nextObject() as? String {
            if path.hasSuffix(".proto") { files.append(path) }
        }
        return files.sorted()
    }

    /// `Tests/HavenServerTests/Fixtures/cli/`: examples of `haven-admin --json` output.
    public static var cliFixtures: URL {
        root.appendingPathComponent("Tests/HavenServerTests/Fixtures/cli")
    }

    /// A product built into `.build/debug` (`haven-admin`, `havend`).
    public static func product(_ name: String) -> URL {
        root.appendingPathComponent(".build/debug/\(name)")
    }

    /// `Tests/HavenProtocolTests/Fixtures/frames/`.
    public static var goldenFrames: URL {
        root.appendingPathComponent("Tests/HavenProtocolTests/Fixtures/frames")
    }
}

/// Finds an executable on `PATH`.
public func executableOnPath(_ name: String) -> URL? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    return nil
}

/// Whether this run is CI's (`CI=true`), where every external tool must be present.
public var runningInCI: Bool {
    ProcessInfo.processInfo.environment["CI"].map { $0 == "true" || $0 == "1" } ?? false
}

/// Runs a program, feeding `input` on standard input.
///
/// - Returns: Standard output, and the exit status.
public func run(
    _ executable: URL,
    _ arguments: [String],
    input: Data = Data(),
    environment: [String: String] = [:]
) throws -> (
    output: Data, error: Data, status: Int32
) {
    let stdin = Pipe()
    let stdout = Pipe()
    let stderr = Pipe()
    let process = try ChildProcess(
        executable,
        arguments: arguments,
        environment: ProcessInfo.processInfo.environment.merging(environment) { _, chosen in chosen },
        standardInput: stdin.fileHandleForReading.fileDescriptor,
        standardOutput: stdout.fileHandleForWriting.fileDescriptor,
        standardError: stderr.fileHandleForWriting.fileDescriptor
    )
    // The child's ends are its own now: closed here, so that its exit ends the reads.
    try stdin.fileHandleForReading.close()
    try stdout.fileHandleForWriting.close()
    try stderr.fileHandleForWriting.close()
    // Inputs here are a few hundred bytes, well under a pipe buffer, so writing
    // all of it before reading cannot deadlock.
    stdin.fileHandleForWriting.write(input)
    try stdin.fileHandleForWriting.close()
    // Standard error is read beside standard output: either may fill its pipe first.
    let error = Mutex(Data())
    let drained = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        let bytes = stderr.fileHandleForReading.readDataToEndOfFile()
        error.withLock { $0 = bytes }
        drained.signal()
    }
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    drained.wait()
    let status = process.waitUntilExit()
    return (output, error.withLock { $0 }, status)
}

/// The bytes a hex string spells (the golden frames' `.hex` files; surrounding whitespace ignored).
///
/// - Throws: ``HavenError`` INVALID_ARGUMENT for an odd number of digits or a non-hex character.
public func bytes(fromHex hex: String) throws -> [UInt8] {
    let digits = Array(hex.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
    guard digits.count.isMultiple(of: 2) else {
        throw HavenError(code: .invalidArgument, message: "odd number of hex digits")
    }
    return try stride(from: 0, to: digits.count, by: 2).map { index in
        guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
            throw HavenError(code: .invalidArgument, message: "not hex at offset \(index)")
        }
        return byte
    }
}
