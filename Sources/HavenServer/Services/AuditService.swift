import Foundation
import HavenProtocol
import HavenStore

/// `haven.v1.AuditService`: the audit trail, for auditors. Nothing it returns
/// holds identity data: entries name pseudonymous record ids, accounts and
/// actions only.
struct AuditService: AuditServiceHandler {
    let environment: ServiceEnvironment

    private var env: ServiceEnvironment { self.environment }

    func listAuditEntries(
        _ request: Haven_V1_ListAuditEntriesRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListAuditEntriesResponse {
        try self.env.policy.check(context.principal, .readAudit)
        var filters = request
        filters.clearPage()
        var query = AuditQuery(limit: PageToken.size(request.page))
        query.newestFirst = request.newestFirst
        query.afterSequence = request.afterSequence
        if !request.principalID.isEmpty { query.principalID = request.principalID }
        if !request.action.isEmpty { query.action = request.action }
        if !request.resourceKind.isEmpty { query.resourceKind = request.resourceKind }
        if !request.resourceID.isEmpty { query.resourceID = request.resourceID }
        if request.fromUnixMs != 0 { query.fromUnixMs = request.fromUnixMs }
        if request.toUnixMs != 0 { query.toUnixMs = request.toUnixMs }
        if !request.outcomes.isEmpty { query.outcomes = request.outcomes.map(\.rawValue) }
        try Validate.require(
            request.toUnixMs == 0 || request.toUnixMs > request.fromUnixMs,
            "to_unix_ms",
            "must be after from_unix_ms"
        )
        if let cursor = try PageToken.cursor(request.page, filters: filters) {
            // The cursor's sort key is the last sequence of the previous page.
            if request.newestFirst {
                query.beforeSequence = UInt64(clamping: cursor.sortKey)
            } else {
                query.afterSequence = max(query.afterSequence, UInt64(clamping: cursor.sortKey))
            }
        }
        let limit = query.limit
        let (entries, size) = try await self.env.store.read { [query] tx in
            var extended = query
            extended.limit = limit + 1
            return (try tx.auditEntries(extended), try tx.auditSize())
        }
        var response = Haven_V1_ListAuditEntriesResponse()
        response.entries = Array(entries.prefix(limit))
        response.chainSize = size
        let next = entries.count > limit ? response.entries.last.map { Int64(clamping: $0.sequence) } : nil
        response.page = try PageToken.token(
            after: next.map { PageCursor(sortKey: $0, alias: "", id: "") },
            filters: filters
        )
        return response
    }

    func verifyAuditChain(
        _ request: Haven_V1_VerifyAuditChainRequest,
        _ context: CallContext,
        _ stream: ResponseStream<Haven_V1_VerifyAuditProgress>
    ) async throws {
        try self.env.policy.check(context.principal, .readAudit)
        let verifier = AuditVerifier(store: self.env.store, publicKey: self.env.checkpoints.publicKey)
        let verdict = try await verifier.verify(trusted: request.trustedCheckpoints) { checked, total in
            var progress = Haven_V1_VerifyAuditProgress()
            progress.checked = checked
            progress.total = total
            try await stream.send(progress)
        }
        var last = Haven_V1_VerifyAuditProgress()
        last.checked = verdict.entries
        last.total = verdict.entries
        last.verdict = verdict
        try await stream.send(last)
    }

    func listCheckpoints(
        _ request: Haven_V1_ListCheckpointsRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListCheckpointsResponse {
        try self.env.policy.check(context.principal, .readAudit)
        var filters = request
        filters.clearPage()
        let below = try PageToken.cursor(request.page, filters: filters).map { UInt64(clamping: $0.sortKey) }
        let limit = PageToken.size(request.page)
        let found = try await self.env.store.read { try $0.checkpoints(below: below, limit: limit + 1) }
        var response = Haven_V1_ListCheckpointsResponse()
        response.checkpoints = Array(found.prefix(limit))
        let next = found.count > limit ? response.checkpoints.last.map { Int64(clamping: $0.size) } : nil
        response.page = try PageToken.token(
            after: next.map { PageCursor(sortKey: $0, alias: "", id: "") },
            filters: filters
        )
        return response
    }

    func signCheckpoint(
        _ request: Haven_V1_SignCheckpointRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_AuditCheckpoint {
        try self.env.policy.check(context.principal, .readAudit)
        return try await self.env.checkpoints.sign(self.env.store, now: self.env.nowUnixMs)
    }
}
