"""Refusals decided before ZenML is touched: missing bundles, bad approvals, usage errors; and ``verify`` (no store)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import StoreTouched, assert_refused, data_bundle, example_data, key_pair, write_project


def test_the_store_tripwire_fires_when_a_command_reaches_zenml(cli, tmp_path):
    """The guard every fast test relies on: a command that would set up the store fails the test instead."""
    with pytest.raises(StoreTouched):
        cli("stacks", "--project", write_project(tmp_path))


@pytest.mark.parametrize("argv", [
    ["import-model", "{missing}"], ["import-model", "{missing}.tar.gz"], ["train", "--data-bundle", "{missing}"],
    ["verify", "{missing}"], ["verify", "{missing}.tar.gz"],
])
def test_a_missing_bundle_is_refused(cli, tmp_path, argv):
    missing = tmp_path / "exchange" / "model-nope"
    filled = [a.format(missing=missing) for a in argv]
    assert_refused(cli(*filled, "--project", write_project(tmp_path)), f"{filled[-1]}: bundle not found")


@pytest.mark.parametrize("argv, fragment", [
    (["approve", "1", "--by", "  "], "--by must name who approves"),
    (["approve", "first", "--by", "Ops"], "VERSION 'first' is not a version number"),
])
def test_a_bad_approval_is_refused(cli, tmp_path, argv, fragment):
    assert_refused(cli(*argv, "--project", write_project(tmp_path)), fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--data", "a.csv", "--data-bundle", "b"], "not allowed with argument --data"),
    (["export-data", "--data", "a.csv"], "the following arguments are required: --out"),
    (["deploy", "--versoin", "2"], "unrecognized arguments: --versoin"),
])
def test_usage_errors_exit_2_with_argparse_message(cli, argv, fragment):
    result = cli(*argv)
    assert result.code == 2 and fragment in result.err, result


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> tuple[Path, Path]:
    """A data bundle signed by the industry, and a project (at the university) that trusts the industry's key."""
    base = tmp_path_factory.mktemp("verify")
    private = key_pair(base / "keys", base / "home", "industry")
    bundle = data_bundle(example_data(months=1, car_parks=3), private, base / "exchange")
    return bundle, write_project(base / "university", keys_dir=base / "keys")


def test_verify_prints_the_manifest_and_the_signer(cli, signed):
    bundle, project = signed
    result = cli("verify", bundle, "--project", project)
    assert result.code == 0, result
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert f"verified: data bundle {manifest['bundle_id']}, signed by 'industry', " \
           f"{len(manifest['files'])} file(s) checked" in result.out
    assert manifest["data_file"] == "data/parking-occupancy.parquet"
    assert json.loads(result.out[:result.out.rindex("}") + 1]) == manifest


def test_verify_refuses_a_changed_payload(cli, signed, tmp_path):
    bundle, project = signed
    broken = tmp_path / bundle.name
    shutil.copytree(bundle, broken)
    (broken / "profile.json").write_text("{}")
    assert_refused(cli("verify", broken, "--project", project), "bundle refused, check 'files' failed")


def test_verify_refuses_a_bundle_nobody_trusted_signed(cli, signed, tmp_path):
    bundle, _ = signed
    stranger = write_project(tmp_path / "stranger")  # trusts no key at all
    assert_refused(cli("verify", bundle, "--project", stranger), "bundle refused, check 'signature' failed")


def test_an_unknown_search_parameter_is_refused_before_the_store(cli, tmp_path):
    """A typo in the search grid is a config error now, not a failed run later."""
    import yaml

    training = tmp_path / "training.yaml"
    training.write_text(yaml.safe_dump({"parameters": {"search": {"base": {"max_itr": 3}}}}))
    result = cli("train", "--config", str(training))
    assert_refused(result, "search: max_itr is not a parameter of HistGradientBoostingRegressor")


def test_generate_data_refuses_an_unsupported_output_before_generating(cli, tmp_path):
    result = cli("generate-data", "--out", str(tmp_path / "data.xlsx"))
    assert_refused(result, "data.xlsx: unsupported file type '.xlsx' (use .csv or .parquet)")
    assert "generating" not in result.out and not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["generate-data", "infer", "export-data", "handover"])
def test_an_output_path_under_a_file_is_refused_before_any_run(cli, tmp_path, command):
    """``--out ok.csv/x.csv`` (or a folder ``--out`` that is a file): one message naming the path, no traceback."""
    existing = tmp_path / "ok.csv"
    existing.write_text("a\n1\n", encoding="utf-8")
    data = tmp_path / "data.csv"
    example_data(months=1, car_parks=2, seed=3).to_csv(data, index=False)
    argv = {"generate-data": ["generate-data", "--out", existing / "g.csv"],
            "infer": ["infer", "--data", data, "--out", existing / "o.csv"],
            "export-data": ["export-data", "--data", data, "--out", existing],
            "handover": ["handover", "--out", existing]}[command]
    result = cli(*argv)
    assert_refused(result, str(existing))
    assert "Traceback" not in result.err + result.out and existing.read_text(encoding="utf-8") == "a\n1\n"
