"""ZenML pipelines: each module wires steps, nothing more."""
