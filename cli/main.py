"""``python run.py``: argument parsing and printing over the library and the ZenML-facing layer.

The commands live by stage in :mod:`cli.training`, :mod:`cli.exchange` and
:mod:`cli.deployment`; they call :mod:`orchestration` (the only code outside
the steps that talks to ZenML) and the plain library. Heavy imports (ZenML,
scikit-learn, MLflow) happen inside the commands, so ``--help`` and input
errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cli import deployment, exchange, loop, monitoring, training
from cli.common import project_option
from collabops.errors import CollabopsError
from orchestration.workspace import prepare_environment

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": training.train, "stacks": training.stacks, "generate-data": training.generate_data,
    "keys": exchange.keys_init, "verify": exchange.verify, "export-data": exchange.export_data,
    "handover": exchange.handover, "import-model": exchange.import_model, "infer": exchange.infer,
    "deploy": deployment.deploy, "approve": deployment.approve, "rollback": deployment.rollback,
    "undeploy": deployment.undeploy, "status": deployment.status, "monitor": monitoring.monitor,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="collabops: reproducible university-industry ML collaboration on ZenML stacks. "
                    "Without a command, runs the main job: the whole collaboration loop on the example data "
                    "(export, train, handover, import, gate, deploy, live requests, monitor, retrain, redeploy), "
                    "each partner on its own stack (docs/loop.md).",
    )
    project_option(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    training.add_commands(commands)
    exchange.add_commands(commands)
    deployment.add_commands(commands)
    monitoring.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 done, 1 refused or failed, 130 interrupted)."""
    prepare_environment()
    args = build_parser().parse_args(argv)
    try:
        command = COMMANDS.get(args.command or "", loop.main_job)
        return command(args)
    except CollabopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
