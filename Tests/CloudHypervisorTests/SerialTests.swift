import Foundation
import LinuxSys
import NodeCore
import Testing

@Suite("simulated guest serial port")
struct SerialTests {
    func config(kernel: String, serial: String) -> [UInt8] {
        Array(#"{"cpus":{"boot_vcpus":1,"max_vcpus":1},"payload":{"kernel":"\#(kernel)"},"serial":\#(serial),"console":{"mode":"Off"}}"#.utf8)
    }

    @Test func ttyModeWritesToTheVMMsStdout() async throws {
        try await withSimulator { sim, client in
            try await client.create(config: config(kernel: try SimulatorProcess.kernel(in: sim.directory), serial: #"{"mode":"Tty"}"#))
            try await client.boot()
            try await client.shutdownVMM()
            #expect(exitedNormally(await sim.waitForExit()) == 0)
            #expect(sim.text(sim.stdoutPath).contains("QARAX-GUEST-READY\n"))
        }
    }

    @Test func socketModeServesTheOutputToAClient() async throws {
        try await withSimulator { sim, client in
            let path = sim.directory + "/serial.sock"
            try await client.create(config: config(kernel: try SimulatorProcess.kernel(in: sim.directory),
                                                   serial: #"{"mode":"Socket","socket":"\#(path)"}"#))
            try await client.boot()
            let line = try await withDeadline(.seconds(20)) {
                try await onThread {
                    let socket = try UnixSocket.connect(path: path)
                    var bytes: [UInt8] = []
                    while !bytes.contains(UInt8(ascii: "\n")) {
                        let chunk = try UnixSocket.receive(socket)
                        if chunk.bytes.isEmpty { break }
                        bytes += chunk.bytes
                    }
                    return String(decoding: bytes, as: UTF8.self)
                }
            }
            #expect(line == "QARAX-GUEST-READY\n")
        }
    }

    @Test func aKernelWithoutTheMarkerPrintsNothing() async throws {
        try await withSimulator { sim, client in
            let kernel = sim.directory + "/silent-kernel"
            #expect(FileManager.default.createFile(atPath: kernel, contents: Data("\u{7f}ELF nothing to say".utf8)))
            try await client.create(config: config(kernel: kernel, serial: #"{"mode":"File","file":"\#(sim.serialPath)"}"#))
            try await client.boot()
            #expect(try await client.info().state == .running)
            try await client.shutdownVMM()
            #expect(exitedNormally(await sim.waitForExit()) == 0)
            #expect(sim.text(sim.serialPath) == "")
        }
    }
}
