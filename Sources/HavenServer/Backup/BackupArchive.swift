import Crypto
import Foundation
import HavenProtocol
import HavenStore
import SwiftProtobuf

/// What a backup holds, as its first bytes say (after decryption).
package struct BackupManifest: Codable, Sendable {
    package struct File: Codable, Sendable, Equatable {
        package var path: String
        package var bytes: UInt64
        package var sha256: String
    }

    package var format = 1
    package var createdAtUnixMs: Int64
    package var havenVersion: String
    package var auditEntries: UInt64
    package var auditHeadSHA256: String
    package var files: [File]
    package var notIncluded: [String]
}

/// A backup file: the manifest and the deployment's files, encrypted to the
/// operator's backup key (``BackupCipher``).
///
/// Plaintext layout: manifest length (u32, big-endian) | manifest (JSON) |
/// each file's bytes, in the manifest's order.
package enum BackupArchive {
    /// The data directory's files a restore needs, besides the database
    /// (which is a snapshot, not the live file). Those absent are skipped.
    static let files = [
        "master.key", "master.key.next", "audit-signing.key", "haven.conf", "tls/ca.pem", "tls/issuing.pem",
        "tls/issuing-key.pem", "tls/server.pem", "tls/server-key.pem",
    ]
    static let notIncluded = ["tls/ca-key.pem (the root CA's key: keep it offline, apart from backups)"]
    static let readSize = 1 << 20

    /// Writes a backup of a running deployment to `output`. The database is
    /// the store's snapshot as a SQLite file, `haven.sqlite`, whichever store
    /// the deployment runs on (``StoreMaintenance/snapshot(to:)``): a
    /// PostgreSQL deployment's backup restores like a SQLite one's, into
    /// either store.
    package static func create(
        directory: DataDirectory,
        store: any StoreMaintenance,
        recipient: Curve25519.KeyAgreement.PublicKey,
        output: String,
        now: Int64
    ) async throws -> Haven_V1_BackupSummary {
        let snapshotPath = directory.path("backup-snapshot-\(UUID().uuidString).sqlite")
        defer { try? FileManager.default.removeItem(atPath: snapshotPath) }
        let info = try await store.snapshot(to: snapshotPath)
        var sources: [(String, String)] = [("haven.sqlite", snapshotPath)]
        for name in Self.files where FileManager.default.fileExists(atPath: directory.path(name)) {
            sources.append((name, directory.path(name)))
        }
        var manifest = BackupManifest(
            createdAtUnixMs: now,
            havenVersion: HavenRelease.version,
            auditEntries: info.auditEntries,
            auditHeadSHA256: info.auditHead,
            files: [],
            notIncluded: Self.notIncluded
        )
        for (name, path) in sources {
            let (bytes, hash) = try Self.digest(path)
            manifest.files.append(.init(path: name, bytes: bytes, sha256: hash))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let manifestBytes = Array(try encoder.encode(manifest))

        guard FileManager.default.createFile(atPath: output, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forWritingAtPath: output)
        else {
            throw HavenError(code: .unavailable, message: "cannot write the backup file")
        }
        defer { try? handle.close() }
        var fileHash = SHA256()
        var fileBytes: UInt64 = 0
        let sealer = try BackupCipher.Sealer(recipient: recipient) { bytes in
            fileHash.update(data: bytes)
            fileBytes += UInt64(bytes.count)
            try handle.write(contentsOf: bytes)
        }
        let length = UInt32(manifestBytes.count)
        try sealer.add([
            UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff),
        ])
        try sealer.add(manifestBytes)
        for (_, path) in sources {
            guard let input = FileHandle(forReadingAtPath: path) else {
                throw HavenError(
                    code: .unavailable,
                    message: "a file of the data directory disappeared during the backup"
                )
            }
            defer { try? input.close() }
            while let chunk = try input.read(upToCount: Self.readSize), !chunk.isEmpty { try sealer.add(chunk) }
        }
        try sealer.finish()
        try handle.synchronize()

        var summary = Haven_V1_BackupSummary()
        summary.bytes = fileBytes
        summary.sha256 = fileHash.finalize().map { String(format: "%02x", $0) }.joined()
        summary.createdAtUnixMs = now
        summary.auditEntries = info.auditEntries
        summary.auditHeadSha256 = info.auditHead
        summary.files = manifest.files.map { file in
            Haven_V1_BackupFile.with {
                $0.path = file.path
                $0.bytes = file.bytes
                $0.sha256 = file.sha256
            }
        }
        summary.notIncluded = manifest.notIncluded
        summary.backupKeyFingerprint = BackupKey.fingerprint(recipient)
        return summary
    }

    /// Size and SHA-256 (hex) of a file.
    static func digest(_ path: String) throws -> (UInt64, String) {
        guard let input = FileHandle(forReadingAtPath: path) else {
            throw HavenError(code: .unavailable, message: "cannot read \(path)")
        }
        defer { try? input.close() }
        var hash = SHA256()
        var bytes: UInt64 = 0
        while let chunk = try input.read(upToCount: Self.readSize), !chunk.isEmpty {
            hash.update(data: chunk)
            bytes += UInt64(chunk.count)
        }
        return (bytes, hash.finalize().map { String(format: "%02x", $0) }.joined())
    }

    /// Decrypts a backup file into `staging`, checking every file against
    /// the manifest.
    ///
    /// - Parameter progress: Told of the encrypted bytes read so far and the file's size.
    /// - Returns: The manifest.
    /// - Throws: ``HavenError`` DATA_LOSS naming what does not match.
    package static func extract(
        _ file: String,
        key: BackupKey,
        into staging: URL,
        progress: (UInt64, UInt64) -> Void = { _, _ in }
    ) throws -> BackupManifest {
        guard let input = FileHandle(forReadingAtPath: file) else {
            throw HavenError(code: .invalidArgument, message: "cannot read \(file)")
        }
        defer { try? input.close() }
        let total = ((try? FileManager.default.attributesOfItem(atPath: file)[.size]) as? NSNumber)?.uint64Value ?? 0
        var read: UInt64 = 0
        var parser = Parser(staging: staging)
        try BackupCipher.open(
            key: key,
            read: { count in
                let bytes = Array(try input.read(upToCount: count) ?? Data())
                read += UInt64(bytes.count)
                progress(read, total)
                return bytes
            },
            plaintext: { try parser.add($0) }
        )
        return try parser.finish()
    }

    /// Splits the plaintext into the manifest and the files.
    struct Parser {
        let staging: URL
        var buffer: [UInt8] = []
        var manifest: BackupManifest?
        var index = 0
        var written: UInt64 = 0
        var hash = SHA256()
        var output: FileHandle?

        init(staging: URL) {
            self.staging = staging
        }

        mutating func add(_ bytes: [UInt8]) throws {
            guard let manifest = self.manifest else {
                self.buffer += bytes
                guard self.buffer.count >= 4 else { return }
                let length = self.buffer.prefix(4).reduce(0) { ($0 << 8) | Int($1) }
                guard length <= 1 << 20 else {
                    throw HavenError(code: .dataLoss, message: "the backup's manifest is damaged")
                }
                guard self.buffer.count >= 4 + length else { return }
                guard
                    let decoded = try? JSONDecoder().decode(
                        BackupManifest.self,
                        from: Data(self.buffer[4..<(4 + length)])
                    ),
                    decoded.format == 1
                else {
                    throw HavenError(code: .dataLoss, message: "the backup's manifest is damaged or of a newer format")
                }
                for file in decoded.files {
                    guard BackupArchive.files.contains(file.path) || file.path == "haven.sqlite" else {
                        throw HavenError(code: .dataLoss, message: "the backup names an unexpected file")
                    }
                }
                self.manifest = decoded
                let rest = Array(self.buffer[(4 + length)...])
                self.buffer = []
                try self.add(rest)
                return
            }
            var remaining = bytes[...]
            while !remaining.isEmpty {
                guard self.index < manifest.files.count else {
                    throw HavenError(code: .dataLoss, message: "the backup holds more bytes than its manifest lists")
                }
                let file = manifest.files[self.index]
                if self.output == nil { self.output = try self.open(file.path) }
                let take = Int(min(UInt64(remaining.count), file.bytes - self.written))
                let part = remaining.prefix(take)
                try self.output?.write(contentsOf: part)
                self.hash.update(data: Array(part))
                self.written += UInt64(take)
                remaining = remaining.dropFirst(take)
                if self.written == file.bytes { try self.close(file) }
            }
        }

        private func open(_ path: String) throws -> FileHandle {
            let url = self.staging.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            guard
                FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]),
                let handle = FileHandle(forWritingAtPath: url.path)
            else { throw HavenError(code: .unavailable, message: "cannot write \(url.path)") }
            return handle
        }

        private mutating func close(_ file: BackupManifest.File) throws {
            try self.output?.synchronize()
            try self.output?.close()
            self.output = nil
            let digest = self.hash.finalize().map { String(format: "%02x", $0) }.joined()
            guard digest == file.sha256 else {
                throw HavenError(code: .dataLoss, message: "\(file.path) in the backup does not match its manifest")
            }
            self.hash = SHA256()
            self.written = 0
            self.index += 1
        }

        mutating func finish() throws -> BackupManifest {
            guard let manifest = self.manifest else {
                throw HavenError(code: .dataLoss, message: "the backup holds no manifest")
            }
            // Files of no bytes are complete without any data.
            while self.index < manifest.files.count, manifest.files[self.index].bytes == 0 {
                self.output = try self.open(manifest.files[self.index].path)
                try self.close(manifest.files[self.index])
            }
            guard self.index == manifest.files.count else {
                throw HavenError(code: .dataLoss, message: "the backup ends before its last file")
            }
            return manifest
        }
    }
}
