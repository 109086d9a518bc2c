#if canImport(Glibc)
import Glibc
#endif
import CLibSeccomp
import CShims

/// A seccomp filter as data: an allow-list of rules and what happens to every other syscall.
///
/// Rules for the same syscall are alternatives (any may match); the conditions inside one rule
/// must all hold. Compiled with libseccomp in the parent (`compile()`) and loaded by the launcher's
/// child just before `execve`.
public struct SeccompPolicy: Hashable, Sendable {
    /// What a syscall no rule matches gets.
    public enum DefaultAction: String, Hashable, Sendable, CaseIterable {
        /// The call fails with EPERM; the process lives on.
        case errno
        /// The whole process is killed with SIGSYS (`SECCOMP_RET_KILL_PROCESS`).
        case kill
    }

    public var defaultAction: DefaultAction
    public var rules: [SeccompRule]

    public init(defaultAction: DefaultAction, rules: [SeccompRule]) {
        self.defaultAction = defaultAction
        self.rules = rules
    }

    /// Checks what can be checked without libseccomp: argument indexes, masks, errno values,
    /// non-empty names and reasons. Syscall names are resolved by `compile()`.
    public func validate() throws(SeccompPolicyError) {
        var issues: [FieldIssue] = []
        if rules.isEmpty {
            issues.append(FieldIssue(field: "rules", value: "[]", reason: "is empty: nothing, not even execve, would be allowed"))
        }
        for (i, rule) in rules.enumerated() {
            let field = "rules[\(i)]"
            if rule.syscall.isEmpty {
                issues.append(FieldIssue(field: "\(field).syscall", value: "\"\"", reason: "is empty"))
            }
            if rule.reason.allSatisfy(\.isWhitespace) {
                issues.append(FieldIssue(field: "\(field).reason", value: "\"\(rule.reason)\"", reason: "is empty: every rule says why it exists"))
            }
            if case .errno(let code) = rule.action, !(1...4095).contains(code) {
                issues.append(FieldIssue(field: "\(field).errno", value: "\(code)", reason: "is not an errno (1…4095)"))
            }
            var seenIndexes: Set<Int> = []
            for (j, condition) in rule.arguments.enumerated() {
                let argField = "\(field).args[\(j)]"
                if !(0...5).contains(condition.index) {
                    issues.append(FieldIssue(field: "\(argField).index", value: "\(condition.index)", reason: "is not a syscall argument index (0…5)"))
                }
                if !seenIndexes.insert(condition.index).inserted {
                    issues.append(FieldIssue(field: "\(argField).index", value: "\(condition.index)", reason: "is compared twice in one rule; libseccomp allows one comparison per argument per rule"))
                }
                switch (condition.op, condition.mask) {
                case (.maskedEqual, nil):
                    issues.append(FieldIssue(field: "\(argField).mask", value: "missing", reason: "is required by op masked_eq"))
                case (.maskedEqual, _), (_, nil):
                    break
                case (let op, .some(let mask)):
                    issues.append(FieldIssue(field: "\(argField).mask", value: "\(mask)", reason: "is only meaningful with op masked_eq, not \(op.rawValue)"))
                }
            }
        }
        if !issues.isEmpty { throw .invalid(issues) }
    }

    /// Syscalls the launcher's child makes after loading the filter: `execve`, and on a failed exec
    /// `write` (the report) and `exit_group`. A policy used for launching must allow them without
    /// conditions, or a failed exec would go unreported.
    public static let launcherRequirements = ["execve", "write", "exit_group"]

    /// Those of `launcherRequirements` no unconditional allow rule covers.
    public var missingLauncherRequirements: [String] {
        let unconditional = Set(rules.filter { $0.action == .allow && $0.arguments.isEmpty }.map(\.syscall))
        return Self.launcherRequirements.filter { !unconditional.contains($0) }
    }

