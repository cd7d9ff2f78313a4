#if canImport(Glibc)
import Glibc
#endif

/// The library's in-process lock, used instead of Synchronization's `Mutex`.
///
/// Synchronization's `Mutex` on Linux is a priority-inheritance futex that stores its owner's
/// thread id, and it caches that id per thread. In a child forked by a process that had already
/// used it, the main thread still carries its parent's id: the child's first contended lock
/// (say, a write racing its anti-entropy thread) fails in the kernel (ESRCH) and the Mutex traps
/// ("Unknown error occurred while attempting to acquire a Mutex") — killing the host program, as
/// `tests/c/test_fork_threads.c` showed. A pthread mutex trusts no cached id. `package`: the C
/// exports' handle table (Sources/CRegistry) is locked on every call and needs the same.
package final class ForkSafeMutex<Value>: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ initial: Value) {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
        value = initial
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deinitialize(count: 1)
        lock.deallocate()
    }

    /// Runs `body` with the value, holding the lock. Not reentrant.
    @inline(__always)
    package func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
