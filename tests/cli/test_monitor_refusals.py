"""``run.py monitor``: what it refuses before the ZenML store is touched, and the cron expressions it accepts."""

from __future__ import annotations

import pytest

from cli.monitoring import check_cron
from collabops.errors import ConfigError
from tests.conftest import assert_refused, write_project


@pytest.mark.parametrize("argv, fragment", [
    (["--until", "2025-01-31"], "--until needs --since"),
    (["--since", "2025-02-01", "--until", "2025-01-01"], "--since 2025-02-01 is after --until 2025-01-01"),
    (["--since", "2025-13-01"], "--since '2025-13-01' is not a date (YYYY-MM-DD) or an ISO 8601 time"),
    (["--since", "2025-03-30T02:30:00"], "is not one instant in Europe/Stockholm"),
    (["--data", "{tmp}/f.csv", "--since", "2025-01-01"], "give either --data FILE or --since/--until"),
    (["--data", "{tmp}/missing.csv"], "--data {tmp}/missing.csv: file not found"),
    (["--outcomes", "{tmp}/missing.csv"], "--outcomes {tmp}/missing.csv: file not found"),
    (["--schedule", "0 6 * *"], "is not a cron expression of 5 fields"),
    (["--schedule", "99 6 * * *"], "minute '99' is not in 0-59"),
    (["--schedule", "0 6 * * *", "--since", "2025-01-01"], "--schedule monitors what the service logged since"),
])
def test_bad_options_are_refused_before_the_store(cli, tmp_path, argv, fragment):
    (tmp_path / "f.csv").write_text("timestamp\n2025-01-01T00:00:00\n", encoding="utf-8")
    filled = [a.format(tmp=tmp_path) for a in argv]
    assert_refused(cli("monitor", *filled, "--project", write_project(tmp_path)), fragment.format(tmp=tmp_path))


@pytest.mark.parametrize("expression", ["0 6 * * *", "*/15 0-6 1,15 jan-mar mon-fri", "0 6 * * 7", "5 4 * * sun",
                                        "0 0 1 */2 *", "30 23 31 12 0"])
def test_cron_expressions_crontab_accepts_are_accepted(expression):
    check_cron(expression)  # raises on refusal


@pytest.mark.parametrize("expression, fragment", [
    ("a b c d e", "minute 'a' is not in 0-59"), ("0 24 * * *", "hour '24' is not in 0-23"),
    ("0 6 0 * *", "day of month '0' is not in 1-31"), ("0 6 * 13 *", "month '13' is not in 1-12"),
    ("0 6 * * 8", "day of week '8' is not in 0-7"), ("*/0 * * * *", "'*/0' is not a valid minute field"),
    ("0 6 * * mon-funday", "day of week 'funday'"), ("0 6 * * * *", "is not a cron expression of 5 fields"),
    ("0,,6 * * * *", "'' is not a valid minute field"),
])
def test_cron_expressions_crontab_refuses_are_refused_naming_the_field(expression, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("*", r"\*").replace("(", r"\(")):
        check_cron(expression)
