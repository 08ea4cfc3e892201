"""The whole exchange between two separate ZenML worlds, passing only the exchange folder.

Industry and university each have their own copy of the repository, ZenML
store, artifact store, MLflow database and private key; the only things
they share are the public keys (as if committed) and the bundles in the
exchange folder. Each world is a separate store, so its commands run as
``python run.py`` subprocesses: export, train, handover, import, infer, and
one query per world for what its store recorded.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import (
    FAST_CONFIG,
    CliResult,
    Workspace,
    assert_refused,
    copy_project,
    example_data,
    key_pair,
    run_cli,
    write_project,
)

pytestmark = pytest.mark.slow

PSEUDONYMISATION_KEY = "industry-only-secret-0123456789"
STATE = """
import json
from zenml.client import Client
c = Client()
runs = sorted({r.pipeline.name for r in c.list_pipeline_runs(size=1000).items if r.pipeline})
try:
    v = c.get_model_version("parking-occupancy", 1)
    version = {"metadata": v.run_metadata, "runs": [str(i) for i in v.pipeline_run_ids.values()]}
except KeyError:
    version = None
holdouts = [sorted(t.name for t in a.tags) for a in c.list_artifact_versions(artifact="acceptance_holdout",
                                                                              hydrate=True).items]
print(json.dumps({"runs": runs, "version": version, "holdout_tags": holdouts}, default=str))
"""


@dataclass(frozen=True)
class Worlds:
    industry: Workspace
    university: Workspace
    base: Path
    raw: Path
    data_bundle: Path
    model_bundle: Path
    exported: CliResult
    trained: CliResult
    handed: CliResult

    @property
    def data_bundle_id(self) -> str:
        return json.loads((self.data_bundle / "manifest.json").read_text())["bundle_id"]

    @property
    def model_manifest(self) -> dict:
        return json.loads((self.model_bundle / "manifest.json").read_text())


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> Worlds:
    """Industry exports; the university trains on the data bundle and hands the model over (four subprocesses)."""
    base = tmp_path_factory.mktemp("two-worlds")
    industry = Workspace(copy_project(base / "industry"), base / "industry-zenml",
                         {"XDG_CONFIG_HOME": str(base / "industry-home"),
                          "COLLABOPS_PSEUDONYMISATION_KEY": PSEUDONYMISATION_KEY})
    university = Workspace(copy_project(base / "university"), base / "university-zenml",
                           {"XDG_CONFIG_HOME": str(base / "university-home")})
    for ws, partner in ((industry, "industry"), (university, "university")):
        shutil.rmtree(ws.root / "keys")
        (ws.root / "keys").mkdir()
        # what `run.py keys init` writes (tested in tests/cli/test_keys.py): the private key at its default place
        key_pair(ws.root / "keys", Path(ws.extra_env["XDG_CONFIG_HOME"]) / "collabops" / "keys", partner)
    # "Committing" the public keys: each side gets the other's .pub file, nothing else.
    shutil.copy(industry.root / "keys" / "industry.pub", university.root / "keys")
    shutil.copy(university.root / "keys" / "university.pub", industry.root / "keys")
    shutil.copy(FAST_CONFIG, university.root / "configs" / "training.yaml")  # the university's project: small
    exchange = base / "exchange"
    raw = base / "industry-private" / "raw.parquet"
    raw.parent.mkdir()
    example_data(months=4, car_parks=8).to_parquet(raw, index=False)

    exported = industry.run("export-data", "--data", raw, "--out", exchange)
    assert exported.code == 0, exported
    data_bundle = next(exchange.glob("data-*"))
    trained = university.run("train", "--data-bundle", data_bundle)
    assert trained.code == 0, trained
    handed = university.run("handover", "--version", "1", "--out", exchange, "--archive")
    assert handed.code == 0, handed
    model_bundle = next(p for p in exchange.glob("model-*") if p.is_dir())
    return Worlds(industry, university, base, raw, data_bundle, model_bundle, exported, trained, handed)


@dataclass(frozen=True)
class Imported:
    result: CliResult
    left_in_temp: list[str]


@pytest.fixture(scope="module")
def imported(worlds: Worlds) -> Imported:
    """The industry imports the model archive, with its temporary folder (TMPDIR) an empty folder of its own."""
    temp = worlds.base / "industry-tmp"
    temp.mkdir()  # empty: whatever is in it afterwards, the import left there
    result = worlds.industry.run("import-model", f"{worlds.model_bundle}.tar.gz", env={"TMPDIR": str(temp)})
    assert result.code == 0, result
    return Imported(result, sorted(str(p.relative_to(temp)) for p in temp.rglob("*")))


@pytest.fixture(scope="module")
def industry_state(worlds: Worlds, imported: Imported) -> dict:
    return worlds.industry.query(STATE)


@pytest.fixture(scope="module")
def university_state(worlds: Worlds) -> dict:
    return worlds.university.query(STATE)


def _bundle_frame(bundle: Path) -> pd.DataFrame:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return pd.read_parquet(bundle / manifest["data_file"])


def test_the_data_bundle_names_its_data_file_after_the_contract(worlds):
    manifest = json.loads((worlds.data_bundle / "manifest.json").read_text())
    assert manifest["data_file"] == "data/parking-occupancy.parquet"
    assert (worlds.data_bundle / "data" / "parking-occupancy.parquet").is_file()
    assert f"verified data bundle {worlds.data_bundle_id} signed by 'industry'" in worlds.trained.out


def test_no_personal_value_leaves_the_industry_side(worlds):
    raw_frame = pd.read_parquet(worlds.raw)
    exported = _bundle_frame(worlds.data_bundle)
    for column in ("last_entry_plate", "last_entry_customer_id"):
        values = set(raw_frame[column].dropna())
        assert values and not values & set(exported[column].dropna()), column
        assert exported[column].dropna().str.fullmatch(r"[0-9a-f]{64}").all()
        probes = [v.encode() for v in list(values)[:300]]
        for path in worlds.data_bundle.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert not [p for p in probes if p in content], f"raw {column} value in {path.name}"
    # Joins still work: each raw plate maps to exactly one pseudonym, and distinct plates stay distinct.
    keys = ["car_park_id", "timestamp"]
    pairs = raw_frame[[*keys, "last_entry_plate"]].merge(
        exported[[*keys, "last_entry_plate"]], on=keys, suffixes=("_raw", "_pseudo")).dropna()
    assert len(pairs) > 1000
    assert (pairs.groupby("last_entry_plate_raw")["last_entry_plate_pseudo"].nunique() == 1).all()
    assert (pairs.groupby("last_entry_plate_pseudo")["last_entry_plate_raw"].nunique() == 1).all()


def test_the_holdout_stays_on_the_industry_side_tagged_with_its_bundle(worlds, industry_state):
    raw_frame = pd.read_parquet(worlds.raw)
    bundle_frame = _bundle_frame(worlds.data_bundle)
    holdout_start = raw_frame["timestamp"].sort_values().iloc[len(bundle_frame)]
    assert bundle_frame["timestamp"].max() < holdout_start
    assert len(bundle_frame) < 0.95 * len(raw_frame)
    assert "acceptance holdout kept on this side" in worlds.exported.out
    assert f"data-bundle:{worlds.data_bundle_id}" in industry_state["holdout_tags"][0]


def test_imported_version_carries_the_university_run_metrics_and_data_lineage(worlds, imported, industry_state,
                                                                             university_state):
    assert "as parking-occupancy version 1 on stack 'industry-local'" in imported.result.out
    ours = industry_state["version"]["metadata"]
    theirs = university_state["version"]
    assert ours["producer"]["partner"] == "university"
    assert ours["producer_model"]["training_run_id"] == theirs["runs"][0]
    assert ours["producer_model"]["training_data_bundle_id"] == worlds.data_bundle_id
    assert ours["producer_metrics"]["test"]["overall"]["mae"] == pytest.approx(
        theirs["metadata"]["test_metrics"]["overall"]["mae"])
    assert ours["imported_bundle_id"] == worlds.model_manifest["bundle_id"]


def test_import_model_leaves_nothing_in_the_temporary_folder(imported):
    """The archive is unpacked, verified and registered without a temporary copy left behind."""
    assert imported.left_in_temp == []


def test_the_imported_model_scores_a_batch_file(worlds, imported, tmp_path):
    source = tmp_path / "to-score.csv"
    pd.read_parquet(worlds.raw).drop(columns=["occupancy_rate"]).head(5000).to_csv(source, index=False)
    out = tmp_path / "scored.parquet"
    result = worlds.industry.run("infer", "--data", source, "--out", out, "--version", "1")
    assert result.code == 0, result
    scored = pd.read_parquet(out)
    assert len(scored) == 5000 and scored["prediction"].between(-0.2, 1.2).all()
    assert set(scored["model_version"]) == {"1"}
    assert set(scored["bundle_id"]) == {worlds.model_manifest["bundle_id"]}


def test_the_two_stores_share_nothing(worlds, industry_state, university_state):
    assert worlds.industry.zenml_config != worlds.university.zenml_config
    assert set(university_state["runs"]) == {"training", "handover"}
    assert university_state["holdout_tags"] == []
    assert {"export-data", "import-model"} <= set(industry_state["runs"])
    assert "training" not in industry_state["runs"]
    assert not list(worlds.university.zenml_config.rglob("*holdout*"))


def test_a_bundle_signed_by_ourselves_is_not_trusted_as_the_other_partner(worlds, tmp_path):
    """The industry's own key never vouches for a bundle it receives: it is trusted only from the other side."""
    keys = tmp_path / "keys"
    keys.mkdir()
    for world in (worlds.industry, worlds.university):
        for public in (world.root / "keys").glob("*.pub"):
            shutil.copy(public, keys)
    project = write_project(tmp_path, keys_dir=keys)
    refused = run_cli("train", "--project", project, "--data-bundle", worlds.data_bundle, "--partner", "industry")
    assert_refused(refused, "check 'signature' failed",
                   "signed with the key of 'industry', the receiving partner itself")
    verified = run_cli("verify", worlds.data_bundle, "--project", project)
    assert verified.code == 0 and "signed by 'industry'" in verified.out, verified
