import HavenProtocol

/// `haven.v1.SessionService`: who the caller is.
struct SessionService {
    let environment: ServiceEnvironment

    func register(into router: inout Router) {
        router.register(MethodCatalog.SessionService.whoAmI) { _, context in context.principal.wire }
    }
}
