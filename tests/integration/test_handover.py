"""The whole exchange between two separate ZenML worlds, passing only the exchange folder.

Industry and university each have their own copy of the repository, ZenML
store, artifact store, MLflow database and private key; the only things
they share are the committed public keys and the bundles in the exchange
folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, Workspace, copy_project

RUNS = """
import json
from zenml.client import Client
c = Client()
print(json.dumps(sorted({r.pipeline.name for r in c.list_pipeline_runs(size=100).items})))
"""
VERSION = """
import json
from zenml.client import Client
v = Client().get_model_version("parking-occupancy", 1)
print(json.dumps({"metadata": v.run_metadata, "runs": [str(i) for i in v.pipeline_run_ids.values()]}, default=str))
"""
COUNT = """
import json
from zenml.client import Client
try:
    print(json.dumps(len(Client().list_model_versions(model_name_or_id="parking-occupancy").items)))
except KeyError:
    print(json.dumps(0))
"""


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    base = tmp_path_factory.mktemp("two-worlds")
    industry = Workspace(copy_project(base / "industry"), base / "industry-zenml",
                         {"XDG_CONFIG_HOME": str(base / "industry-home"),
                          "COLLABOPS_PSEUDONYMISATION_KEY": "industry-only-secret-0123456789"})
    university = Workspace(copy_project(base / "university"), base / "university-zenml",
                           {"XDG_CONFIG_HOME": str(base / "university-home")})
    for ws, partner in ((industry, "industry"), (university, "university")):
        shutil.rmtree(ws.root / "keys", ignore_errors=True)
        (ws.root / "keys").mkdir()
        result = ws.run("keys", "init", "--partner", partner)
        assert result.returncode == 0, result.stderr
    # "Committing" the public keys: each side gets the other's .pub file, nothing else.
    shutil.copy(industry.root / "keys" / "industry.pub", university.root / "keys")
    shutil.copy(university.root / "keys" / "university.pub", industry.root / "keys")
    exchange = base / "exchange"
    raw = base / "industry-private" / "raw.parquet"
    assert industry.run("generate-data", "--out", str(raw), "--months", "4", "--car-parks", "8").returncode == 0

    exported = industry.run("export-data", "--data", str(raw), "--out", str(exchange))
    assert exported.returncode == 0, exported.stderr[-3000:]
    data_bundle = next(exchange.glob("data-*"))
    config = yaml.safe_load((ROOT / "tests" / "configs" / "fast.yaml").read_text())
    config["parameters"]["model_name"] = "parking-occupancy"
    config_path = university.root / "handover-test.yaml"
    config_path.write_text(yaml.safe_dump(config))
    trained = university.run("train", "--data-bundle", str(data_bundle), "--config", str(config_path))
    assert trained.returncode == 0, trained.stderr[-3000:]
    handed = university.run("handover", "--version", "1", "--out", str(exchange), "--archive")
    assert handed.returncode == 0, handed.stderr[-3000:]
    model_bundle = next(p for p in exchange.glob("model-*") if p.is_dir())
    return industry, university, raw, data_bundle, model_bundle, exported, base


def test_no_personal_value_leaves_the_industry_side(worlds):
    industry, _, raw, data_bundle, *_ = worlds
    raw_frame = pd.read_parquet(raw)
    exported = pd.read_parquet(data_bundle / "data" / "occupancy.parquet")
    for column in ("last_entry_plate", "last_entry_customer_id"):
        values = set(raw_frame[column].dropna())
        assert not values & set(exported[column].dropna()), column
        assert exported[column].dropna().str.fullmatch(r"[0-9a-f]{64}").all()
        probes = [v.encode() for v in list(values)[:300]]
        for path in data_bundle.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert not [p for p in probes if p in content], f"raw {column} value in {path.name}"
    # Joins still work: each raw plate maps to exactly one pseudonym, and distinct plates stay distinct.
    keys = ["car_park_id", "timestamp"]
    pairs = raw_frame[keys + ["last_entry_plate"]].merge(
        exported[keys + ["last_entry_plate"]], on=keys, suffixes=("_raw", "_pseudo")).dropna()
    assert len(pairs) > 1000
    assert (pairs.groupby("last_entry_plate_raw")["last_entry_plate_pseudo"].nunique() == 1).all()
    assert (pairs.groupby("last_entry_plate_pseudo")["last_entry_plate_raw"].nunique() == 1).all()


def test_the_holdout_stays_on_the_industry_side(worlds):
    _, _, raw, data_bundle, _, exported, _ = worlds
    raw_frame = pd.read_parquet(raw)
    bundle_frame = pd.read_parquet(data_bundle / "data" / "occupancy.parquet")
    holdout_start = raw_frame["timestamp"].sort_values().iloc[len(bundle_frame)]
    assert bundle_frame["timestamp"].max() < holdout_start
    assert len(bundle_frame) < 0.95 * len(raw_frame)
    assert "acceptance holdout kept on this side" in exported.stdout


def test_imported_version_carries_the_university_run_and_metrics(worlds):
    industry, university, _, _, model_bundle, *_ = worlds
    imported = industry.run("import-model", f"{model_bundle}.tar.gz")
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert "as parking-occupancy version 1 on stack 'industry-local'" in imported.stdout
    ours = industry.query(VERSION)["metadata"]
    theirs = university.query(VERSION)
    assert ours["producer"]["partner"] == "university"
    assert ours["producer_model"]["training_run_id"] == theirs["runs"][0]
    assert ours["producer_metrics"]["test"]["overall"]["mae"] == pytest.approx(
        theirs["metadata"]["test_metrics"]["overall"]["mae"])
    assert ours["imported_bundle_id"] == json.loads((model_bundle / "manifest.json").read_text())["bundle_id"]


def test_the_imported_model_scores_a_batch_file(worlds, tmp_path):
    industry, _, raw, _, model_bundle, *_ = worlds
    if industry.query(COUNT) == 0:
        assert industry.run("import-model", str(model_bundle)).returncode == 0
    source = tmp_path / "to-score.csv"
    pd.read_parquet(raw).drop(columns=["occupancy_rate"]).head(5000).to_csv(source, index=False)
    out = tmp_path / "scored.parquet"
    result = industry.run("infer", "--data", str(source), "--out", str(out), "--version", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    scored = pd.read_parquet(out)
    assert len(scored) == 5000 and scored["prediction"].between(-0.2, 1.2).all()
    assert set(scored["model_version"]) == {"1"}
    assert set(scored["bundle_id"]) == {json.loads((model_bundle / "manifest.json").read_text())["bundle_id"]}
    bad = tmp_path / "bad.csv"
    pd.read_csv(source).assign(capacity="lots").to_csv(bad, index=False)
    refused = industry.run("infer", "--data", str(bad), "--out", str(tmp_path / "bad-out.csv"), "--version", "1")
    assert refused.returncode == 1 and "column 'capacity': values are not of type int" in refused.stderr
    assert not (tmp_path / "bad-out.csv").exists() and not list(tmp_path.glob(".*partial"))


def test_the_two_stores_share_nothing(worlds):
    industry, university, *_ = worlds
    assert industry.zenml_config != university.zenml_config
    assert set(university.query(RUNS)) == {"training", "handover"}
    assert "training" not in industry.query(RUNS) and "export-data" in industry.query(RUNS)
    assert not list(university.zenml_config.rglob("*holdout*"))


@pytest.mark.parametrize("damage, check", [
    (lambda root: (root / "model" / "model.skops").write_bytes(b"\0" + (root / "model" / "model.skops").read_bytes()[1:]), "files"),
    (lambda root: (root / "model" / "backdoor.py").write_text("import os"), "unlisted files"),
    (lambda root: (root / "manifest.sig").write_bytes(b"\0" * 64), "signature"),
])
def test_a_tampered_model_bundle_is_refused_and_nothing_is_imported(worlds, tmp_path, damage, check):
    industry, _, _, _, model_bundle, *_ = worlds
    before = industry.query(COUNT)
    broken = tmp_path / "model-broken"
    shutil.copytree(model_bundle, broken)
    damage(broken)
    result = industry.run("import-model", str(broken))
    assert result.returncode == 1
    assert f"bundle refused, check '{check}' failed" in result.stderr
    assert industry.query(COUNT) == before


def _resign(root: Path, private_key: Path, change) -> None:
    """Edit the manifest and sign it again with the university's real key: only later checks can catch it."""
    from collabops.exchange.signing import load_signer

    manifest = json.loads((root / "manifest.json").read_text())
    change(root, manifest)
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (root / "manifest.json").write_bytes(data)
    (root / "manifest.sig").write_bytes(load_signer("university", private_key).sign(data))


