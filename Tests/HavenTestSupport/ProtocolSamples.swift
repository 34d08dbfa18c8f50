import HavenProtocol
import SwiftProtobuf

/// One populated value of every message in `Protos/`, with fictional data.
///
/// Every field that a message declares is set to a non-default value somewhere
/// in these samples, so a round trip exercises each field's encoding. Samples
/// are written in protobuf text format: the same notation `protoc --decode`
/// prints, which keeps them readable next to the schema.
public enum ProtocolSamples {
    /// Parses a text-format sample; a typo in a sample is a test failure, not a crash.
    public static func parse<M: SwiftProtobuf.Message>(_ type: M.Type, _ text: String) throws -> M {
        try M(textFormatString: text)
    }

    static let actor = #"principal_id: "usr-7f3a" display_name: "Caseworker Ananya (fictional)""#
    static let date = "year: 2026 month: 3 day: 14"

    /// Text-format samples keyed by full protobuf message name.
    public static let texts: [String: String] = [
        // common.proto
        "haven.v1.CivilDate": date,
        "haven.v1.DateRange": "first_day { \(date) } last_day { year: 2026 month: 12 day: 31 }",
        "haven.v1.PageRequest": #"page_size: 100 page_token: "cGFnZS0y""#,
        "haven.v1.PageInfo": #"next_page_token: "cGFnZS0z""#,
        "haven.v1.Actor": actor,

        // office.proto
        "haven.v1.Office": office,
        "haven.v1.CreateOfficeRequest": "office { \(office) } idempotency_key: \"c0ffee-01\"",
        "haven.v1.GetOfficeRequest": #"code: "KOL""#,
        "haven.v1.ListOfficesRequest": "page { page_size: 10 } status: OFFICE_STATUS_ACTIVE",
        "haven.v1.ListOfficesResponse": "offices { \(office) } page { next_page_token: \"b2ZmLTI=\" }",
        "haven.v1.UpdateOfficeRequest":
            #"code: "KOL" expected_version: 3 name: "Kolkata North" city: "Kolkata" time_zone: "Asia/Kolkata" retention { identity_years_after_closure: 5 }"#,
        "haven.v1.CloseOfficeRequest": #"code: "MNL" expected_version: 9"#,
        "haven.v1.RetentionPolicy": retention,
        "haven.v1.RetentionItem": retentionItem,
        "haven.v1.PreviewRetentionRequest": #"office_code: "KOL""#,
        "haven.v1.RetentionPlan": "items { \(retentionItem) } as_of_unix_ms: 1780000000000",
        "haven.v1.RotateKeysRequest": #"office_codes: "KOL" office_codes: "MNL""#,
        "haven.v1.RotateKeysResponse":
            #"master_key_fingerprint: "0a1b2c3d4e5f6071" offices_rotated: 2 record_keys_rewrapped: 118"#,

        // audit.proto
        "haven.v1.AuditResource": auditResource,
        "haven.v1.AuditChange": #"sequence: 41 stored_hash: "\x01\x02""#,
        "haven.v1.AuditEntry": auditEntry,
        "haven.v1.AuditCheckpoint": checkpoint,
        "haven.v1.ListAuditEntriesRequest":
            #"page { page_size: 20 } principal_id: "usr-7f3a" action: "haven.v1.SurvivorService/GetSurvivor" resource_kind: "survivor" resource_id: "srv-1" from_unix_ms: 1767225600000 to_unix_ms: 1780000000000 outcomes: STATUS_CODE_PERMISSION_DENIED after_sequence: 40 newest_first: true"#,
        "haven.v1.ListAuditEntriesResponse":
            "entries { \(auditEntry) } page { next_page_token: \"YXVkaXQ\" } chain_size: 42",
        "haven.v1.VerifyAuditChainRequest": "trusted_checkpoints { \(checkpoint) }",
        "haven.v1.VerifyAuditProgress": "checked: 42 total: 42 verdict { \(verdict) }",
        "haven.v1.AuditVerdict": verdict,
        "haven.v1.ListCheckpointsRequest": "page { page_size: 5 }",
        "haven.v1.ListCheckpointsResponse": "checkpoints { \(checkpoint) } page { next_page_token: \"Y3A\" }",
        "haven.v1.SignCheckpointRequest": "",

        // case.proto
        "haven.v1.AccusedStatusChange":
            #"status: ACCUSED_LEGAL_STATUS_ON_BAIL effective_on { \#(date) } event_id: "evt-3" sequence: 3"#,
        "haven.v1.Accused": accused,
        "haven.v1.RescueOperation":
            #"place: "Fictional district, lane 4" people_rescued: 11 minors_rescued: 7 led_by: "AHTU Fictional""#,
        "haven.v1.Arrest": #"accused_ids: "acc-1" accused_ids: "acc-2" agency: "AHTU Fictional" place: "Bus depot""#,
        "haven.v1.ChargeSheet":
            #"accused_ids: "acc-1" charges: "IPC 370, 372; ITPA 5" court: "Sessions Court 2" filing_reference: "SC-118/2026""#,
        "haven.v1.Hearing":
            #"court: "Sessions Court 2" summary: "Evidence recorded" next_hearing_on { year: 2026 month: 5 day: 2 }"#,
        "haven.v1.Conviction":
            #"accused_ids: "acc-1" court: "Sessions Court 2" sentence: "10 years rigorous imprisonment" sentence_months: 120 fine_minor_units: 5000000 fine_currency: "INR""#,
        "haven.v1.Acquittal": #"accused_ids: "acc-2" court: "Sessions Court 2" grounds: "Benefit of doubt""#,
        "haven.v1.BailGranted": #"accused_ids: "acc-1" court: "High Court" conditions: "Weekly reporting; no contact""#,
        "haven.v1.AppealFiled": #"accused_ids: "acc-1" filed_by: APPEAL_PARTY_DEFENCE court: "High Court""#,
        "haven.v1.AppealDecided":
            #"accused_ids: "acc-1" court: "High Court" outcome: APPEAL_OUTCOME_CONVICTION_OVERTURNED"#,
        "haven.v1.ReArrest": #"accused_ids: "acc-1" reason: "Bail condition broken" returned_to_prison: true"#,
        "haven.v1.Release": #"accused_ids: "acc-1" reason: RELEASE_REASON_PAROLE"#,
        "haven.v1.Absconded": #"accused_ids: "acc-2""#,
        "haven.v1.CaseNote": #"text: "Follow-up visit planned (fictional)""#,
        "haven.v1.CaseStatusChanged":
            #"previous_status: CASE_STATUS_INVESTIGATION new_status: CASE_STATUS_PROSECUTION reason: "Charge sheet filed""#,
        "haven.v1.CaseEvent": caseEvent,
        "haven.v1.Case": fullCase,
        "haven.v1.OpenCaseRequest":
            #"office_code: "KOL" category: CASE_CATEGORY_SEX_TRAFFICKING title: "Raid, fictional lane" police_reference: "FIR 212/2026" status: CASE_STATUS_INVESTIGATION idempotency_key: "open-1""#,
        "haven.v1.GetCaseRequest": #"reference: "KOL-2026-0007""#,
        "haven.v1.ListCasesRequest":
            "page { page_size: 20 } office_codes: \"KOL\" statuses: CASE_STATUS_PROSECUTION categories: CASE_CATEGORY_FORCED_LABOUR opened { first_day { \(date) } } updated_since_unix_ms: 1767225600000 view: CASE_VIEW_FULL",
        "haven.v1.ListCasesResponse": "cases { \(fullCase) } page { next_page_token: \"Y2FzZS0y\" }",
        "haven.v1.ListCaseEventsRequest":
            #"case_id: "case-1" page { page_size: 100 page_token: "ZXZ0LTI" } after_sequence: 20"#,
        "haven.v1.ListCaseEventsResponse":
            "events { \(caseEvent) } page { next_page_token: \"ZXZ0LTM\" } event_count: 140",
        "haven.v1.ListAccusedHistoryRequest":
            #"case_id: "case-1" accused_id: "acc-1" page { page_size: 50 page_token: "YWNjLTI" } after_sequence: 4"#,
        "haven.v1.ListAccusedHistoryResponse":
            #"history { status: ACCUSED_LEGAL_STATUS_IN_CUSTODY effective_on { \#(date) } event_id: "evt-9" sequence: 5 } page { next_page_token: "YWNjLTM" } history_count: 12"#,
        "haven.v1.UpdateCaseRequest":
            #"case_id: "case-1" expected_version: 4 category: CASE_CATEGORY_CHILD_LABOUR title: "Factory raid" police_reference: "FIR 9/2026""#,
        "haven.v1.UpdateCaseStatusRequest":
            #"case_id: "case-1" expected_version: 5 status: CASE_STATUS_AFTERCARE reason: "Judgment delivered""#,
        "haven.v1.AppendCaseEventRequest":
            "case_id: \"case-1\" expected_version: 6 event { \(caseEvent) } idempotency_key: \"evt-key-1\"",
        "haven.v1.AddAccusedRequest":
            "case_id: \"case-1\" expected_version: 7 accused { \(accused) } idempotency_key: \"acc-key-1\"",
        "haven.v1.LinkSurvivorRequest": #"case_id: "case-1" expected_version: 8 survivor_id: "srv-1""#,

        // survivor.proto
        "haven.v1.Address": address,
        "haven.v1.Contact": #"label: "guardian mobile" value: "+91 00000 00000""#,
        "haven.v1.SurvivorIdentity": identity,
        "haven.v1.Consent": consent,
        "haven.v1.ServiceRecord": serviceRecord,
        "haven.v1.Placement": placement,
        "haven.v1.SurvivorFlag":
            #"alert_id: "alr-1" reason: "KOL-2026-0007: bail granted" raised_at_unix_ms: 1773446400000"#,
        "haven.v1.Survivor": survivor,
        "haven.v1.RegisterSurvivorRequest":
            "office_code: \"MNL\" age_at_intake: 15 intake_on { \(date) } identity { \(identity) } status: SURVIVOR_STATUS_IN_AFTERCARE idempotency_key: \"reg-1\"",
        "haven.v1.GetSurvivorRequest": #"code: "MNL-S-0042" include_identity: true"#,
        "haven.v1.ListSurvivorsRequest":
            "page { page_size: 50 } office_codes: \"MNL\" statuses: SURVIVOR_STATUS_REINTEGRATED case_id: \"case-1\" flagged_only: true intake { last_day { \(date) } } updated_since_unix_ms: 1767225600000",
        "haven.v1.ListSurvivorsResponse": "survivors { code: \"MNL-S-0042\" } page { next_page_token: \"c3J\" }",
        "haven.v1.UpdateSurvivorRequest":
            "survivor_id: \"srv-1\" expected_version: 2 identity { \(identity) } age_at_intake: 16",
        "haven.v1.ListSurvivorServicesRequest":
            #"survivor_id: "srv-1" page { page_size: 100 page_token: "c3ZjLTI" } after_sequence: 2"#,
        "haven.v1.ListSurvivorServicesResponse":
            "services { \(serviceRecord) } page { next_page_token: \"c3ZjLTM\" } service_count: 140",
        "haven.v1.RecordServiceRequest":
            "survivor_id: \"srv-1\" expected_version: 3 service { \(serviceRecord) } idempotency_key: \"svc-1\"",
        "haven.v1.SetPlacementRequest": "survivor_id: \"srv-1\" expected_version: 4 placement { \(placement) }",
        "haven.v1.UpdateSurvivorStatusRequest":
            #"survivor_id: "srv-1" expected_version: 5 status: SURVIVOR_STATUS_REINTEGRATED reason: "Family assessment positive""#,
        "haven.v1.GrantConsentRequest": "survivor_id: \"srv-1\" expected_version: 6 consent { \(consent) }",
        "haven.v1.WithdrawConsentRequest":
            #"survivor_id: "srv-1" expected_version: 7 consent_id: "cns-1" reason: "Survivor asked""#,
        "haven.v1.EraseSurvivorRequest":
            #"survivor_id: "srv-1" expected_version: 8 reason: "Retention period over, no proceedings""#,

        // partner.proto
        "haven.v1.PartnerOrganisation": partner,
        "haven.v1.RegisterPartnerRequest": "partner { \(partner) } idempotency_key: \"ptn-1\"",
        "haven.v1.GetPartnerRequest": #"partner_id: "ptn-1""#,
        "haven.v1.ListPartnersRequest":
            "page { page_size: 5 } office_codes: \"MNL\" kind: PARTNER_KIND_NGO service: SERVICE_KIND_LEGAL_AID",
        "haven.v1.ListPartnersResponse": "partners { \(partner) } page { next_page_token: \"cHRu\" }",
        "haven.v1.Referral": referral,
        "haven.v1.CreateReferralRequest":
            #"survivor_id: "srv-1" partner_id: "ptn-1" service: SERVICE_KIND_VOCATIONAL_TRAINING note: "Interested in baking" idempotency_key: "ref-1""#,
        "haven.v1.GetReferralRequest": #"referral_id: "ref-1""#,
        "haven.v1.ListReferralsRequest":
            #"page { page_size: 25 } partner_id: "ptn-1" survivor_id: "srv-1" statuses: REFERRAL_STATUS_PENDING updated_since_unix_ms: 1767225600000"#,
        "haven.v1.ListReferralsResponse": "referrals { \(referral) } page { next_page_token: \"cmVm\" }",
        "haven.v1.TransitionReferralRequest":
            #"referral_id: "ref-1" expected_version: 2 resolution: "Enrolled in the March batch""#,

        // alert.proto
        "haven.v1.Alert": alert,
        "haven.v1.ListAlertsRequest": #"page { page_size: 10 } office_codes: "KOL" open_only: true"#,
        "haven.v1.ListAlertsResponse": "alerts { \(alert) } page { next_page_token: \"YWxy\" }",
        "haven.v1.AcknowledgeAlertRequest":
            #"alert_id: "alr-1" expected_version: 1 acknowledgement: "Safety plan reviewed""#,

        // feed.proto
        "haven.v1.ChangeEvent": changeEvent,
        "haven.v1.CaughtUp": #"cursor: "Y3Vyc29yLTQy""#,
        "haven.v1.FeedItem": "change { \(changeEvent) }",
        "haven.v1.SubscribeRequest":
            #"start: FEED_START_AFTER_CURSOR cursor: "Y3Vyc29yLTQy" office_codes: "MNL" subjects: FEED_SUBJECT_REFERRAL follow: true"#,

        // report.proto
        "haven.v1.CaseStatusCount": "status: CASE_STATUS_PROSECUTION count: 12",
        "haven.v1.ServiceCount": "kind: SERVICE_KIND_COUNSELLING count: 40 survivors: 17",
        "haven.v1.OfficeReport": report,
        "haven.v1.GetOfficeReportRequest":
            "office_code: \"KOL\" period { first_day { year: 2026 month: 1 day: 1 } last_day { year: 2026 month: 3 day: 31 } }",

        // session.proto
        "haven.v1.Principal":
            #"id: "usr-7f3a" display_name: "Director (fictional)" role: ROLE_DIRECTOR office_codes: "KOL" office_codes: "MUM" partner_id: "ptn-0" certificate_expires_at_unix_ms: 1780000000000"#,
        "haven.v1.WhoAmIRequest": "",

        "haven.v1.UpdatePartnerRequest":
            #"partner_id: "ptn-asha" expected_version: 2 name: "Asha Home (fictional)" contact: "office@asha.example" change_offices: true office_codes: "KOL" change_services: true services: SERVICE_KIND_SCHOOLING"#,
        "haven.v1.SetPartnerActiveRequest":
            #"partner_id: "ptn-asha" expected_version: 3 reason: "contract ended (fictional)""#,

        // operations.proto
        "haven.v1.GetServerStatusRequest": "",
        "haven.v1.ServerStatus":
            #"version: "0.3.0" started_at_unix_ms: 1780000000000 connections: 12 calls_per_second: 41.5 calls_total: 90210 database_bytes: 52428800 audit_entries: 120344 last_backup_at_unix_ms: 1779990000000 last_backup_sha256: "9f2c" accounts: 40 accounts_enabled: 37 certificates_expiring_soon: 2 server_certificate_expires_at_unix_ms: 1800000000000 development: true backup_key_fingerprint: "a1b2c3d4e5f60718" handshake_failures: 310 connections_refused: 4 write_stalls: 1 ready: false readiness_problems: "store: the database reached its size limit" calls_in_flight: 3 calls_failed_last_minute: 2 soonest_certificate_expires_at_unix_ms: 1782592000000"#,
        "haven.v1.CreateBackupRequest": "",
        "haven.v1.BackupFile": #"path: "haven.sqlite" bytes: 52428800 sha256: "77aa""#,
        "haven.v1.BackupSummary":
            #"bytes: 52500000 sha256: "9f2c" created_at_unix_ms: 1779990000000 audit_entries: 120344 audit_head_sha256: "5be1" files { path: "master.key" bytes: 120 sha256: "01ff" } not_included: "tls/ca-key.pem" backup_key_fingerprint: "a1b2c3d4e5f60718""#,
        "haven.v1.BackupChunk": #"data: "HAVENBK1" summary { bytes: 8 sha256: "00" }"#,
        "haven.v1.FeedReset": #"resume_cursor: "djI6YWIxMjoxMDA""#,

        // account.proto
        "haven.v1.Credential":
            #"serial: "5f0c2a91d3e4b7a8" account_id: "asha-home" public_key_sha256: "9b1e" issued_at_unix_ms: 1780000000000 not_valid_after_unix_ms: 1782592000000 state: CREDENTIAL_STATE_REVOKED revoked_at_unix_ms: 1781000000000 revoked_by: "admin" revoked_reason: "laptop lost (fictional)" issued_by: "enrolment""#,
        "haven.v1.Account":
            #"id: "asha-home" display_name: "Asha Home (fictional)" role: ROLE_PARTNER partner_id: "ptn-asha" enabled: true created_at_unix_ms: 1780000000000 credentials { serial: "5f0c2a91d3e4b7a8" account_id: "asha-home" public_key_sha256: "9b1e" issued_at_unix_ms: 1780000000000 not_valid_after_unix_ms: 1782592000000 state: CREDENTIAL_STATE_REVOKED revoked_at_unix_ms: 1781000000000 revoked_by: "admin" revoked_reason: "laptop lost (fictional)" issued_by: "enrolment" }"#,
        "haven.v1.Enrollment":
            #"code: "7K3QF-M9X2B-HT4WZ-0PC8R-V6N1D-Q" account_id: "asha-home" expires_at_unix_ms: 1780086400000 ca_certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n""#,
        "haven.v1.CreateAccountRequest":
            #"account { id: "worker-kol-2" display_name: "Caseworker (fictional)" role: ROLE_CASEWORKER office_codes: "KOL" } enrollment_valid_hours: 48 certificate_valid_days: 90"#,
        "haven.v1.CreateAccountResponse":
            #"account { id: "asha-home" display_name: "Asha Home (fictional)" role: ROLE_PARTNER partner_id: "ptn-asha" enabled: true created_at_unix_ms: 1780000000000 } enrollment { code: "7K3QF-M9X2B-HT4WZ-0PC8R-V6N1D-Q" account_id: "asha-home" expires_at_unix_ms: 1780086400000 ca_certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" }"#,
        "haven.v1.GetAccountRequest": #"account_id: "asha-home""#,
        "haven.v1.ListAccountsRequest": "page { page_size: 20 } role: ROLE_PARTNER",
        "haven.v1.ListAccountsResponse":
            #"accounts { id: "asha-home" display_name: "Asha Home (fictional)" role: ROLE_PARTNER partner_id: "ptn-asha" enabled: true created_at_unix_ms: 1780000000000 } page { next_page_token: "YWNjLTI=" }"#,
        "haven.v1.UpdateAccountRequest":
            #"account_id: "worker-kol" display_name: "Caseworker (fictional)" role: ROLE_DIRECTOR change_offices: true office_codes: "KOL" office_codes: "MUM" change_partner: true partner_id: """#,
        "haven.v1.SetAccountEnabledRequest": #"account_id: "worker-kol" reason: "left the organisation (fictional)""#,
        "haven.v1.IssueEnrollmentRequest": #"account_id: "asha-home" enrollment_valid_hours: 24"#,
        "haven.v1.RevokeCredentialRequest": #"serial: "5f0c2a91d3e4b7a8" reason: "laptop lost (fictional)""#,
        "haven.v1.EnrollRequest": #"code: "7K3QF-M9X2B-HT4WZ-0PC8R-V6N1D-Q" csr_der: "0\202\001""#,
        "haven.v1.RenewCredentialRequest": #"csr_der: "0\202\001""#,
        "haven.v1.IssuedCredential":
            #"certificate_chain_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" ca_certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n" credential { serial: "5f0c2a91d3e4b7a8" account_id: "asha-home" public_key_sha256: "9b1e" issued_at_unix_ms: 1780000000000 not_valid_after_unix_ms: 1782592000000 state: CREDENTIAL_STATE_REVOKED revoked_at_unix_ms: 1781000000000 revoked_by: "admin" revoked_reason: "laptop lost (fictional)" issued_by: "enrolment" }"#,

        // rpc.proto
        "haven.v1.ClientEnvelope":
            #"call_id: 7 start { method: "haven.v1.OfficeService/GetOffice" timeout_ms: 5000 payload: "\n\003KOL" initial_credit: 32 }"#,
        "haven.v1.ServerEnvelope":
            #"call_id: 7 end { code: STATUS_CODE_FAILED_PRECONDITION message: "stale version" payload: "\001" details { version_conflict { current_version: 4 } } }"#,
        "haven.v1.Hello": #"protocol_versions: 1 protocol_versions: 2 client_agent: "haven-swift/1.0""#,
        "haven.v1.ConnectionLimits":
            "max_frame_bytes: 4194304 max_concurrent_calls: 100 default_timeout_ms: 30000 max_timeout_ms: 300000 idle_timeout_ms: 300000",
        "haven.v1.ServerHello":
            #"protocol_version: 1 server_agent: "havend/1.0" limits { max_frame_bytes: 4194304 max_concurrent_calls: 100 }"#,
        "haven.v1.CallStart":
            #"method: "haven.v1.FeedService/Subscribe" timeout_ms: 60000 payload: "(\001" initial_credit: 64 trace_context { name: "traceparent" value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" }"#,
        "haven.v1.TraceHeader": #"name: "tracestate" value: "haven=fictional""#,
        "haven.v1.CallCancel": "",
        "haven.v1.StreamCredit": "messages: 16",
        "haven.v1.Ping": "opaque: 18446744073709551615",
        "haven.v1.CallMessage": #"payload: "\022\000""#,
        "haven.v1.VersionConflict": "current_version: 12",
        "haven.v1.FieldViolation": #"field: "office.time_zone" description: "not an IANA time zone""#,
        "haven.v1.RetryInfo": "retry_after_ms: 250",
        "haven.v1.ErrorDetail": #"field_violation { field: "title" description: "required" }"#,
        "haven.v1.CallEnd":
            #"code: STATUS_CODE_NOT_FOUND message: "no case with that id" details { retry { retry_after_ms: 5 } }"#,
        "haven.v1.Pong": "opaque: 42",
        "haven.v1.GoAway": #"last_call_id: 99 code: STATUS_CODE_UNAVAILABLE message: "server shutting down""#,
    ]

