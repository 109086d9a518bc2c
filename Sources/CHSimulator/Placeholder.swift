public enum CHSimulatorPlaceholder {}
