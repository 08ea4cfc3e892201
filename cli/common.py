"""What every command shares: the project and stack options, and reading the project file."""

from __future__ import annotations

import argparse
from pathlib import Path

from collabops.settings import DEFAULT_PROJECT, ProjectSettings, load_project


def project_option(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    """``--project PATH``, before or after the command (a command's own default never hides the top level's)."""
    parser.add_argument("--project", type=Path, default=None if top_level else argparse.SUPPRESS,
                        help="the project file (default: configs/parking.yaml): model name, task, contract, "
                             "training config, partners, exchange and deployment settings")


def stack_options(parser: argparse.ArgumentParser) -> None:
    """``--project``, ``--partner`` and ``--stack``: the three choices of every command that runs on a stack.

    Without them the command runs on the active stack when the user chose
    one, else on the stack of the partner it belongs to
    (``orchestration.workspace.choose_stack``); it prints which and why.
    """
    project_option(parser)
    parser.add_argument("--partner", help="run as this partner, on its stack (see the project file)")
    parser.add_argument("--stack", help="run on this registered ZenML stack (default: --partner's stack, else the "
                                        "active stack if you chose one with `zenml stack set`, else the stack of "
                                        "the partner the command belongs to)")


def project_of(args: argparse.Namespace) -> ProjectSettings:
    """The project the command works on, parsed and checked once."""
    return load_project(getattr(args, "project", None) or DEFAULT_PROJECT)
