import Foundation

/// A fresh directory under the system's temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let url: URL

    public init(_ label: String = "haven-test") throws {
        self.url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(label)-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
    }

    /// A directory the caller created, removed by `remove()` like a fresh one.
    public init(existing url: URL) {
        self.url = url
    }

    public func path(_ name: String) -> String {
        self.url.appendingPathComponent(name).path
    }

    public func remove() {
        try? FileManager.default.removeItem(at: self.url)
    }
}
