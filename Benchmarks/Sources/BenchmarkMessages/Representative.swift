import HavenProtocol
import SwiftProtobuf

/// The messages the benchmarks measure, with fictional contents of realistic size.
public enum Representative {
    /// A named message. Names have no spaces or slashes: package-benchmark
    /// 1.38's `thresholds check` cannot find the thresholds of such names
    /// (ordo-one/benchmark#301, #373).
    public struct Sample: Sendable {
        public let name: String
        public let message: any HavenWireMessage
    }

    static func date(_ year: Int32, _ month: Int32, _ day: Int32) -> Haven_V1_CivilDate {
        .with {
            $0.year = year
            $0.month = month
            $0.day = day
        }
    }

    static let actor = Haven_V1_Actor.with {
        $0.principalID = "usr_7f3a9c2e41b84d0f"
        $0.displayName = "Caseworker (fictional)"
    }

    /// Small: one office.
    public static let office = Haven_V1_Office.with {
        $0.code = "KOL"
        $0.name = "Kolkata field office"
        $0.city = "Kolkata"
        $0.country = "IN"
        $0.timeZone = "Asia/Kolkata"
        $0.status = .active
        $0.version = 7
        $0.createdAtUnixMs = 1_767_225_600_000
        $0.updatedAtUnixMs = 1_773_446_400_000
    }

    /// Medium: a case with 20 timeline events and 3 accused.
    public static let mediumCase: Haven_V1_Case = caseRecord(index: 7, events: 20, accused: 3)

    static func caseRecord(index: Int, events: Int, accused: Int) -> Haven_V1_Case {
        var record = Haven_V1_Case()
        record.id = "case_\(String(repeating: "0", count: 24))\(String(1000 + index))"
        record.reference = "KOL-2026-\(String(1000 + index).suffix(4))"
        record.officeCode = "KOL"
        record.version = UInt64(events + accused + 1)
        record.category = .sexTrafficking
        record.status = .prosecution
        record.title = "Raid, fictional lane \(index)"
        record.policeReference = "FIR \(200 + index)/2026"
        record.openedAtUnixMs = 1_767_225_600_000 + Int64(index) * 86_400_000
        record.updatedAtUnixMs = 1_773_446_400_000
        record.openedOn = date(2026, 1, 1)
        record.openedBy = actor
        for number in 0..<accused {
            record.accused.append(
                .with {
                    $0.id = "acc_\(index)_\(number)_5f1c9e2d7b3a4c6e"
                    $0.name = "Fictional Accused \(number)"
                    $0.aliases = ["Alias \(number)"]
                    $0.role = .brothelKeeper
                    $0.legalStatus = .onBail
                    $0.history = [
                        .with {
                            $0.status = .inCustody
                            $0.effectiveOn = date(2026, 2, 1)
                            $0.eventID = "evt_arrest"
                        },
                        .with {
                            $0.status = .onBail
                            $0.effectiveOn = date(2026, 3, 1)
                            $0.eventID = "evt_bail"
                        },
                    ]
                }
            )
        }
        let accusedIDs = record.accused.map(\.id)
        for number in 0..<events {
            var event = Haven_V1_CaseEvent()
            event.id = "evt_\(index)_\(number)_8d2f4a6c1e3b5d7f"
            event.sequence = UInt32(number + 1)
            event.occurredOn = date(2026, Int32(1 + number % 12), Int32(1 + number % 28))
            event.recordedAtUnixMs = 1_767_225_600_000 + Int64(number) * 3_600_000
            event.recordedBy = actor
            switch number % 5 {
            case 0:
                event.rescueOperation = .with {
                    $0.place = "Fictional district, lane \(number)"
                    $0.peopleRescued = 11
                    $0.minorsRescued = 7
                    $0.ledBy = "AHTU Fictional"
                }
            case 1:
                event.arrest = .with {
                    $0.accusedIds = accusedIDs
                    $0.agency = "AHTU Fictional"
                    $0.place = "Bus depot"
                }
            case 2:
                event.hearing = .with {
                    $0.court = "Sessions Court 2"
                    $0.summary = "Evidence recorded; adjourned"
                    $0.nextHearingOn = date(2026, 5, 2)
                }
            case 3:
                event.bailGranted = .with {
                    $0.accusedIds = accusedIDs
                    $0.court = "High Court"
                    $0.conditions = "Weekly reporting"
                }
            default: event.note = .with { $0.text = "Follow-up visit planned with the aftercare home (fictional)." }
            }
            record.events.append(event)
        }
        record.eventCount = UInt32(events)
        record.survivorIds = ["srv_00000000000000000001", "srv_00000000000000000002"]
        return record
    }

