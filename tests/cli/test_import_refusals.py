"""``import-model`` refuses a validly signed but unusable model bundle before the store exists, naming the bundle.

Every bundle here is signed with the university's real key after it was
changed, so only the checks after the signature can catch it. The commands
run in this process through the ``cli`` fixture, whose tripwire fails the
test if the command reaches the ZenML layer: a refusal there is proof that
no run and no model version was created. Archives are refused naming the
``.tar.gz``, never the temporary folder it is read from.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from collabops.exchange.bundle import MANIFEST, SIGNATURE, archive, sha256_file
from tests.conftest import (
    assert_refused,
    data_bundle,
    example_data,
    key_pair,
    model_bundle,
    write_project,
)


@dataclass(frozen=True)
class Exchange:
    """A data bundle (industry), a good model bundle (university), both keys trusted, and the industry's project."""

    keys: Path
    industry_key: Path
    university_key: Path
    data: Path
    model: Path
    project: Path


def build_exchange(base: Path) -> Exchange:
    """Keys for both partners in ``base/keys``, a one-month data bundle and a 5-iteration model bundle made from it."""
    keys = base / "keys"
    industry_key = key_pair(keys, base / "industry-home", "industry")
    university_key = key_pair(keys, base / "university-home", "university")
    data = data_bundle(example_data(months=1, car_parks=3), industry_key, base / "to-university")
    model = model_bundle(data, university_key, base / "to-industry", max_iter=5)
    return Exchange(keys, industry_key, university_key, data, model, write_project(base / "industry", keys_dir=keys))


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Exchange:
    return build_exchange(tmp_path_factory.mktemp("import-refusals"))


