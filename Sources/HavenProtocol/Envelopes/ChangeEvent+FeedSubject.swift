import SwiftProtobuf

extension Optional where Wrapped == Haven_V1_ChangeEvent.OneOf_Subject {
    /// The `FeedSubject` a change with this subject is filtered by.
    package var feedSubject: Haven_V1_FeedSubject {
        switch self {
        case .office: .office
        case .caseRecord: .case
        case .survivor: .survivor
        case .partner: .partner
        case .referral: .referral
        case .alert: .alert
        case .none: .unspecified
        }
    }
}
