import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`: what the tests need of
/// Foundation's `Process`, without its crash on Linux. `Process.run()` reads
/// each `/proc/self/fd` entry as a whole 256-byte `dirent` name, past the end
/// of glibc's buffer when the entry sits at its tail; now and then that
/// faulted and took a whole test run down (SIGSEGV in `Process.run()`, seen
/// here with Swift 6.3.1; swift-corelibs-foundation pull request 5472).
///
/// The child gets the given descriptors as standard input, output and error,
/// no other descriptor of this process, default signal dispositions and an
/// empty signal mask, as a shell would start it.
public final class ChildProcess: Sendable {
    public let processIdentifier: pid_t
    /// The raw wait status, once the child is reaped.
    private let reaped = Mutex<Int32?>(nil)

    /// Starts `executable` (an absolute path).
    ///
    /// - Parameters:
    ///   - environment: The whole environment of the child.
    ///   - standardInput, standardOutput, standardError: Descriptors of this
    ///     process the child gets as 0, 1 and 2 (the caller keeps and closes them).
    public init(
        _ executable: URL,
        arguments: [String],
        environment: [String: String],
        standardInput: Int32,
        standardOutput: Int32,
        standardError: Int32
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, standardInput, 0)
        posix_spawn_file_actions_adddup2(&actions, standardOutput, 1)
        posix_spawn_file_actions_adddup2(&actions, standardError, 2)
        guard Self.addCloseFrom(&actions, 3) == 0 else { throw POSIXError(.ENOSYS) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let error = posix_spawn(&pid, executable.path, &actions, &attributes, argv, envp)
        guard error == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: error) ?? .EIO)
        }
        self.processIdentifier = pid
    }

    /// Waits for the child to exit (reaping it) and returns its status.
    @discardableResult
    public func waitUntilExit() -> Int32 {
        if let status = self.reaped.withLock({ $0 }) { return Self.decode(status) }
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(self.processIdentifier, &status, 0) } while result == -1 && errno == EINTR
        let reapedHere = result == self.processIdentifier
        return Self.decode(
            self.reaped.withLock { reaped in
                if reaped == nil, reapedHere { reaped = status }
                return reaped ?? status
            }
        )
    }

    /// Whether the child is still running (reaping it if it has exited).
    public var isRunning: Bool {
        self.reaped.withLock { reaped in
            guard reaped == nil else { return false }
            var status: Int32 = 0
            guard waitpid(self.processIdentifier, &status, WNOHANG) == self.processIdentifier else { return true }
            reaped = status
            return false
        }
    }

    /// The exit code, or the number of the signal that ended it (as
    /// Foundation's `terminationStatus`).
    public var terminationStatus: Int32 { self.waitUntilExit() }

    /// Sends SIGTERM.
    public func terminate() { kill(self.processIdentifier, SIGTERM) }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later),
    /// which Swift's Glibc module does not import: found at run time.
    private static let addCloseFrom: @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32 =
        {
            guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
                return { _, _ in ENOSYS }
            }
            return unsafeBitCast(
                symbol,
                to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self
            )
        }()

    /// `WEXITSTATUS` for an exit, `WTERMSIG` for a signal.
    private static func decode(_ status: Int32) -> Int32 {
        status & 0x7F == 0 ? (status >> 8) & 0xFF : status & 0x7F
    }
}

extension ChildProcess {
    /// Standard input, output and error of a child: pipes whose child ends
    /// are closed here once it started, or /dev/null.
    public static func nullDevice() throws -> Int32 {
        let descriptor = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return descriptor
    }
}
