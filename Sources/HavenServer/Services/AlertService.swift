import HavenProtocol
import HavenStore

/// `haven.v1.AlertService`: alerts raised when an accused is bailed, released, acquitted or escapes.
struct AlertService: AlertServiceHandler {
    let environment: ServiceEnvironment

    private var env: ServiceEnvironment { self.environment }

    func listAlerts(
        _ request: Haven_V1_ListAlertsRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_ListAlertsResponse {
        var filters = request
        filters.clearPage()
        var query = RecordQuery(order: .newestFirst, limit: PageToken.size(request.page))
        query.after = try PageToken.cursor(request.page, filters: filters)
        query.officeCodes = try self.env.policy.offices(context.principal, .readRecords, asked: request.officeCodes)
        if request.openOnly { query.flagged = true }
        let page = try await self.env.store.read { [query] in try $0.page(Haven_V1_Alert.self, query) }
        var response = Haven_V1_ListAlertsResponse()
        response.alerts = page.records
        response.page = try PageToken.token(after: page.next, filters: filters)
        return response
    }

    func acknowledgeAlert(
        _ request: Haven_V1_AcknowledgeAlertRequest,
        _ context: CallContext
    ) async throws -> Haven_V1_Alert {
        try Validate.text(request.acknowledgement, "acknowledgement")
        let env = self.env
        return try await env.writer.transaction(context) { tx in
            let alert = try env.writer.update(
                Haven_V1_Alert.self,
                id: request.alertID,
                expected: .required(request.expectedVersion),
                permission: .office(.writeRecords),
                context,
                tx
            ) { alert, now in
                guard alert.acknowledgedAtUnixMs == 0 else {
                    throw HavenError(code: .failedPrecondition, message: "alert already acknowledged")
                }
                alert.acknowledgedBy = context.principal.actor
                alert.acknowledgedAtUnixMs = now
                alert.acknowledgement = request.acknowledgement
                return nil
            }
            for survivorID in alert.flaggedSurvivorIds {
                guard var survivor = try tx.load(Haven_V1_Survivor.self, id: survivorID),
                    survivor.flags.contains(where: { $0.alertID == alert.id })
                else { continue }
                try env.writer.follow(&survivor, tx) { $0.flags.removeAll { $0.alertID == alert.id } }
            }
            return alert
        }
    }
}