def reseal(root: Path, private_key: Path, partner: str = "university",
           change: Callable[[dict[str, Any]], bytes | None] | None = None) -> None:
    """Sign ``root`` again as it is now: every payload file listed anew, then the manifest changed by ``change``.

    ``change`` edits the manifest in place, or returns the exact bytes to sign instead (a manifest of the wrong shape).
    """
    from collabops.exchange.signing import load_signer

    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if rel not in (MANIFEST, SIGNATURE):
            size, digest = sha256_file(path)
            files.append({"path": rel, "size": size, "sha256": digest})
    manifest["files"] = files
    raw = change(manifest) if change else None
    data = raw if raw is not None else (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    (root / MANIFEST).write_bytes(data)
    (root / SIGNATURE).write_bytes(load_signer(partner, private_key).sign(data))


def copy_of(bundle: Path, where: Path) -> Path:
    copy = where / bundle.name
    shutil.copytree(bundle, copy)
    return copy


# --- ways to break a model bundle that a signature does not catch ------------------------------------------------


def _untrusted_model(root: Path) -> None:
    """The model file holds a type off the trusted list (a decision tree): what skops would run code for."""
    import numpy as np
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeRegressor

    tree = DecisionTreeRegressor(max_depth=2).fit(np.arange(10.0).reshape(-1, 1), np.arange(10.0))
    skops.io.dump(Pipeline([("estimator", tree)]), root / "model" / "model.skops")


def _not_a_model(root: Path) -> None:
    """The model file holds only trusted types, but no model: a plain dict."""
    import skops.io

    skops.io.dump({"weights": [1.0, 2.0]}, root / "model" / "model.skops")


def _garbage_model(root: Path) -> None:
    (root / "model" / "model.skops").write_bytes(b"this is not a zip file")


def _moved_predictions(root: Path) -> None:
    path = root / "reference" / "predictions.json"
    recorded = json.loads(path.read_text())
    recorded["predictions"] = [p + 0.5 for p in recorded["predictions"]]
    path.write_text(json.dumps(recorded))


def _other_categories(root: Path) -> None:
    raw = yaml.safe_load((root / "contract.yaml").read_text())
    for column in raw["columns"]:
        if column["name"] == "car_park_kind":
            column["categories"] = [*column["categories"][:-1], "ferry_terminal"]
    (root / "contract.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


BROKEN: dict[str, tuple[Callable[[Path], None], str, tuple[str, ...]]] = {
    "untrusted type": (_untrusted_model, "trusted types", (
        "model/model.skops contains types not on the trusted list: sklearn.tree._tree.Tree",)),
    "no model file": (lambda root: (root / "model" / "model.skops").unlink(), "required files", (
        "a model bundle must hold model/model.skops; this one does not",)),
    "no requirements.txt": (lambda root: (root / "requirements.txt").unlink(), "required files", (
        "a model bundle must hold requirements.txt; this one does not",)),
    "no reference predictions": (lambda root: (root / "reference" / "predictions.json").unlink(), "required files", (
        "a model bundle must hold reference/predictions.json; this one does not",)),
    "not a model": (_not_a_model, "reference predictions", (
        "re-predicting reference/sample.parquet failed: AttributeError: 'dict' object has no attribute 'predict'",)),
    "garbage model file": (_garbage_model, "trusted types", (
        "loading model/model.skops with the trusted types failed: BadZipFile: File is not a zip file",)),
    "predictions moved": (_moved_predictions, "reference predictions", (
        "this checkout predicts the reference sample differently from the producer",)),
    "other categories": (_other_categories, "contract", (
        "column 'car_park_kind' has other categories: only there: ferry_terminal; only here: university_campus",)),
}


@pytest.fixture(params=sorted(BROKEN))
def broken(request: pytest.FixtureRequest, exchange: Exchange, tmp_path: Path) -> tuple[Path, str, tuple[str, ...]]:
    """A copy of the good model bundle, broken one way and signed again by the university."""
    damage, check, fragments = BROKEN[request.param]
    root = copy_of(exchange.model, tmp_path)
    damage(root)
    reseal(root, exchange.university_key)
    return root, check, fragments


def test_a_validly_signed_unusable_model_bundle_is_refused_before_the_store(cli, exchange, broken):
    root, check, fragments = broken
    result = cli("import-model", root, "--project", exchange.project)
    assert_refused(result, f"{root}: bundle refused, check '{check}' failed", *fragments)
    assert result.err.count("error: ") == 1 and len(result.err.strip().splitlines()) == 1, result


def test_an_archive_is_refused_naming_the_archive_never_a_temporary_folder(cli, exchange, broken, tmp_path):
    root, check, fragments = broken
    packed = archive(root, tmp_path / "packed.tar.gz")
    result = cli("import-model", packed, "--project", exchange.project)
    assert_refused(result, f"{packed}: bundle refused, check '{check}' failed", *fragments)
    assert "collabops-bundle-" not in result.err and str(root) not in result.err, result


def test_a_data_bundle_handed_to_import_model_is_refused_as_the_wrong_kind(cli, exchange):
    """Signed by the industry itself (its own key does not count), yet the message is the kind, not the signature."""
    result = cli("import-model", exchange.data, "--project", exchange.project)
    assert_refused(result, f"{exchange.data}: bundle refused, check 'kind' failed: this is a data bundle, "
                           "import-model takes model bundles")


def test_a_model_bundle_signed_with_the_receivers_own_key_is_refused(cli, exchange, tmp_path):
    root = copy_of(exchange.model, tmp_path)
    reseal(root, exchange.industry_key, partner="industry",
           change=lambda manifest: manifest["producer"].update(partner="industry"))
    result = cli("import-model", root, "--project", exchange.project)
    assert_refused(result, "check 'signature' failed: signed with the key of 'industry', the receiving partner "
                           "itself")


@pytest.mark.parametrize("change, check, fragment", [
    (lambda m: m.update(files=[f["path"] for f in m["files"]]), "manifest",
     "files.0: Input should be a valid dictionary or instance of FileEntry (got 'MODEL_CARD.md')"),
    (lambda m: m.update(producer="university"), "manifest", "producer: Input should be a valid dictionary"),
    (lambda m: json.dumps([m]).encode(), "manifest", "manifest.json holds a JSON list, not an object"),
    (lambda m: b"kind: model\n", "manifest", "manifest.json is not JSON"),
    (lambda m: m["files"][0].update(size=str(m["files"][0]["size"])), "manifest",
     "files.0.size: Input should be a valid integer (got '"),
    (lambda m: m["files"].append(dict(m["files"][0])), "manifest", "files: 'MODEL_CARD.md' is listed twice"),
])
def test_a_validly_signed_manifest_of_the_wrong_shape_is_refused(cli, exchange, tmp_path, change, check, fragment):
    root = copy_of(exchange.model, tmp_path)
    reseal(root, exchange.university_key, change=change)
    assert_refused(cli("import-model", root, "--project", exchange.project),
                   f"{root}: bundle refused, check '{check}' failed", fragment)

