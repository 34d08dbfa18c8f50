import Crypto
import Foundation
import HavenProtocol
import HavenStore
import Logging
import ServiceLifecycle

/// Signs checkpoints of the audit chain — its length and head hash — with an
/// Ed25519 key kept outside the database (`audit-signing.key`).
///
/// Someone who can write the database but not read that file cannot produce
/// a checkpoint for a chain they rewrote; a checkpoint exported earlier (and
/// kept elsewhere) catches a rewrite even by someone who has both.
package struct CheckpointSigner: Sendable {
    let key: Curve25519.Signing.PrivateKey

    package init(key: Curve25519.Signing.PrivateKey) {
        self.key = key
    }

    /// The raw public key, as checkpoints carry it.
    package var publicKey: Data { self.key.publicKey.rawRepresentation }

    static let developmentMarker = "# DEVELOPMENT KEY"

    /// Loads the signing key at `path`; it must exist.
    package static func loadExisting(at path: String) throws -> CheckpointSigner {
        guard FileManager.default.fileExists(atPath: path) else {
            throw HavenError(code: .failedPrecondition, message: "no audit signing key at \(path)")
        }
        return try self.loadOrCreate(at: path, development: false)
    }

    /// Loads the signing key at `path`, creating it (mode 0600) when absent.
    package static func loadOrCreate(at path: String, development: Bool) throws -> CheckpointSigner {
        if FileManager.default.fileExists(atPath: path) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw HavenError(code: .failedPrecondition, message: "cannot read the audit signing key at \(path)")
            }
            let line = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .first { !$0.isEmpty && !$0.hasPrefix("#") }
            guard let line, let bytes = Data(base64Encoded: line),
                let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: bytes)
            else {
                throw HavenError(
                    code: .failedPrecondition,
                    message: "the audit signing key at \(path) is not an Ed25519 key"
                )
            }
            return CheckpointSigner(key: key)
        }
        let key = Curve25519.Signing.PrivateKey()
        var text = """
            # Haven audit signing key (Ed25519): signs checkpoints of the audit chain.
            # Keep it out of database backups; whoever holds it and the database can
            # forge checkpoints for a rewritten chain. Export checkpoints elsewhere
            # (haven-admin audit checkpoint) to catch even that.

            """
        if development {
            text += "\(Self.developmentMarker): generated for this data directory only.\n"
        }
        text += key.rawRepresentation.base64EncodedString() + "\n"
        try writeSecretFile(text, to: path)
        return CheckpointSigner(key: key)
    }

    /// Signs a checkpoint of the chain as it is now and stores it.
    @discardableResult
    package func sign(_ store: any RecordStore, now: Int64) async throws -> Haven_V1_AuditCheckpoint {
        try await store.write { tx in
            let size = try tx.auditSize()
            let head =
                size == 0
                ? AuditChain.zeroHash
                : try tx.storedAuditEntries(from: size, limit: 1).first?.hash ?? AuditChain.zeroHash
            let checkpoint = try self.checkpoint(size: size, head: head, at: now)
            try tx.saveCheckpoint(checkpoint)
            return checkpoint
        }
    }

    func checkpoint(size: UInt64, head: [UInt8], at now: Int64) throws -> Haven_V1_AuditCheckpoint {
        var checkpoint = Haven_V1_AuditCheckpoint()
        checkpoint.size = size
        checkpoint.headHash = Data(head)
        checkpoint.signedAtUnixMs = now
        checkpoint.signature = try self.key.signature(
            for: AuditChain.checkpointText(size: size, head: head, signedAtUnixMs: now)
        )
        checkpoint.publicKey = self.publicKey
        return checkpoint
    }

    /// Whether a checkpoint's signature is valid for its own public key.
    package static func isSigned(_ checkpoint: Haven_V1_AuditCheckpoint) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: checkpoint.publicKey) else {
            return false
        }
        return key.isValidSignature(
            checkpoint.signature,
            for: AuditChain.checkpointText(
                size: checkpoint.size,
                head: Array(checkpoint.headHash),
                signedAtUnixMs: checkpoint.signedAtUnixMs
            )
        )
    }
}

/// Signs a checkpoint at an interval when the chain has grown, and once more
/// on graceful shutdown. A `Service` of havend's service group.
package struct CheckpointService: Service {
    let signer: CheckpointSigner
    let store: any RecordStore
    let interval: Duration
    let logger: Logger
    let now: @Sendable () -> Int64

    package init(
        signer: CheckpointSigner,
        store: any RecordStore,
        interval: Duration,
        logger: Logger,
        now: @escaping @Sendable () -> Int64
    ) {
        self.signer = signer
        self.store = store
        self.interval = interval
        self.logger = logger
        self.now = now
    }

    package func run() async throws {
        let (store, signer, logger, now, interval) = (self.store, self.signer, self.logger, self.now, self.interval)
        let sign: @Sendable (UInt64?) async -> UInt64? = { last in
            do {
                let size = try await store.read { try $0.auditSize() }
                guard size != last else { return last }
                let checkpoint = try await signer.sign(store, now: now())
                logger.debug("audit checkpoint signed", metadata: ["size": "\(checkpoint.size)"])
                return checkpoint.size
            } catch {
                logger.error("could not sign an audit checkpoint", metadata: ["error": "\(error)"])
                return last
            }
        }
        var signedSize = await sign(nil)
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard !Task.isShuttingDownGracefully, !Task.isCancelled else { break }
            signedSize = await sign(signedSize)
        }
        // Shutdown: one last checkpoint covering everything written.
        _ = await sign(signedSize)
    }
}
