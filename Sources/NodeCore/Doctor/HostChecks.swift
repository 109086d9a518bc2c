#if canImport(Glibc)
import Glibc
#endif
import CShims
import LinuxSys

/// The individual host checks. Each reads the kernel's interfaces (device nodes, procfs, sysfs)
/// and returns a `CheckResult`; paths are parameters so tests can point them elsewhere.
public enum HostChecks {
    // MARK: Kernel

    public static let minimumKernel = (major: 5, minor: 10)

    /// The running kernel's release string (`uname -r`).
    public static func kernelRelease() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "" }
        return withUnsafeBytes(of: &names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// `major.minor` of a release such as `6.18.44-fc-v669`.
    public static func parseKernelVersion(_ release: String) -> (major: Int, minor: Int)? {
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard numbers.count == 2, release.first?.isNumber == true else { return nil }
        return (numbers[0], numbers[1])
    }

    public static func kernel(release: String = kernelRelease()) -> CheckResult {
        let needed = "\(minimumKernel.major).\(minimumKernel.minor)"
        guard let version = parseKernelVersion(release) else {
            return CheckResult(.kernel, passed: false, summary: "cannot parse kernel release '\(release)'",
                               fix: "run a Linux \(needed) or newer kernel", details: ["release": .string(release)])
        }
        let ok = (version.major, version.minor) >= minimumKernel
        return CheckResult(.kernel, passed: ok,
                           summary: "Linux \(release)" + (ok ? "" : ", older than \(needed)"),
                           fix: ok ? nil : "upgrade to Linux \(needed) or newer (Debian 11 or later)",
                           details: ["release": .string(release)])
    }

    // MARK: Devices

    /// `/dev/kvm`: opens, API version 12, and a VM can be created (then closed again).
    public static func kvm(path: String = "/dev/kvm", moduleRoot: String = "/sys/module") -> CheckResult {
        var details: [String: DoctorValue] = [:]
        let module = ["kvm_intel", "kvm_amd", "kvm_pvm"].first { access("\(moduleRoot)/\($0)", F_OK) == 0 }
        if let module { details["module"] = .string(module) }
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, O_RDWR)
        } catch {
            let fix = switch error.errno {
            case ENOENT, ENXIO, ENODEV:
                "load KVM: modprobe kvm_intel (Intel) or modprobe kvm_amd (AMD), and enable VT-x/AMD-V in the firmware; in a VM, enable nested virtualization"
            case EACCES, EPERM:
                "run qarax-node as root, or give its user read-write access to \(path) (e.g. the kvm group)"
            default:
                "check \(path) (\(error.errnoName)) and dmesg"
            }
            return CheckResult(.kvm, passed: false, summary: "cannot open \(path): \(error.errnoName)", fix: fix, details: details)
        }
        let version = qx_kvm_get_api_version(fd.rawValue)
        guard version >= 0 else {
            return CheckResult(.kvm, passed: false,
                               summary: "KVM_GET_API_VERSION on \(path) failed: \(SystemError.name(of: -version))",
                               fix: "\(path) is not a KVM device; check that the kvm module is loaded (lsmod | grep kvm)",
                               details: details)
        }
        details["api_version"] = .int(Int64(version))
        guard version == 12 else {
            return CheckResult(.kvm, passed: false, summary: "KVM API version \(version), expected 12",
                               fix: "upgrade the kernel to one with the stable KVM API (12)", details: details)
        }
        let vm = qx_kvm_create_vm(fd.rawValue)
        guard vm >= 0 else {
            return CheckResult(.kvm, passed: false,
                               summary: "KVM_CREATE_VM failed: \(SystemError.name(of: -vm))",
                               fix: "another hypervisor may own the virtualization extensions, or memory is short; see dmesg",
                               details: details)
        }
        _ = close(vm)
        let flavour = module.map { " (\($0))" } ?? ""
        return CheckResult(.kvm, passed: true, summary: "\(path): API version 12, KVM_CREATE_VM works\(flavour)",
                           details: details)
    }

    /// A character device that must open read-write.
    public static func device(_ check: DoctorCheck, path: String, fix: String, purpose: String? = nil) -> CheckResult {
        do {
            let fd = try FileDescriptor.open(path, O_RDWR)
            try? fd.close()
        } catch {
            let what = error.errno == ENOENT ? "is missing" : "cannot be opened (\(error.errnoName))"
            let suffix = purpose.map { " (optional: \($0))" } ?? ""
            let hint = (error.errno == EACCES || error.errno == EPERM)
                ? "run qarax-node as root, or give its user read-write access to \(path)" : fix
            return CheckResult(check, passed: false, summary: "\(path) \(what)\(suffix)", fix: hint,
                               details: ["path": .string(path)])
        }
        return CheckResult(check, passed: true, summary: "\(path) opens", details: ["path": .string(path)])
    }

    public static func tun(path: String = "/dev/net/tun") -> CheckResult {
        device(.tun, path: path, fix: "modprobe tun (CONFIG_TUN); create the node with mknod /dev/net/tun c 10 200 if udev did not")
    }

    public static func vhostNet(path: String = "/dev/vhost-net") -> CheckResult {
        device(.vhostNet, path: path, fix: "modprobe vhost_net (CONFIG_VHOST_NET)",
               purpose: "QEMU's in-kernel virtio-net datapath, vhost=on; VMs still run without it")
    }

    public static func vhostVsock(path: String = "/dev/vhost-vsock") -> CheckResult {
        device(.vhostVsock, path: path, fix: "modprobe vhost_vsock (CONFIG_VHOST_VSOCK)",
               purpose: "QEMU's vhost-vsock-pci guest sockets; cloud-hypervisor's vsock does not need it")
    }
}
