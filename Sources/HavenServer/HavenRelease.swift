/// The release of this build of Haven.
package enum HavenRelease {
    /// Sent as the server agent (`havend/VERSION`) and printed by `--version`.
    package static let version = "0.1.0"
}
