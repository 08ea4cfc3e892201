"""``--help`` of every command, in this process: usage and flags, exit 0, and nothing heavy imported or touched."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

STACK = ["--project", "--partner", "--stack"]
COMMANDS = {
    "train": ["--data", "--data-bundle", "--config", "--no-cache", *STACK],
    "stacks": STACK,
    "generate-data": ["--out", "--months", "--seed", "--start", "--car-parks", "--drift", "--force"],
    "keys init": ["--partner", "--private-key", "--force", "--project"],
    "verify": ["path", "--project"],
    "export-data": ["--data", "--out", "--private-key", "--archive", *STACK],
    "handover": ["--version", "--out", "--private-key", "--archive", *STACK],
    "import-model": ["path", *STACK],
    "infer": ["--data", "--out", "--version", *STACK],
    "deploy": ["--version", *STACK],
    "approve": ["version", "--by", "--note", *STACK],
    "rollback": STACK,
    "undeploy": STACK,
    "status": STACK,
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help(cli, command):
    """Each command prints its own usage line with every option the README documents, and exits 0."""
    result = cli(*command.split(), "--help")
    assert result.code == 0, result
    assert result.out.startswith(f"usage: run.py {command} "), result
    for flag in COMMANDS[command]:
        assert flag in result.out, f"{command} --help lacks {flag}"
    assert result.err == ""


def test_top_level_help_lists_every_command(cli):
    """``run.py --help`` names every command and the top-level ``--project`` option."""
    result = cli("--help")
    assert result.code == 0, result
    assert result.out.startswith("usage: run.py ")
    for command in {c.split()[0] for c in COMMANDS}:
        assert f"\n    {command} " in result.out, command
    assert "--project PROJECT" in result.out


def test_an_unknown_command_is_a_usage_error(cli):
    """argparse's own refusal: exit 2 and the valid choices, no traceback."""
    result = cli("trian")
    assert result.code == 2, result
    assert "invalid choice: 'trian'" in result.err and "train" in result.err
    assert "Traceback" not in result.err


PROBE = """
import json, sys
sys.argv = ["run.py"]
from cli.main import main
codes = []
for argv in ({argvs}):
    try:
        codes.append(main(argv))
    except SystemExit as exit_:
        codes.append(exit_.code)
heavy = sorted(m for m in ("zenml", "mlflow") if m in sys.modules)
print(json.dumps({{"codes": codes, "heavy": heavy}}))
"""


def test_help_and_input_errors_answer_without_importing_zenml(tmp_path):
    """The promise behind "answers at once": ``--help`` and a refused input never import ZenML or MLflow.

    (A fresh interpreter: in this one, slow tests may have imported them already.)
    """
    argvs = repr([["--help"], ["train", "--help"], ["deploy", "--help"],
                  ["train", "--data", str(tmp_path / "missing.csv")],
                  ["import-model", str(tmp_path / "model-nope")]])[1:-1]
    result = subprocess.run([sys.executable, "-c", PROBE.format(argvs=argvs)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["codes"] == [0, 0, 0, 1, 1]
    assert answer["heavy"] == []
    assert "missing.csv: file not found" in result.stderr and "model-nope: bundle not found" in result.stderr
