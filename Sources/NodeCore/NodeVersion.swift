/// The version qarax-node reports in `--version`, `doctor` and (later) its inventory.
public enum NodeVersion {
    public static let current = "0.1.0"
}
