#if canImport(Glibc)
import Glibc
#endif

/// The `ch-sim` program: parses the command line, then serves until the process ends.
public enum SimulatorMain {
    public static func run(arguments: [String], environment: [String: String]) -> Never {
        let options: SimulatorOptions
        do {
            options = try SimulatorOptions.parse(arguments, environment: environment)
        } catch {
            writeAll(STDERR_FILENO, Array("ch-sim: \(error)\n".utf8))
            exit(2)
        }
        if options.showHelp {
            writeAll(STDOUT_FILENO, Array((SimulatorOptions.helpText + "\n").utf8))
            exit(0)
        }
        if options.showVersion {
            writeAll(STDOUT_FILENO, Array("cloud-hypervisor v52.0-ch-sim (test double)\n".utf8))
            exit(0)
        }
        // Bodies are checked against the OpenAPI document; without it, by the built-in checks.
        let validator: BodyValidator
        do {
            validator = try OpenAPIBodyValidator.make()
        } catch {
            writeAll(STDERR_FILENO, Array("ch-sim: OpenAPI document unavailable (\(error)); using built-in body checks\n".utf8))
            validator = DefaultBodyValidator.validate
        }
        do {
            try SimulatorServer(options: options, validator: validator).run()
        } catch {
            writeAll(STDERR_FILENO, Array("ch-sim: \(error)\n".utf8))
            exit(1)
        }
    }
}
