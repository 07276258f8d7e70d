"""Engine: pure decide() and translate() over a snapshot."""
