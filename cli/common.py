"""What every command shares: the project and stack options, and reading the project file."""

from __future__ import annotations

import argparse
from pathlib import Path

from collabops.errors import ConfigError
from collabops.settings import DEFAULT_PROJECT, ProjectSettings, load_project


def project_option(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    """``--project PATH``, before or after the command (a command's own default never hides the top level's).

    Before the command it is kept as ``top_project``, after it as ``project``,
    so that :func:`project_of` can refuse two different files.
    """
    parser.add_argument("--project", type=Path, dest="top_project" if top_level else "project", metavar="PROJECT",
                        default=None if top_level else argparse.SUPPRESS,
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


def project_path(args: argparse.Namespace) -> Path | None:
    """The ``--project`` given before or after the command (None: neither); ``ConfigError`` for two different ones."""
    before, after = getattr(args, "top_project", None), getattr(args, "project", None)
    if before is not None and after is not None and before.resolve() != after.resolve():
        raise ConfigError(f"--project is given twice, {before} before the command and {after} after it; "
                          "give one project file")
    return after or before


def project_of(args: argparse.Namespace) -> ProjectSettings:
    """The project the command works on, parsed and checked once."""
    return load_project(project_path(args) or DEFAULT_PROJECT)


def check_writable_path(path: Path, folder: bool = False) -> None:
    """``ConfigError`` when ``path`` cannot be created as a file (``folder``: as a folder) because of what exists.

    Checked before any run: the nearest existing ancestor must be a folder,
    and with ``folder`` an existing ``path`` must be a folder too.
    """
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder; --out takes a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{path}: cannot be created, because {parent} is a file, not a folder")
            return
