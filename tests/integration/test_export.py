"""``export-data`` on the session's store: which keys it asks for, and refusing before any run without them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import CONTRACT, assert_refused, example_data, key_pair, run_cli, run_names, write_project

pytestmark = pytest.mark.slow

NO_KEY = {"COLLABOPS_PSEUDONYMISATION_KEY": None}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> pd.DataFrame:
    return example_data(months=2, car_parks=4)


@pytest.fixture
def signing_key(tmp_path: Path) -> Path:
    return key_pair(tmp_path / "keys", tmp_path / "industry-home", "industry")


def test_a_contract_without_personal_columns_needs_no_pseudonymisation_key(tmp_path, raw, signing_key):
    """No key in the environment and no key file: the export still succeeds, since nothing is personal."""
    contract = yaml.safe_load(CONTRACT.read_text())
    personal = [c["name"] for c in contract["columns"] if c.get("personal")]
    contract.update(name="no-personal-data", columns=[c for c in contract["columns"] if not c.get("personal")])
    contract_path = tmp_path / "no-personal-contract.yaml"
    contract_path.write_text(yaml.safe_dump(contract, sort_keys=False))
    project = write_project(tmp_path, contract=contract_path, keys_dir=tmp_path / "keys")  # names a key file ...
    assert not (tmp_path / "pseudonymisation.key").exists()  # ... that does not exist (a precondition, not a claim)
    data = tmp_path / "raw.parquet"
    raw.drop(columns=personal).to_parquet(data, index=False)

    result = run_cli("export-data", "--project", project, "--data", data, "--out", tmp_path / "exchange",
                     "--private-key", signing_key, env=NO_KEY)
    assert result.code == 0, result
    bundle = next((tmp_path / "exchange").glob("data-*"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["personal_columns"] == [] and manifest["data_file"] == "data/no-personal-data.parquet"
    assert f"data bundle {manifest['bundle_id']}" in result.out


@pytest.mark.parametrize("env, key_file, fragment", [
    (NO_KEY, None, "no pseudonymisation key: set the environment variable COLLABOPS_PSEUDONYMISATION_KEY "
                   "or create the file"),
    ({"COLLABOPS_PSEUDONYMISATION_KEY": "short"}, None, "the pseudonymisation key is too short (5 bytes, need 16)"),
    (NO_KEY, b"tiny", "pseudonymisation.key: the pseudonymisation key is too short (4 bytes, need 16)"),
])
def test_personal_columns_without_a_usable_key_are_refused_before_any_run(tmp_path, raw, signing_key, env, key_file,
                                                                         fragment):
    project = write_project(tmp_path, keys_dir=tmp_path / "keys")
    if key_file is not None:
        (tmp_path / "pseudonymisation.key").write_bytes(key_file)
    data = tmp_path / "raw.parquet"
    raw.to_parquet(data, index=False)
    runs_before = run_names("export-data")
    result = run_cli("export-data", "--project", project, "--data", data, "--out", tmp_path / "exchange",
                     "--private-key", signing_key, env=env)
    assert_refused(result, fragment)
    assert run_names("export-data") == runs_before
    assert not (tmp_path / "exchange").exists()


def test_a_missing_signing_key_is_refused_before_any_run(tmp_path, raw):
    project = write_project(tmp_path)
    data = tmp_path / "raw.parquet"
    raw.to_parquet(data, index=False)
    missing = tmp_path / "nowhere" / "industry.key"
    runs_before = run_names("export-data")
    result = run_cli("export-data", "--project", project, "--data", data, "--out", tmp_path / "exchange",
                     "--private-key", missing, env={"COLLABOPS_PSEUDONYMISATION_KEY": "k" * 32})
    assert_refused(result, f"{missing}: private key of partner 'industry' not found")
    assert run_names("export-data") == runs_before
    assert not (tmp_path / "exchange").exists()
