import Crypto
import Foundation
import HavenProtocol

/// The operator's backup key: an X25519 key pair. The public half is in
/// `haven.conf` (`backup_public_key`); the private half is kept by the
/// operator, away from the server, and only `haven-admin restore` uses it.
package struct BackupKey: Sendable {
    package let privateKey: Curve25519.KeyAgreement.PrivateKey

    /// The first line of a key file.
    static let header = "HAVEN BACKUP KEY v1 — keep offline; it decrypts every backup of its deployment"

    package init(_ privateKey: Curve25519.KeyAgreement.PrivateKey = .init()) {
        self.privateKey = privateKey
    }

    /// The public key, base64: the value of `backup_public_key`.
    package var publicKeyBase64: String { self.privateKey.publicKey.rawRepresentation.base64EncodedString() }

    /// The key file's text.
    package var fileText: String { Self.header + "\n" + self.privateKey.rawRepresentation.base64EncodedString() + "\n" }

    /// Reads a key file.
    ///
    /// - Throws: ``HavenError`` INVALID_ARGUMENT naming the file.
    package init(file path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw HavenError(code: .invalidArgument, message: "cannot read the backup key \(path)")
        }
        let lines = text.split(separator: "\n")
        guard lines.count == 2, lines[0] == Self.header, let raw = Data(base64Encoded: String(lines[1])),
            let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
        else {
            throw HavenError(
                code: .invalidArgument,
                message: "\(path) is not a backup key written by `haven-admin backup keygen`"
            )
        }
        self.privateKey = key
    }

    /// Parses `backup_public_key`.
    package static func publicKey(base64: String) throws(HavenError) -> Curve25519.KeyAgreement.PublicKey {
        guard let raw = Data(base64Encoded: base64), raw.count == 32,
            let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw)
        else {
            throw HavenError(
                code: .invalidArgument,
                message: "backup_public_key must be the base64 key `haven-admin backup keygen` prints"
            )
        }
        return key
    }

    /// First 8 bytes of SHA-256 of a public key, hex.
    package static func fingerprint(_ key: Curve25519.KeyAgreement.PublicKey) -> String {
        SHA256.hash(data: key.rawRepresentation).prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}

