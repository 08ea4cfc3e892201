"""The one ZenML-facing layer outside the steps.

Everything that talks to ZenML's client on behalf of a command lives here:
the repository and the partner stacks (:mod:`.workspace`), running a
pipeline under an explicit run name and reading its outputs by artifact name
(:mod:`.runs`), model versions and lineage (:mod:`.models`), and the
prediction services of the stack's model deployer (:mod:`.services`). Pipeline
and artifact names are constants in :mod:`.names`. The CLI calls this layer
and prints; it never imports ZenML itself.
"""
