import HavenProtocol

/// Every service of the protocol, registered in one router.
package enum HavenServices {
    /// The router serving every method of ``MethodCatalog``.
    package static func router(_ environment: ServiceEnvironment) -> Router {
        var router = Router(
            refusals: { context, error in await environment.writer.refused(context, error) }
        )
        HavenServiceHandlers(
            accountService: AccountService(environment: environment),
            enrollmentService: EnrollmentService(environment: environment, limiter: EnrollmentLimiter()),
            alertService: AlertService(environment: environment),
            auditService: AuditService(environment: environment),
            caseService: CaseService(environment: environment),
            feedService: FeedService(environment: environment),
            officeService: OfficeService(environment: environment),
            operationsService: OperationsService(environment: environment),
            partnerService: PartnerService(environment: environment),
            referralService: ReferralService(environment: environment),
            reportService: ReportService(environment: environment),
            sessionService: SessionService(environment: environment),
            survivorService: SurvivorService(environment: environment)
        ).register(into: &router)
        return router
    }
}
