/// Waits until `condition`, which another thread or task makes true, holds:
/// true once it does, false when it still does not after `limit`.
package func eventually(within limit: Duration = .seconds(10), _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while try !condition() {
        guard ContinuousClock.now < deadline else { return false }
        try await Task.sleep(for: .milliseconds(5))
    }
    return true
}
