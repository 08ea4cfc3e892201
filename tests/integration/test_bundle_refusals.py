"""``import-model`` refuses a damaged, re-signed, unusable or exhausting bundle, and nothing is imported.

The industry side is the session's store, in this process; the bundles are
what ``run.py handover`` writes (the library's model bundle, signed with a
university key made here). The project's model has one good version
imported first, so "nothing imported" is a count that could have grown;
importing that bundle again is not a refusal, but changes nothing either.
The same refusals without a store, and every other case of each kind, are
in ``tests/cli/test_import_refusals.py`` and ``tests/unit/test_bundle_*.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from collabops.exchange.bundle import archive
from tests.cli.test_import_refusals import BROKEN, copy_of, reseal
from tests.conftest import (
    assert_refused,
    data_bundle,
    example_data,
    key_pair,
    model_bundle,
    run_cli,
    run_names,
    unique,
    version_numbers,
    write_project,
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Industry:
    project: Path
    model_name: str
    bundle: Path
    university_key: Path


@pytest.fixture(scope="module")
def industry(tmp_path_factory) -> Industry:
    """A project in the session's store trusting a university key, with one good model version imported."""
    base = tmp_path_factory.mktemp("bundle-refusals")
    keys = base / "keys"
    industry_key = key_pair(keys, base / "industry-home", "industry")
    university_key = key_pair(keys, base / "university-home", "university")
    data = data_bundle(example_data(months=2, car_parks=4), industry_key, base / "exchange")
    bundle = model_bundle(data, university_key, base / "exchange", max_iter=20)
    name = unique("refusals-model")
    project = write_project(base / "industry", model_name=name, keys_dir=keys)
    imported = run_cli("import-model", bundle, "--project", project)
    assert imported.code == 0, imported
    assert version_numbers(name) == [1]
    return Industry(project, name, bundle, university_key)


def _refused_and_nothing_imported(industry: Industry, path: Path, *fragments: str) -> None:
    runs_before = run_names("import-model")
    result = run_cli("import-model", path, "--project", industry.project)
    assert_refused(result, *fragments)
    assert version_numbers(industry.model_name) == [1]
    assert run_names("import-model") == runs_before  # refused before any run existed


def _flip_first_byte(root: Path) -> None:
    model = root / "model" / "model.skops"
    model.write_bytes(b"\0" + model.read_bytes()[1:])


@pytest.mark.parametrize("damage, check", [
    (_flip_first_byte, "files"),
    (lambda root: (root / "model" / "backdoor.py").write_text("import os"), "unlisted files"),
    (lambda root: (root / "manifest.sig").write_bytes(b"\0" * 64), "signature"),
])
def test_a_tampered_model_bundle_is_refused(industry, tmp_path, damage, check):
    broken = tmp_path / "model-broken"
    shutil.copytree(industry.bundle, broken)
    damage(broken)
    _refused_and_nothing_imported(industry, broken, f"bundle refused, check '{check}' failed")


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
    (lambda root, m: m.update(kind="data"), "kind", "this is a data bundle, import-model takes model bundles"),
])
def test_a_validly_signed_but_broken_bundle_is_refused(industry, tmp_path, change, check, fragment):
    broken = tmp_path / "work" / "model-broken"
    shutil.copytree(industry.bundle, broken)
    _resign(broken, industry.university_key, change)
    _refused_and_nothing_imported(industry, broken, f"bundle refused, check '{check}' failed", fragment)


def test_an_archive_escaping_its_folder_is_refused_before_extraction(industry, tmp_path):
    packed = tmp_path / "deep" / "model-evil.tar.gz"
    packed.parent.mkdir()
    with tarfile.open(packed, "w:gz") as tar:
        member = tarfile.TarInfo("../../planted.txt")
        member.size = 5
        tar.addfile(member, io.BytesIO(b"owned"))
    _refused_and_nothing_imported(industry, packed, "check 'archive member paths' failed")
    assert not list(tmp_path.rglob("planted.txt")) and not list(Path("/tmp").glob("planted.txt"))


@pytest.mark.parametrize("name", ["untrusted type", "no model file", "predictions moved"])
def test_a_validly_signed_model_bundle_that_cannot_be_used_creates_no_version(industry, tmp_path, name):
    """Refused before any run: so no version exists that ``infer --version`` could later trip over."""
    damage, check, fragments = BROKEN[name]
    broken = copy_of(industry.bundle, tmp_path)
    damage(broken)
    reseal(broken, industry.university_key)
    _refused_and_nothing_imported(industry, broken, f"{broken}: bundle refused, check '{check}' failed", *fragments)
    data = tmp_path / "score.csv"
    example_data(months=1, car_parks=2).to_csv(data, index=False)
    assert_refused(run_cli("infer", "--data", data, "--out", tmp_path / "out.csv", "--version", "2", "--project",
                           industry.project), f"model '{industry.model_name}' has no version '2'")


def test_a_manifest_of_the_wrong_shape_creates_no_version(industry, tmp_path):
    broken = copy_of(industry.bundle, tmp_path)
    reseal(broken, industry.university_key, change=lambda m: m["files"].append(dict(m["files"][0])))
    _refused_and_nothing_imported(industry, broken, "check 'manifest' failed: files: 'MODEL_CARD.md' is listed twice")


def test_an_archive_bomb_is_refused_before_extraction_and_creates_no_version(industry, tmp_path):
    from tests.unit.test_bundle_archive import zeros_bomb

    _refused_and_nothing_imported(industry, zeros_bomb(tmp_path / "model-bomb.tar.gz"),
                                  "check 'size limits' failed: the archive's members hold more than 2147483648 bytes")


def test_importing_the_same_bundle_again_says_which_version_it_is_and_changes_nothing(industry, tmp_path):
    bundle_id = json.loads((industry.bundle / "manifest.json").read_text())["bundle_id"]
    runs_before = run_names("import-model")
    for again in (industry.bundle, archive(industry.bundle, tmp_path / "again.tar.gz")):
        result = run_cli("import-model", again, "--project", industry.project)
        assert result.code == 0, result
        assert (f"bundle {bundle_id} is already imported as {industry.model_name} version 1 on stack "
                "'industry-local'; nothing changed") in result.out
        assert "imported bundle" not in result.out
    assert version_numbers(industry.model_name) == [1]
    assert run_names("import-model") == runs_before


def test_the_good_bundle_as_an_archive_is_imported(industry, tmp_path):
    """The control for the refusals above: the same bundle, packed, imports as version 1 of another model."""
    packed = archive(industry.bundle, tmp_path / f"{industry.bundle.name}.tar.gz")
    project = write_project(tmp_path / "own", keys_dir=Path(yaml.safe_load(industry.project.read_text())
                                                            ["exchange"]["keys_dir"]))
    result = run_cli("import-model", packed, "--project", project)
    assert result.code == 0, result
    assert "imported bundle" in result.out and "version 1 on stack 'industry-local'" in result.out
