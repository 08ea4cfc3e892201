"""ZenML steps: thin adapters that call the plain ``collabops`` library."""
