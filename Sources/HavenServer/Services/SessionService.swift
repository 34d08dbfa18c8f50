import HavenProtocol

/// `haven.v1.SessionService`: who the caller is.
struct SessionService: SessionServiceHandler {
    let environment: ServiceEnvironment

    func whoAmI(_ request: Haven_V1_WhoAmIRequest, _ context: CallContext) async throws -> Haven_V1_Principal {
        context.principal.wire
    }
}
