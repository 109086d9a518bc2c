// ch-sim: a TEST DOUBLE of cloud-hypervisor's REST API, not a VMM. It runs no guest; it answers
// the API the way the real VMM does (status codes, error chains, state machine, event stream,
// descriptor passing) and injects faults on request, so the node's cloud-hypervisor path can be
// tested on machines without cloud-hypervisor. The logic lives in the CHSimulator library.
import CHSimulator
import Foundation

SimulatorMain.run(arguments: Array(CommandLine.arguments.dropFirst()),
                  environment: ProcessInfo.processInfo.environment)
