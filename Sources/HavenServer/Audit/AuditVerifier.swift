import Foundation
import HavenProtocol
import HavenStore
import SwiftProtobuf

/// Verifies the audit trail and everything it commits to.
///
/// 1. The chain: entry *n* has sequence *n*, its stored hash is SHA-256(0x00 ‖
///    its bytes), and it names entry *n−1*'s hash as its previous one. An
///    edited, deleted, inserted or reordered entry breaks this at its
///    position.
/// 2. Checkpoints: every stored checkpoint is signed by the server's key and
///    names the head hash the chain has at its size; every checkpoint the
///    caller trusts (exported earlier) likewise — which catches a chain
///    rewritten from start to end, and a chain cut short.
/// 3. What the chain commits to: every record's and account's stored bytes
///    hash to what the latest entry covering it recorded (an edited body, an
///    edited role, a rolled-back sealed identity), and every change-log entry
///    to what its entry recorded (a deleted, reordered or edited change).
///
/// 4. What reports count: the report facts (``ReportFact``), derived rows
///    outside the chain, are what the records and rows it commits to state
///    (a fact edited, inserted or deleted in the database would change a
///    report without touching any audited row).
///
/// The records, accounts, facts and changes are read in one snapshot together
/// with the chain's length, so writes that commit meanwhile do not disturb it.
package struct AuditVerifier: Sendable {
    let store: any RecordStore
    /// The key stored checkpoints must be signed with.
    let publicKey: Data
    /// Entries per read and per progress report.
    var chunk = 2_000

    package init(store: any RecordStore, publicKey: Data) {
        self.store = store
        self.publicKey = publicKey
    }

    private struct Snapshot: Sendable {
        var size: UInt64
        var hashes: [String: [UInt8]]
        var factDifferences: [String]
        var latestChange: UInt64
        var checkpoints: [Haven_V1_AuditCheckpoint]
    }

    private struct Problem {
        var sequence: UInt64
        var text: String
    }

    /// Runs the verification.
    ///
    /// - Parameters:
    ///   - trusted: Checkpoints exported earlier.
    ///   - progress: Called with (entries checked, total) after every chunk.
    package func verify(
        trusted: [Haven_V1_AuditCheckpoint] = [],
        progress: @Sendable (UInt64, UInt64) async throws -> Void = { _, _ in }
    ) async throws -> Haven_V1_AuditVerdict {
        let snapshot = try await self.store.read { tx in
            Snapshot(
                size: try tx.auditSize(),
                hashes: try tx.storedHashes(),
                factDifferences: try tx.reportFactDifferences(limit: 10),
                latestChange: try tx.latestChangeSequence(),
                checkpoints: try tx.checkpoints(below: nil, limit: Int.max)
            )
        }
        var verdict = Haven_V1_AuditVerdict()
        let total = snapshot.size
        let checkpoints = snapshot.checkpoints.map { ($0, true) } + trusted.map { ($0, false) }
        var problems: [Problem] = []
        for (checkpoint, stored) in checkpoints {
            if stored && checkpoint.publicKey != self.publicKey {
                problems.append(
                    Problem(
                        sequence: checkpoint.size,
                        text: "a stored checkpoint (size \(checkpoint.size)) is signed by another key"
                    )
                )
            } else if !CheckpointSigner.isSigned(checkpoint) {
                problems.append(
                    Problem(
                        sequence: checkpoint.size,
                        text: "the checkpoint of size \(checkpoint.size) has an invalid signature"
                    )
                )
            } else if checkpoint.size > total {
                problems.append(
                    Problem(
                        sequence: total + 1,
                        text:
                            "the chain has \(total) entries but a \(stored ? "stored" : "trusted") checkpoint covers \(checkpoint.size): entries were removed from its end"
                    )
                )
            }
        }
        let wanted = checkpoints.map(\.0).filter { $0.size <= total }
        // Only the heads checkpoints name are kept, not every entry's hash.
        let wantedSizes = Set(wanted.map(\.size))
        var heads: [UInt64: [UInt8]] = [0: AuditChain.zeroHash]

        // 1. The chain.
        var previous = AuditChain.zeroHash
        var expected: UInt64 = 1
        var latest: [String: ([UInt8], UInt64)] = [:]
        var changes: [UInt64: ([UInt8], UInt64)] = [:]
        var chainBroken = false
        while expected <= total, !chainBroken {
            let from = expected
            let entries = try await self.store.read { [chunk] in try $0.storedAuditEntries(from: from, limit: chunk) }
            if entries.isEmpty {
                problems.append(Problem(sequence: expected, text: "entry \(expected) is missing (deleted)"))
                chainBroken = true
                break
            }
            for stored in entries where stored.sequence <= total {
                if let problem = Self.check(stored, expected: expected, previous: previous) {
                    problems.append(problem)
                    chainBroken = true
                    break
                }
                let entry = try Haven_V1_AuditEntry(serializedBytes: stored.body)
                for resource in entry.resources where !resource.storedHash.isEmpty {
                    latest["\(resource.kind)/\(resource.id)"] = (Array(resource.storedHash), stored.sequence)
                }
                for change in entry.changes {
                    changes[change.sequence] = (Array(change.storedHash), stored.sequence)
                }
                previous = stored.hash
                if wantedSizes.contains(stored.sequence) { heads[stored.sequence] = stored.hash }
                expected += 1
            }
            verdict.entries = expected - 1
            try await progress(expected - 1, total)
        }
        if chainBroken {
            return Self.verdict(verdict, problems, head: previous)
        }

        // 2. Checkpoints against the chain.
        for checkpoint in wanted where CheckpointSigner.isSigned(checkpoint) {
            let size = checkpoint.size
            verdict.checkpointsChecked += 1
            if let head = heads[size], head != Array(checkpoint.headHash) {
                problems.append(
                    Problem(
                        sequence: size,
                        text:
                            "entry \(size) is not the one the checkpoint of size \(size) signed: the chain up to it was rewritten"
                    )
                )
            }
        }

        // 3. Records, accounts and changes against the chain.
        for (key, hash) in snapshot.hashes.sorted(by: { $0.key < $1.key }) {
            verdict.recordsChecked += 1
            guard let (recorded, sequence) = latest[key] else {
                problems.append(
                    Problem(sequence: total + 1, text: "\(key) is covered by no entry (written outside Haven)")
                )
                continue
            }
            if recorded != hash {
                problems.append(
                    Problem(
                        sequence: sequence,
                        text:
                            "\(key) differs from the version entry \(sequence) recorded (edited, or rolled back to an older version)"
                    )
                )
            }
        }
        for (key, (_, sequence)) in latest where snapshot.hashes[key] == nil {
            problems.append(
                Problem(sequence: sequence, text: "\(key), recorded by entry \(sequence), is gone (deleted)")
            )
        }
        var next: UInt64 = 1
        var seen = Set<UInt64>()
        while next <= snapshot.latestChange {
            let from = next
            let rows = try await self.store.read { [chunk] in try $0.changeHashes(from: from, limit: chunk) }
            guard let last = rows.last else { break }
            for (sequence, hash) in rows where sequence <= snapshot.latestChange {
                verdict.recordsChecked += 1
                seen.insert(sequence)
                guard let (recorded, entry) = changes[sequence] else {
                    problems.append(
                        Problem(sequence: total + 1, text: "change \(sequence) is covered by no entry (inserted)")
                    )
                    continue
                }
                if recorded != hash {
                    problems.append(
                        Problem(
                            sequence: entry,
                            text: "change \(sequence) differs from what entry \(entry) recorded (edited or reordered)"
                        )
                    )
                }
            }
            next = last.0 + 1
        }
        for (sequence, (_, entry)) in changes where sequence <= snapshot.latestChange && !seen.contains(sequence) {
            problems.append(
                Problem(sequence: entry, text: "change \(sequence), recorded by entry \(entry), is gone (deleted)")
            )
        }
        if let first = snapshot.factDifferences.first {
            let more = snapshot.factDifferences.count > 1 ? " (and \(snapshot.factDifferences.count - 1) more)" : ""
            problems.append(
                Problem(
                    sequence: total + 1,
                    text:
                        "the report facts of \(first)\(more) differ from what its audited record and rows state (edited, inserted or deleted)"
                )
            )
        }
        return Self.verdict(verdict, problems, head: previous)
    }

    private static func check(_ stored: StoredAuditEntry, expected: UInt64, previous: [UInt8]) -> Problem? {
        if stored.sequence != expected {
            return Problem(
                sequence: expected,
                text: "entry \(expected) is missing (deleted); the next stored is \(stored.sequence)"
            )
        }
        if AuditChain.entryHash(canonical: stored.body) != stored.hash {
            return Problem(sequence: expected, text: "entry \(expected) does not match its hash (edited)")
        }
        guard let entry = try? Haven_V1_AuditEntry(serializedBytes: stored.body) else {
            return Problem(sequence: expected, text: "entry \(expected) cannot be decoded (edited)")
        }
        if entry.sequence != expected {
            return Problem(
                sequence: expected,
                text: "entry \(expected) holds entry \(entry.sequence) (moved or reordered)"
            )
        }
        if Array(entry.previousHash) != previous {
            return Problem(
                sequence: expected,
                text:
                    "entry \(expected) does not follow entry \(expected - 1) (an entry was inserted, removed or reordered before it)"
            )
        }
        return nil
    }

    private static func verdict(
        _ verdict: Haven_V1_AuditVerdict,
        _ problems: [Problem],
        head: [UInt8]
    )
        -> Haven_V1_AuditVerdict
    {
        var verdict = verdict
        verdict.headHash = Data(head)
        guard let first = problems.min(by: { $0.sequence < $1.sequence }) else {
            verdict.intact = true
            return verdict
        }
        verdict.intact = false
        verdict.firstBadSequence = first.sequence
        verdict.problem = first.text
        return verdict
    }
}
