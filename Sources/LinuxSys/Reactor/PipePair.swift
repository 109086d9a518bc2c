import CShims

/// A pipe whose two ends are close-on-exec from creation.
public struct PipePair: ~Copyable {
    public var readEnd: FileDescriptor
    public var writeEnd: FileDescriptor

    public init() throws(SystemError) {
        var r: Int32 = -1
        var w: Int32 = -1
        let rc = qx_pipe_cloexec(&r, &w)
        if rc < 0 { throw SystemError("pipe2(O_CLOEXEC)", negated: rc) }
        readEnd = FileDescriptor(adopting: r)
        writeEnd = FileDescriptor(adopting: w)
    }
}