    /// More samples for oneof alternatives that `texts` leaves out, so every
    /// field of every message is set in at least one sample.
    public static let variants: [(name: String, text: String)] = [
        ("haven.v1.GetCaseRequest", #"case_id: "case-1""#),
        ("haven.v1.GetSurvivorRequest", #"survivor_id: "srv-1""#),
        ("haven.v1.ChangeEvent", "cursor: \"b2ZmaWNl\" kind: CHANGE_KIND_CREATED office { \(office) }"),
        ("haven.v1.ChangeEvent", "cursor: \"Y2FzZQ==\" case_record { \(fullCase) }"),
        ("haven.v1.ChangeEvent", "cursor: \"c3Vydg==\" survivor { code: \"MNL-S-0042\" }"),
        ("haven.v1.ChangeEvent", "cursor: \"cHRu\" partner { \(partner) }"),
        ("haven.v1.ChangeEvent", "cursor: \"YWxy\" kind: CHANGE_KIND_ACCESS_REVOKED alert { \(alert) }"),
        ("haven.v1.FeedItem", #"caught_up { cursor: "Y3Vyc29yLTQy" }"#),
        ("haven.v1.ClientEnvelope", #"hello { protocol_versions: 1 client_agent: "haven-swift/1.0" }"#),
        ("haven.v1.ClientEnvelope", "call_id: 3 cancel { }"),
        ("haven.v1.ClientEnvelope", "call_id: 3 credit { messages: 16 }"),
        ("haven.v1.ClientEnvelope", "ping { opaque: 1 }"),
        ("haven.v1.ServerEnvelope", #"hello { protocol_version: 1 server_agent: "havend/1.0" }"#),
        ("haven.v1.ServerEnvelope", #"call_id: 3 message { payload: "\001\002" }"#),
        ("haven.v1.ServerEnvelope", "pong { opaque: 1 }"),
        ("haven.v1.ServerEnvelope", #"go_away { last_call_id: 3 code: STATUS_CODE_UNAVAILABLE message: "bye" }"#),
        ("haven.v1.ErrorDetail", "version_conflict { current_version: 3 }"),
        ("haven.v1.ErrorDetail", "retry { retry_after_ms: 100 }"),
        ("haven.v1.ErrorDetail", #"feed_reset { resume_cursor: "djI6YWIxMjoxMDA" }"#),
    ]

    static let retention = "identity_years_after_closure: 7 case_notes_years_after_closure: 10"

    static let office =
        #"code: "KOL" name: "Kolkata field office" city: "Kolkata" country: "IN" time_zone: "Asia/Kolkata" status: OFFICE_STATUS_CLOSED version: 3 created_at_unix_ms: 1767225600000 updated_at_unix_ms: 1767312000000 closed_at_unix_ms: 1767398400000 retention { \#(retention) }"#

    static let retentionItem =
        #"what: "identity" record_id: "srv-1" code: "KOL-S-0001" due_at_unix_ms: 1780000000000 held: true hold: "KOL-2026-0007""#

    static let auditResource =
        #"kind: "survivor" id: "srv-1" office_code: "KOL" version: 3 stored_hash: "\x00\x01" disclosed: "identity""#

    static let auditEntry =
        #"sequence: 42 at_unix_ms: 1773446400000 principal_id: "usr-7f3a" principal_role: ROLE_CASEWORKER action: "haven.v1.SurvivorService/GetSurvivor" resources { \#(auditResource) } outcome: STATUS_CODE_OK request_id: "7/12" changes { sequence: 41 stored_hash: "\x02" } detail: "identity read" previous_hash: "\x03" entry_hash: "\x04""#

    static let checkpoint =
        #"size: 42 head_hash: "\x04" signed_at_unix_ms: 1773446400000 signature: "\x05" public_key: "\x06""#

    static let verdict =
        #"intact: false first_bad_sequence: 17 problem: "entry 17 does not match its hash (edited)" entries: 42 head_hash: "\x04" records_checked: 90 checkpoints_checked: 3"#

    static let accused =
        #"id: "acc-1" name: "Fictional Accused One" aliases: "Boss" aliases: "Uncle" role: ACCUSED_ROLE_BROTHEL_KEEPER legal_status: ACCUSED_LEGAL_STATUS_ON_BAIL history { status: ACCUSED_LEGAL_STATUS_IN_CUSTODY effective_on { year: 2026 month: 1 day: 9 } event_id: "evt-2" sequence: 2 } history { status: ACCUSED_LEGAL_STATUS_ON_BAIL effective_on { \#(date) } event_id: "evt-3" sequence: 3 } history_count: 3"#

    static let caseEvent =
        #"id: "evt-1" sequence: 1 occurred_on { \#(date) } recorded_at_unix_ms: 1773446400000 recorded_by { \#(actor) } rescue_operation { place: "Fictional district" people_rescued: 11 minors_rescued: 7 led_by: "AHTU Fictional" }"#

    static let events = [
        "arrest { accused_ids: \"acc-1\" agency: \"AHTU\" place: \"Depot\" }",
        "charge_sheet { accused_ids: \"acc-1\" charges: \"IPC 370\" court: \"SC 2\" filing_reference: \"SC-1\" }",
        "hearing { court: \"SC 2\" summary: \"Adjourned\" next_hearing_on { \(date) } }",
        "conviction { accused_ids: \"acc-1\" court: \"SC 2\" sentence: \"7 years\" sentence_months: 84 fine_minor_units: 100 fine_currency: \"INR\" }",
        "acquittal { accused_ids: \"acc-2\" court: \"SC 2\" grounds: \"Hostile witness\" }",
        "bail_granted { accused_ids: \"acc-1\" court: \"HC\" conditions: \"Reporting\" }",
        "appeal_filed { accused_ids: \"acc-1\" filed_by: APPEAL_PARTY_PROSECUTION court: \"HC\" }",
        "appeal_decided { accused_ids: \"acc-1\" court: \"HC\" outcome: APPEAL_OUTCOME_UPHELD }",
        "re_arrest { accused_ids: \"acc-1\" reason: \"Warrant\" returned_to_prison: true }",
        "release { accused_ids: \"acc-1\" reason: RELEASE_REASON_SENTENCE_SERVED }",
        "absconded { accused_ids: \"acc-2\" }",
        "note { text: \"Fictional note\" }",
        "status_changed { previous_status: CASE_STATUS_INTAKE new_status: CASE_STATUS_INVESTIGATION reason: \"FIR\" }",
    ]

    static let fullCase: String = {
        var text =
            #"id: "case-1" reference: "KOL-2026-0007" office_code: "KOL" version: 9 category: CASE_CATEGORY_SEX_TRAFFICKING status: CASE_STATUS_PROSECUTION title: "Raid, fictional lane 4" police_reference: "FIR 212/2026" opened_at_unix_ms: 1767225600000 updated_at_unix_ms: 1773446400000 closed_at_unix_ms: 1780000000000 opened_by { \#(actor) } "#
        text += "events { \(caseEvent) } "
        for (index, detail) in events.enumerated() {
            text += "events { id: \"evt-\(index + 2)\" sequence: \(index + 2) occurred_on { \(date) } \(detail) } "
        }
        text +=
            "accused { \(accused) } survivor_ids: \"srv-1\" survivor_ids: \"srv-2\" event_count: \(events.count + 1) opened_on { \(date) }"
        return text
    }()

    static let address =
        #"lines: "House 1, fictional street" lines: "Near the temple" city: "Fictional Town" region: "Fictional District" postal_code: "700000" country: "IN""#

    static let identity =
        #"legal_name: "Fictional Survivor Name" other_names: "Nickname" date_of_birth { year: 2011 month: 6 day: 1 } gender: "female" nationality: "IN" languages: "bn" languages: "hi" contacts { label: "guardian mobile" value: "+91 00000 00000" } home_address { \#(address) } current_address { city: "Fictional City" } notes: "Fictional notes""#

    static let consent =
        #"id: "cns-1" partner_id: "ptn-1" scopes: CONSENT_SCOPE_NAME scopes: CONSENT_SCOPE_SERVICES purpose: "Vocational training enrolment" given_by: CONSENT_GIVER_GUARDIAN given_on { \#(date) } expires_at_unix_ms: 1800000000000 withdrawn_at_unix_ms: 1790000000000 withdrawal_reason: "Moved away" recorded_by { \#(actor) }"#

    static let serviceRecord =
        #"id: "svc-1" kind: SERVICE_KIND_VOCATIONAL_TRAINING detail: "baking" delivered_on { \#(date) } partner_id: "ptn-1" sessions: 12 recorded_by { \#(actor) } recorded_at_unix_ms: 1773446400000 sequence: 3"#

    static let placement =
        #"id: "plc-1" partner_id: "ptn-1" home_name: "Fictional Home" started_on { \#(date) } ended_on { year: 2026 month: 9 day: 30 }"#

    static let survivor =
        #"id: "srv-1" code: "MNL-S-0042" office_code: "MNL" version: 5 age_at_intake: 15 minor_at_intake: true intake_on { \#(date) } status: SURVIVOR_STATUS_IN_AFTERCARE placements { \#(placement) } services { \#(serviceRecord) } consents { \#(consent) } case_ids: "case-1" flags { alert_id: "alr-1" reason: "bail granted" raised_at_unix_ms: 1773446400000 } identity { \#(identity) } withheld_identity_fields: "contacts" created_at_unix_ms: 1767225600000 updated_at_unix_ms: 1773446400000 erased_at_unix_ms: 1780000000000 service_count: 3"#

    static let partner =
        #"id: "ptn-1" name: "Fictional Aftercare Home" kind: PARTNER_KIND_AFTERCARE_HOME office_codes: "MNL" services: SERVICE_KIND_SHELTER services: SERVICE_KIND_COUNSELLING contact: "office@example.org" active: true version: 2 created_at_unix_ms: 1767225600000"#

    static let referral =
        #"id: "ref-1" survivor_id: "srv-1" survivor_code: "MNL-S-0042" partner_id: "ptn-1" office_code: "MNL" service: SERVICE_KIND_VOCATIONAL_TRAINING note: "Interested in baking" status: REFERRAL_STATUS_ACCEPTED version: 2 resolution: "Enrolled" referred_by { \#(actor) } created_at_unix_ms: 1767225600000 updated_at_unix_ms: 1773446400000"#

    static let alert =
        #"id: "alr-1" office_code: "KOL" case_id: "case-1" case_reference: "KOL-2026-0007" accused_id: "acc-1" kind: ALERT_KIND_BAIL_GRANTED event_id: "evt-3" flagged_survivor_ids: "srv-1" raised_at_unix_ms: 1773446400000 acknowledged_by { \#(actor) } acknowledged_at_unix_ms: 1773450000000 acknowledgement: "Safety plan reviewed" version: 2"#

    static let changeEvent =
        #"cursor: "Y3Vyc29yLTQx" sequence: 41 committed_at_unix_ms: 1773446400000 kind: CHANGE_KIND_UPDATED office_code: "MNL" referral { \#(referral) }"#

    static let report =
        "office_code: \"KOL\" period { first_day { year: 2026 month: 1 day: 1 } last_day { year: 2026 month: 3 day: 31 } } cases_opened: 9 cases_closed: 2 cases_by_status { status: CASE_STATUS_PROSECUTION count: 12 } rescue_operations: 3 people_rescued: 31 minors_rescued: 19 convictions: 4 acquittals: 1 accused_on_bail: 2 survivors_in_aftercare: 27 survivors_registered: 14 services_delivered { kind: SERVICE_KIND_COUNSELLING count: 40 survivors: 17 } generated_at_unix_ms: 1775000000000"
}
