"""Hardware-in-the-loop runs: a device agent, transports to reach devices, and the runner."""