def _escape(root: Path, manifest: dict) -> None:
    manifest["files"].append({"path": "../outside.json", "size": 2, "sha256": "0" * 64})


def _link(root: Path, manifest: dict) -> None:
    target = root / "metrics.json"
    target.rename(root.parent / "elsewhere.json")
    target.symlink_to(root.parent / "elsewhere.json")


def _other_contract(root: Path, manifest: dict) -> None:
    import hashlib

    raw = yaml.safe_load((root / "contract.yaml").read_text())
    raw["columns"] = [c for c in raw["columns"] if c["name"] != "price_per_hour"]
    (root / "contract.yaml").write_text(yaml.safe_dump(raw))
    content = (root / "contract.yaml").read_bytes()
    for entry in manifest["files"]:
        if entry["path"] == "contract.yaml":
            entry.update(size=len(content), sha256=hashlib.sha256(content).hexdigest())


@pytest.mark.parametrize("change, check, fragment", [
    (lambda root, m: m.update(format_version=2), "format version", "format_version 2 is not understood"),
    (_escape, "paths", "'../outside.json' contains '..'"),
    (_link, "paths", "'metrics.json' is a link"),
    (_other_contract, "contract", "feature column 'price_per_hour' is missing there"),
])
def test_a_validly_signed_but_broken_bundle_is_refused_and_nothing_is_imported(worlds, tmp_path, change, check,
                                                                               fragment):
    industry, _, _, _, model_bundle, _, base = worlds
    before = industry.query(COUNT)
    broken = tmp_path / "work" / "model-broken"
    shutil.copytree(model_bundle, broken)
    _resign(broken, base / "university-home" / "collabops" / "keys" / "university.key", change)
    result = industry.run("import-model", str(broken))
    assert result.returncode == 1
    assert f"bundle refused, check '{check}' failed" in result.stderr and fragment in result.stderr
    assert industry.query(COUNT) == before


def test_an_archive_escaping_its_folder_is_refused_before_extraction(worlds, tmp_path):
    import io
    import tarfile

    industry, *_ = worlds
    packed = tmp_path / "deep" / "model-evil.tar.gz"
    packed.parent.mkdir()
    with tarfile.open(packed, "w:gz") as tar:
        member = tarfile.TarInfo("../../planted.txt")
        member.size = 5
        tar.addfile(member, io.BytesIO(b"owned"))
    result = industry.run("import-model", str(packed))
    assert result.returncode == 1 and "check 'archive member paths' failed" in result.stderr
    assert not list(tmp_path.rglob("planted.txt")) and not list(Path("/tmp").glob("planted.txt"))


def test_a_bundle_signed_by_ourselves_is_not_trusted_as_the_other_partner(worlds, tmp_path):
    industry, university, _, data_bundle, *_ = worlds
    result = industry.run("train", "--data-bundle", str(data_bundle), "--partner", "industry")
    assert result.returncode == 1
    assert "check 'signature' failed" in result.stderr and "trusted: university" in result.stderr
    verify = university.run("verify", str(data_bundle))
    assert verify.returncode == 0 and "signed by 'industry'" in verify.stdout