    /// Large: a page of 100 cases (each with 3 events and 1 accused).
    public static let casePage = Haven_V1_ListCasesResponse.with {
        $0.cases = (0..<100).map { caseRecord(index: $0, events: 3, accused: 1) }
        $0.page.nextPageToken = "eyJmIjoiYTFiMmMzZDRlNWY2YTdiOCIsInMiOjE3NjcyMjU2MDAwMDAsImEiOiIiLCJpIjoiY2FzZV8xIn0"
    }

    /// A survivor record with identity, services, placements and consent.
    public static let survivor = Haven_V1_Survivor.with {
        $0.id = "srv_4b1d8e2f6a9c3e7d"
        $0.code = "MNL-S-0042"
        $0.officeCode = "MNL"
        $0.version = 14
        $0.ageAtIntake = 15
        $0.minorAtIntake = true
        $0.intakeOn = date(2026, 3, 14)
        $0.status = .inAftercare
        $0.placements = [
            .with {
                $0.id = "plc_1"
                $0.homeName = "Fictional Home One"
                $0.startedOn = date(2026, 3, 15)
                $0.endedOn = date(2026, 5, 31)
            },
            .with {
                $0.id = "plc_2"
                $0.partnerID = "ptn_5d2e8f1a"
                $0.startedOn = date(2026, 6, 1)
            },
        ]
        $0.services = (0..<10).map { number in
            .with {
                $0.id = "svc_\(number)_3c7e1a9d"
                $0.kind = number % 2 == 0 ? .counselling : .vocationalTraining
                $0.detail = number % 2 == 0 ? "" : "baking"
                $0.deliveredOn = date(2026, Int32(4 + number % 6), 10)
                $0.partnerID = "ptn_5d2e8f1a"
                $0.sessions = 4
                $0.recordedBy = actor
                $0.recordedAtUnixMs = 1_775_000_000_000
            }
        }
        $0.consents = (0..<3).map { number in
            .with {
                $0.id = "cns_\(number)"
                $0.partnerID = "ptn_5d2e8f1a"
                $0.scopes = [.name, .services, .placement]
                $0.purpose = "Vocational training enrolment"
                $0.givenBy = .guardian
                $0.givenOn = date(2026, 3, 20)
                $0.expiresAtUnixMs = 1_800_000_000_000
                $0.recordedBy = actor
            }
        }
        $0.caseIds = ["case_1", "case_2"]
        $0.identity = .with {
            $0.legalName = "Fictional Survivor Name"
            $0.otherNames = ["Nickname"]
            $0.dateOfBirth = date(2011, 6, 1)
            $0.gender = "female"
            $0.nationality = "PH"
            $0.languages = ["tl", "en"]
            $0.contacts = [
                .with {
                    $0.label = "guardian mobile"
                    $0.value = "+63 900 000 0000"
                }
            ]
            $0.homeAddress = .with {
                $0.lines = ["Fictional street 1"]
                $0.city = "Fictional City"
                $0.country = "PH"
            }
            $0.notes = String(repeating: "Fictional case notes. ", count: 20)
        }
        $0.createdAtUnixMs = 1_767_225_600_000
        $0.updatedAtUnixMs = 1_775_000_000_000
    }

    /// A client envelope starting a call that opens a case.
    public static let clientEnvelope: Haven_V1_ClientEnvelope = {
        let request = Haven_V1_OpenCaseRequest.with {
            $0.officeCode = "KOL"
            $0.category = .forcedLabour
            $0.title = "Raid, fictional brick kiln"
            $0.policeReference = "FIR 312/2026"
            $0.idempotencyKey = "5f8c2e1a-9d3b-4c7e-a6f1-2b8d4e9c7a3f"
        }
        return try! .start(
            callID: 1_234,
            method: MethodCatalog.CaseService.openCase,
            request: request,
            timeout: .seconds(10)
        )
    }()

    /// A server envelope ending a call with the medium case.
    public static let serverEnvelope: Haven_V1_ServerEnvelope = try! .end(callID: 1_234, response: mediumCase)

    /// Every representative message, in the order the results table shows them.
    public static let all: [Sample] = [
        Sample(name: "small-office", message: office),
        Sample(name: "medium-case-20-events-3-accused", message: mediumCase),
        Sample(name: "large-page-of-100-cases", message: casePage),
        Sample(name: "survivor-identity-services-consent", message: survivor),
        Sample(name: "client-envelope-start-OpenCase", message: clientEnvelope),
        Sample(name: "server-envelope-end-with-medium-case", message: serverEnvelope),
    ]
}