    /// Compiles to a classic-BPF program for the native architecture with libseccomp.
    public func compile() throws(SeccompPolicyError) -> SeccompProgram {
        try validate()
        let defaultAction: UInt32 = switch self.defaultAction {
        case .errno: qx_scmp_act_errno(UInt16(EPERM))
        case .kill: qx_scmp_act_kill_process()
        }
        guard let context = seccomp_init(defaultAction) else {
            throw .libseccomp(SystemError("seccomp_init", errno: ENOMEM))
        }
        defer { seccomp_release(context) }
        // A binary tree over syscall numbers: the VMM pays this filter on every syscall (each
        // KVM_RUN), so lookups must not walk ~200 rules. Foreign-ABI calls get the default action.
        for (attribute, value, name) in [(SCMP_FLTATR_CTL_OPTIMIZE, UInt32(2), "CTL_OPTIMIZE"),
                                         (SCMP_FLTATR_ACT_BADARCH, defaultAction, "ACT_BADARCH")] {
            let result = seccomp_attr_set(context, attribute, value)
            if result < 0 { throw .libseccomp(SystemError("seccomp_attr_set(\(name))", negated: result)) }
        }

        var issues: [FieldIssue] = []
        for (i, rule) in rules.enumerated() {
            let number = seccomp_syscall_resolve_name(rule.syscall)
            if number == __NR_SCMP_ERROR {
                issues.append(FieldIssue(field: "rules[\(i)].syscall", value: "\"\(rule.syscall)\"",
                                         reason: "is not a system call libseccomp knows on this architecture"))
                continue
            }
            let action: UInt32 = switch rule.action {
            case .allow: qx_scmp_act_allow()
            case .errno(let code): qx_scmp_act_errno(UInt16(clamping: code))
            }
            let comparisons = rule.arguments.map { condition in
                scmp_arg_cmp(arg: UInt32(condition.index), op: condition.op.libseccomp,
                             datum_a: condition.op == .maskedEqual ? (condition.mask ?? 0) : condition.value,
                             datum_b: condition.op == .maskedEqual ? condition.value : 0)
            }
            let result = comparisons.withUnsafeBufferPointer { buffer in
                seccomp_rule_add_array(context, action, number, UInt32(buffer.count), buffer.baseAddress)
            }
            if result < 0 {
                issues.append(FieldIssue(field: "rules[\(i)]", value: rule.syscall,
                                         reason: "was refused by libseccomp: \(SystemError.name(of: -result))"))
            }
        }
        if !issues.isEmpty { throw .invalid(issues) }

        // libseccomp 2.5 exports only to a file descriptor: a memfd, read back whole.
        let memfdResult = qx_memfd_create("qx-seccomp", 1 /* MFD_CLOEXEC */)
        if memfdResult < 0 { throw .libseccomp(SystemError("memfd_create", negated: memfdResult)) }
        let memfd = FileDescriptor(adopting: memfdResult)
        let exported = seccomp_export_bpf(context, memfd.rawValue)
        if exported < 0 { throw .libseccomp(SystemError("seccomp_export_bpf", negated: exported)) }
        let size = lseek(memfd.rawValue, 0, SEEK_END)
        if size < 0 { throw .libseccomp(SystemError("lseek(seccomp memfd)", errno: errno)) }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { buffer in
                pread(memfd.rawValue, buffer.baseAddress.map { $0 + offset }, buffer.count - offset, off_t(offset))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .libseccomp(SystemError("pread(seccomp memfd)", errno: errno))
            }
            if n == 0 { break }
            offset += n
        }
        guard offset == bytes.count, bytes.count % SeccompProgram.instructionSize == 0,
              bytes.count / SeccompProgram.instructionSize <= Int(UInt16.max)
        else { throw .libseccomp(SystemError("seccomp_export_bpf: \(offset) bytes exported", errno: EIO)) }
        return SeccompProgram(bytes: bytes)
    }
}

/// One allow-list entry: a syscall, optional argument conditions (all must hold), and why it is
/// allowed.
public struct SeccompRule: Hashable, Sendable {
    /// What a matching call gets.
    public enum Action: Hashable, Sendable {
        case allow
        /// The call fails with this errno, e.g. ENOSYS for `clone3` so libc falls back to `clone`,
        /// whose flags a filter can inspect.
        case errno(Int32)
    }

    public var syscall: String
    public var arguments: [SeccompArgumentCondition]
    public var action: Action
    public var reason: String

    public init(_ syscall: String, arguments: [SeccompArgumentCondition] = [], action: Action = .allow, reason: String) {
        self.syscall = syscall
        self.arguments = arguments
        self.action = action
        self.reason = reason
    }
}

/// A comparison of one syscall argument (as a 64-bit register value) against a constant.
public struct SeccompArgumentCondition: Hashable, Sendable {
    public enum Operator: String, Hashable, Sendable, CaseIterable {
        case equal = "eq"
        case notEqual = "ne"
        case less = "lt"
        case lessOrEqual = "le"
        case greater = "gt"
        case greaterOrEqual = "ge"
        /// `(argument & mask) == value`.
        case maskedEqual = "masked_eq"

        var libseccomp: scmp_compare {
            switch self {
            case .equal: SCMP_CMP_EQ
            case .notEqual: SCMP_CMP_NE
            case .less: SCMP_CMP_LT
            case .lessOrEqual: SCMP_CMP_LE
            case .greater: SCMP_CMP_GT
            case .greaterOrEqual: SCMP_CMP_GE
            case .maskedEqual: SCMP_CMP_MASKED_EQ
            }
        }
    }

    /// Argument position, 0…5.
    public var index: Int
    public var op: Operator
    public var value: UInt64
    /// Only for `maskedEqual`.
    public var mask: UInt64?

    public init(index: Int, _ op: Operator, _ value: UInt64, mask: UInt64? = nil) {
        self.index = index
        self.op = op
        self.value = value
        self.mask = mask
    }
}

/// A compiled filter: `struct sock_filter` instructions, ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
public struct SeccompProgram: Hashable, Sendable {
    static let instructionSize = 8
    /// The raw instructions, 8 bytes each, in host byte order.
    public let bytes: [UInt8]

    public var instructionCount: Int { bytes.count / Self.instructionSize }
}

/// A policy that cannot be used.
public enum SeccompPolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fields that are wrong, each named.
    case invalid([FieldIssue])
    /// The policy file could not be read, or is not JSON of the expected shape.
    case unreadable(path: String, reason: String)
    /// libseccomp itself failed.
    case libseccomp(SystemError)

    public var description: String {
        switch self {
        case .invalid(let issues): "invalid seccomp policy: " + issues.map(\.description).joined(separator: "; ")
        case .unreadable(let path, let reason): "seccomp policy \(path): \(reason)"
        case .libseccomp(let error): "libseccomp: \(error)"
        }
    }
}
