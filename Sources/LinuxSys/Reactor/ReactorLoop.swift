#if canImport(Glibc)
import Glibc
#endif
import CShims

// Owned by the reactor thread alone; nothing else holds a reference after start.
final class ReactorLoop: @unchecked Sendable {
    static let wakeToken: UInt64 = 0

    private let shared: ReactorShared
    private var registrations: [UInt64: Registration] = [:]
    private var readBuffer: UnsafeMutableRawBufferPointer
    private let readable = qx_epollin() | qx_epollhup() | qx_epollerr() | qx_epollrdhup()

    init(shared: ReactorShared) {
        self.shared = shared
        readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit { readBuffer.deallocate() }

    func run() {
        _ = qx_name_current_thread("qarax-reactor")
        var events = [qx_ready_event](repeating: qx_ready_event(), count: 64)
        while true {
            let n = events.withUnsafeMutableBufferPointer { buffer -> Int32 in
                guard let base = buffer.baseAddress else { return -EINVAL }
                return qx_epoll_wait(shared.epollFD, base, Int32(buffer.count), -1)
            }
            // epoll_wait only fails for invalid arguments; nothing to retry then.
            if n < 0 { break }
            var stop = false
            for i in 0..<Int(n) {
                let event = events[i]
                if event.token == Self.wakeToken {
                    _ = qx_eventfd_drain(shared.wakeFD)
                    if applyCommands() { stop = true }
                } else if let registration = registrations[event.token] {
                    dispatch(registration, events: event.events)
                }
            }
            if stop { break }
        }
        for registration in registrations.values { remove(registration) }
        _ = Glibc.close(shared.epollFD)
        _ = Glibc.close(shared.wakeFD)
    }

    /// Applies queued commands; true when asked to shut down.
    private func applyCommands() -> Bool {
        var stop = false
        for command in shared.takeCommands() {
            switch command {
            case .add(let registration):
                let rc = qx_epoll_add(shared.epollFD, registration.fd, qx_epollin(), registration.token)
                if rc < 0 {
                    fail(registration, SystemError("epoll_ctl(ADD fd \(registration.fd))", negated: rc))
                } else {
                    registrations[registration.token] = registration
                }
            case .resume(let token):
                guard let registration = registrations[token], registration.paused else { continue }
                registration.paused = false
                let rc = qx_epoll_add(shared.epollFD, registration.fd, qx_epollin(), token)
                if rc < 0 { fail(registration, SystemError("epoll_ctl(ADD fd \(registration.fd))", negated: rc)) }
            case .cancel(let token):
                if let registration = registrations[token] { remove(registration) }
            case .shutdown:
                stop = true
            }
        }
        return stop
    }

    private func remove(_ registration: Registration) {
        registrations[registration.token] = nil
        if !registration.paused { _ = qx_epoll_del(shared.epollFD, registration.fd) }
        registration.closeAndFinish()
    }

    private func fail(_ registration: Registration, _ error: SystemError) {
        if case .read(let reader) = registration.kind { _ = reader.handler(.failed(error)) }
        registrations[registration.token] = nil
        registration.closeAndFinish()
    }

    private func dispatch(_ registration: Registration, events: UInt32) {
        guard events & readable != 0 else { return }
        switch registration.kind {
        case .exit(let watch):
            reap(registration, watch)
        case .read(let reader):
            drain(registration, reader)
        }
    }

    private func reap(_ registration: Registration, _ watch: ExitWatch) {
        var info = qx_child_exit()
        let rc = qx_waitid_pidfd(registration.fd, &info)
        let exit: ChildExit
        if rc == -ECHILD {
            exit = .exitedUnknownStatus
        } else if rc < 0 {
            // Not reapable by us for another reason; the pidfd still said the process is gone.
            exit = .exitedUnknownStatus
        } else if info.pid == 0 {
            // Readable but not yet waitable: try again on the next wake-up.
            return
        } else {
            switch info.kind {
            case 1: exit = .exited(status: info.status)
            case 3: exit = .signaled(signal: info.status, coreDumped: true)
            default: exit = .signaled(signal: info.status, coreDumped: false)
            }
        }
        registrations[registration.token] = nil
        _ = qx_epoll_del(shared.epollFD, registration.fd)
        _ = Glibc.close(registration.fd)
        watch.outcome.set(exit)
    }

    private func drain(_ registration: Registration, _ reader: Reader) {
        var consumed = 0
        let size = min(reader.chunkSize, readBuffer.count)
        while consumed < reader.budget {
            let n = Glibc.read(registration.fd, readBuffer.baseAddress, size)
            if n > 0 {
                consumed += n
                let disposition = reader.handler(.data(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n])))
                if case .pause = disposition {
                    // Removed from epoll rather than given an empty mask: EPOLLHUP is reported regardless.
                    registration.paused = true
                    _ = qx_epoll_del(shared.epollFD, registration.fd)
                    return
                }
            } else if n == 0 {
                _ = reader.handler(.endOfFile)
                registrations[registration.token] = nil
                _ = qx_epoll_del(shared.epollFD, registration.fd)
                _ = Glibc.close(registration.fd)
                return
            } else {
                let code = Glibc.errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { return }
                registrations[registration.token] = nil
                _ = qx_epoll_del(shared.epollFD, registration.fd)
                _ = Glibc.close(registration.fd)
                _ = reader.handler(.failed(SystemError("read fd \(registration.fd)", errno: code)))
                return
            }
        }
    }
}