/// Encryption of a backup file to a recipient's X25519 key, in the manner of
/// age's STREAM: an ephemeral key agreement and HKDF give an AES-256-GCM
/// key; the plaintext is sealed in 64 KiB chunks whose nonces count them and
/// mark the last, so a file cut short, reordered or spliced does not open.
///
/// ```
/// magic "HAVENBK1" | ephemeral public key (32) | salt (16)
/// then chunks: length (u32, big-endian) | AES-GCM ciphertext and tag
/// ```
package enum BackupCipher {
    static let magic = Array("HAVENBK1".utf8)
    static let chunkSize = 64 * 1024
    static let headerSize = 8 + 32 + 16

    static func key(
        shared: SharedSecret,
        salt: [UInt8],
        ephemeral: Curve25519.KeyAgreement.PublicKey,
        recipient: Curve25519.KeyAgreement.PublicKey
    ) -> SymmetricKey {
        shared.hkdfDerivedSymmetricKey(
            using: SHA256.self,
            salt: salt,
            sharedInfo: Array("haven backup v1".utf8) + ephemeral.rawRepresentation + recipient.rawRepresentation,
            outputByteCount: 32
        )
    }

    static func nonce(_ counter: UInt64, last: Bool) throws -> AES.GCM.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for index in 0..<8 { bytes[3 + index] = UInt8((counter >> (8 * (7 - UInt64(index)))) & 0xff) }
        bytes[11] = last ? 1 : 0
        return try AES.GCM.Nonce(data: bytes)
    }

    /// Seals a plaintext stream, chunk by chunk, into `write`.
    package final class Sealer {
        private let key: SymmetricKey
        private let header: [UInt8]
        private var counter: UInt64 = 0
        private var pending: [UInt8] = []
        private let write: ([UInt8]) throws -> Void

        package init(recipient: Curve25519.KeyAgreement.PublicKey, write: @escaping ([UInt8]) throws -> Void) throws {
            let ephemeral = Curve25519.KeyAgreement.PrivateKey()
            var salt = [UInt8](repeating: 0, count: 16)
            var generator = SystemRandomNumberGenerator()
            for index in salt.indices { salt[index] = generator.next() }
            self.key = BackupCipher.key(
                shared: try ephemeral.sharedSecretFromKeyAgreement(with: recipient),
                salt: salt,
                ephemeral: ephemeral.publicKey,
                recipient: recipient
            )
            self.header = BackupCipher.magic + Array(ephemeral.publicKey.rawRepresentation) + salt
            self.write = write
            try write(self.header)
        }

        /// Adds plaintext.
        package func add(_ bytes: some Collection<UInt8>) throws {
            self.pending.append(contentsOf: bytes)
            while self.pending.count > BackupCipher.chunkSize {
                try self.seal(Array(self.pending.prefix(BackupCipher.chunkSize)), last: false)
                self.pending.removeFirst(BackupCipher.chunkSize)
            }
        }

        /// Seals what is left as the last chunk.
        package func finish() throws {
            try self.seal(self.pending, last: true)
            self.pending = []
        }

        private func seal(_ chunk: [UInt8], last: Bool) throws {
            let box = try AES.GCM.seal(
                chunk,
                using: self.key,
                nonce: try BackupCipher.nonce(self.counter, last: last),
                authenticating: self.header
            )
            let sealed = Array(box.ciphertext) + Array(box.tag)
            let length = UInt32(sealed.count)
            try self.write(
                [UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)]
                    + sealed
            )
            self.counter += 1
        }
    }

    /// Opens a sealed stream read from `read` (which returns up to n bytes,
    /// fewer only at the end), handing the plaintext to `plaintext`.
    ///
    /// - Throws: ``HavenError`` DATA_LOSS when the file is not a backup, is
    ///   for another key, or was cut short or altered.
    package static func open(
        key: BackupKey,
        read: (Int) throws -> [UInt8],
        plaintext: ([UInt8]) throws -> Void
    ) throws {
        let header = try read(Self.headerSize)
        guard header.count == Self.headerSize, Array(header.prefix(8)) == Self.magic else {
            throw HavenError(code: .dataLoss, message: "not a Haven backup file")
        }
        let ephemeral = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: header[8..<40])
        let symmetric = Self.key(
            shared: try key.privateKey.sharedSecretFromKeyAgreement(with: ephemeral),
            salt: Array(header[40..<56]),
            ephemeral: ephemeral,
            recipient: key.privateKey.publicKey
        )
        var counter: UInt64 = 0
        while true {
            let lengthBytes = try read(4)
            guard lengthBytes.count == 4 else {
                throw HavenError(code: .dataLoss, message: "the backup file is cut short (no last chunk)")
            }
            let length = lengthBytes.reduce(0) { ($0 << 8) | Int($1) }
            guard (16...(Self.chunkSize + 16)).contains(length) else {
                throw HavenError(code: .dataLoss, message: "the backup file is damaged (chunk \(counter))")
            }
            let sealed = try read(length)
            guard sealed.count == length else {
                throw HavenError(code: .dataLoss, message: "the backup file is cut short (chunk \(counter))")
            }
            let box = try AES.GCM.SealedBox(
                nonce: try Self.nonce(counter, last: false),
                ciphertext: sealed.dropLast(16),
                tag: sealed.suffix(16)
            )
            if let opened = try? AES.GCM.open(box, using: symmetric, authenticating: header) {
                try plaintext(Array(opened))
                counter += 1
                continue
            }
            let last = try AES.GCM.SealedBox(
                nonce: try Self.nonce(counter, last: true),
                ciphertext: sealed.dropLast(16),
                tag: sealed.suffix(16)
            )
            guard let opened = try? AES.GCM.open(last, using: symmetric, authenticating: header) else {
                throw HavenError(
                    code: .dataLoss,
                    message:
                        counter == 0
                        ? "the backup does not open with this key (another deployment's, or altered)"
                        : "the backup file is altered (chunk \(counter) does not verify)"
                )
            }
            try plaintext(Array(opened))
            guard try read(1).isEmpty else {
                throw HavenError(code: .dataLoss, message: "the backup file has bytes after its last chunk")
            }
            return
        }
    }
}
