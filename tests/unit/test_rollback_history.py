"""Rollback steps back through the production history, skipping versions that were rolled away from.

The issue's example: a second ``rollback`` re-served the version just rolled
away from (each deployment only named the version it replaced). Now each
deployment records the production history before it; these tests replay
sequences of deployments and rollbacks through the same two functions the
deploy step and the rollback command use, with the records as the store keeps
them (the ``deployment`` metadata of the version in production).
"""

from __future__ import annotations

import pytest

from collabops.errors import ConfigError
from orchestration.models import ModelVersionInfo, history_after, recorded_history, rollback_target


class Production:
    """The production stage and each version's latest deployment record, as the model versions hold them."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.records: dict[str, dict] = {}

    def deploy(self, version: str, rolling_back_from: str | None = None) -> None:
        history = history_after(version, self.current, self.records.get(self.current or ""), rolling_back_from)
        replaced = None if self.current == version else self.current
        self.records[version] = {"replaced_version": replaced, "history": history,
                                 "rolled_back_from": rolling_back_from}
        self.current = version

    def info(self) -> ModelVersionInfo:
        assert self.current is not None
        return ModelVersionInfo("m", self.current, f"id-{self.current}", "production",
                                {"deployment": self.records[self.current]})

    def rollback(self) -> str:
        target = rollback_target(self.info())
        self.deploy(target, rolling_back_from=self.current)
        return target


def test_a_second_rollback_does_not_re_serve_the_version_just_rolled_away_from():
    production = Production()
    production.deploy("1")
    production.deploy("2")
    assert production.rollback() == "1"
    with pytest.raises(ConfigError) as nothing:
        production.rollback()
    assert str(nothing.value) == ("production version 1 is the oldest version left in the production history "
                                  "(versions rolled away from are skipped); there is nothing older to roll back to")
    assert production.current == "1"


def test_rollbacks_step_back_one_version_at_a_time():
    production = Production()
    for version in ("1", "2", "3", "4"):
        production.deploy(version)
    assert [production.rollback() for _ in range(3)] == ["3", "2", "1"]
    with pytest.raises(ConfigError, match="nothing older to roll back to"):
        production.rollback()


def test_versions_rolled_away_from_are_skipped_by_later_rollbacks():
    production = Production()
    production.deploy("1")
    production.deploy("2")
    production.rollback()  # away from 2
    production.deploy("3")
    assert production.records["3"]["history"] == ["1"]
    assert production.rollback() == "1"


def test_redeploying_the_serving_version_keeps_its_history():
    """A restart of the production version (``deploy --version N`` after its service died) is not a step."""
    production = Production()
    production.deploy("1")
    production.deploy("2")
    production.deploy("2")
    assert production.records["2"] == {"replaced_version": None, "history": ["1"], "rolled_back_from": None}
    assert production.rollback() == "1"


def test_a_version_deployed_again_later_is_a_new_step_in_the_history():
    production = Production()
    for version in ("1", "2", "1"):
        production.deploy(version)
    assert production.records["1"]["history"] == ["1", "2"]
    assert [production.rollback(), production.rollback()] == ["2", "1"]


def test_without_an_earlier_version_rollback_says_so_in_one_line():
    production = Production()
    production.deploy("7")
    with pytest.raises(ConfigError) as nothing:
        production.rollback()
    assert str(nothing.value) == ("production version 7 replaced no earlier production version; there is nothing to "
                                  "roll back to")
    assert "\n" not in str(nothing.value)


def test_a_production_version_deploy_never_recorded_has_no_history_to_roll_back_through():
    manual = ModelVersionInfo("m", "4", "id-4", "production", {})
    with pytest.raises(ConfigError, match=r"production version 4 was not put in production by `python run\.py deploy`"):
        rollback_target(manual)


def test_a_record_from_before_histories_were_kept_names_the_version_it_replaced():
    assert recorded_history({"replaced_version": "3"}) == ["3"]
    assert recorded_history({"replaced_version": None}) == [] and recorded_history(None) == []
    assert history_after("5", "4", {"replaced_version": "3"}) == ["3", "4"]


def test_a_rollback_that_no_longer_matches_production_is_refused():
    """Production changed between planning the rollback and promoting: nothing changes."""
    with pytest.raises(ConfigError, match="production changed during the rollback: production is version 3, not "
                                          "version 2 with version 1 before it"):
        history_after("1", "3", {"history": ["1", "2"]}, rolling_back_from="2")
    with pytest.raises(ConfigError, match="production changed during the rollback"):
        history_after("1", "2", {"history": ["4"]}, rolling_back_from="2")
