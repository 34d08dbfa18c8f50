import HavenProtocol

/// Every service of the protocol, registered in one router.
package enum HavenServices {
    /// The router serving every method of ``MethodCatalog``.
    package static func router(_ environment: ServiceEnvironment) -> Router {
        var router = Router(
            refusals: { context, error in await environment.writer.refused(context, error) },
            statistics: environment.operations.statistics
        )
        SessionService(environment: environment).register(into: &router)
        OfficeService(environment: environment).register(into: &router)
        CaseService(environment: environment).register(into: &router)
        SurvivorService(environment: environment).register(into: &router)
        PartnerService(environment: environment).register(into: &router)
        ReferralService(environment: environment).register(into: &router)
        AlertService(environment: environment).register(into: &router)
        FeedService(environment: environment).register(into: &router)
        ReportService(environment: environment).register(into: &router)
        AuditService(environment: environment).register(into: &router)
        AccountService(environment: environment).register(into: &router)
        EnrollmentService(environment: environment, limiter: EnrollmentLimiter()).register(into: &router)
        OperationsService(environment: environment).register(into: &router)
        return router
    }
}
