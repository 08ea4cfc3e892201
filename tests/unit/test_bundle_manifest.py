"""The manifest and what it promises: read within its ceiling, parsed strictly, checked against its kind's schema.

Every broken manifest here is signed again with the producer's real key, so
the signature passes and only the checks after it can refuse. Each refusal
is a ``BundleError`` naming the bundle, the check and the field.
"""

from __future__ import annotations

import json
import os
import re
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from collabops.data.contract import load_contract
from collabops.exchange.bundle import BundleError, Limits, contract_differences, open_bundle, verify
from collabops.exchange.signing import trusted_keys
from tests.cli.test_import_refusals import copy_of, reseal
from tests.conftest import CONTRACT, data_bundle, example_data, key_pair


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A data bundle signed by the industry, the keys folder trusting it, and the industry's private key."""
    base = tmp_path_factory.mktemp("manifests")
    private = key_pair(base / "keys", base / "industry-home", "industry")
    key_pair(base / "keys", base / "university-home", "university")
    return data_bundle(example_data(months=1, car_parks=2), private, base / "exchange"), base / "keys", private


def _refused(root: Path, keys: Path, check: str, fragment: str, **kwargs: Any) -> BundleError:
    with pytest.raises(BundleError) as refused:
        verify(root, trusted_keys(keys), **kwargs)
    assert refused.value.check == check, refused.value
    assert fragment in refused.value.detail, refused.value
    assert str(refused.value).startswith(f"{root}: bundle refused, check '{check}' failed: ")
    return refused.value


def _with_raw(text_change) -> Any:
    """A ``reseal`` change that signs the manifest's JSON text after ``text_change`` edits it."""
    return lambda manifest: text_change(json.dumps(manifest, indent=2, sort_keys=True)).encode("utf-8")


WRONG_SHAPES = {
    "files holding strings": (lambda m: m.update(files=[f["path"] for f in m["files"]]), "manifest",
                              "files.0: Input should be a valid dictionary or instance of FileEntry "
                              "(got 'contract.yaml')"),
    "producer a string": (lambda m: m.update(producer="industry"), "manifest",
                          "producer: Input should be a valid dictionary or instance of ProducerEntry (got 'industry')"),
    "a JSON list": (lambda m: json.dumps([m]).encode(), "manifest", "manifest.json holds a JSON list, not an object"),
    "a JSON string": (lambda m: b'"data"', "manifest", "manifest.json holds a JSON string, not an object"),
    "not JSON at all": (lambda m: b"kind: data\n", "manifest", "manifest.json is not JSON (Expecting value: line 1"),
    "not UTF-8": (lambda m: b"\xff\xfe{}", "manifest", "manifest.json is not UTF-8 text (byte 0)"),
    "nested too deeply": (lambda m: b"[" * 100_000 + b"]" * 100_000, "manifest", "manifest.json: nested too deeply"),
    "a size as a string": (lambda m: m["files"][0].update(size="12"), "manifest",
                           "files.0.size: Input should be a valid integer (got '12')"),
    "a size as a float": (lambda m: m["files"][0].update(size=12.0), "manifest",
                          "files.0.size: Input should be a valid integer (got 12.0)"),
    "a negative size": (lambda m: m["files"][0].update(size=-1), "manifest",
                        "files.0.size: Input should be greater than or equal to 0 (got -1)"),
    "a short hash": (lambda m: m["files"][0].update(sha256="abc"), "manifest",
                     "files.0.sha256: String should match pattern"),
    "the same path twice": (lambda m: m["files"].append(dict(m["files"][0])), "manifest",
                            "files: 'contract.yaml' is listed twice"),
    "a duplicate key": (_with_raw(lambda text: text.replace('"kind": "data",', '"kind": "data", "kind": "data",')),
                        "manifest", "manifest.json: key 'kind' appears twice in one object"),
    "NaN": (_with_raw(lambda text: text.replace('"format_version": 1', '"format_version": NaN')), "manifest",
            "manifest.json: 'NaN' is not a JSON number"),
    "an unknown field": (lambda m: m.update(surprise=True), "manifest", "surprise: not a manifest field"),
    "a bundle id that is a path": (lambda m: m.update(bundle_id="../../etc"), "manifest",
                                   "bundle_id: String should match pattern"),
    "a creation time that is no time": (lambda m: m.update(created_at="yesterday"), "manifest",
                                        "created_at: not an ISO 8601 date and time (got 'yesterday')"),
    "an unknown kind": (lambda m: m.update(kind="weights"), "manifest",
                        "kind: must be one of data, model (got 'weights')"),
    "rows as a string": (lambda m: m.update(rows=str(m["rows"])), "manifest", "rows: Input should be a valid integer"),
    "a time zone other than the contract's": (lambda m: m.update(time_zone="UTC"), "data",
                                              "the manifest says the times are in UTC, the bundle's contract says "
                                              "Europe/Stockholm"),
    "no data file": (lambda m: m.__delitem__("data_file"), "manifest", "data_file: missing"),
    "format version as a string": (lambda m: m.update(format_version="1"), "format version",
                                   "format_version '1' is not understood"),
    "format version as a boolean": (lambda m: m.update(format_version=True), "format version",
                                    "format_version True is not understood"),
    "a path in another spelling": (lambda m: m["files"][0].update(path="./contract.yaml"), "paths",
                                   "manifest path './contract.yaml' is not canonical (it means 'contract.yaml')"),
}


@pytest.mark.parametrize("name", sorted(WRONG_SHAPES))
def test_a_validly_signed_manifest_of_the_wrong_shape_is_refused_by_name(signed, tmp_path, name):
    bundle, keys, private = signed
    change, check, fragment = WRONG_SHAPES[name]
    root = copy_of(bundle, tmp_path)
    reseal(root, private, partner="industry", change=change)
    _refused(root, keys, check, fragment, kind="data")


def test_the_good_data_bundle_verifies_as_folder_and_archive(signed, tmp_path):
    from collabops.exchange.bundle import archive

    bundle, keys, _ = signed
    verified = verify(bundle, trusted_keys(keys), kind="data", contract=CONTRACT_SPEC)
    assert verified.signer == "industry" and verified.name == bundle
    packed = archive(bundle, tmp_path / "bundle.tar.gz")
    with open_bundle(packed, trusted_keys(keys), kind="data", contract=CONTRACT_SPEC) as opened:
        assert opened.name == packed and opened.root != packed and opened.manifest == verified.manifest


CONTRACT_SPEC = load_contract(CONTRACT)


def test_a_2_gib_manifest_is_refused_without_being_read(signed, tmp_path):
    """A sparse 2 GiB manifest.json: refused from its size, in well under a second, with a few KiB of memory."""
    bundle, keys, _ = signed
    root = copy_of(bundle, tmp_path)
    with open(root / "manifest.json", "r+b") as handle:
        handle.truncate(2 * 1024 ** 3)
    tracemalloc.start()
    started = time.perf_counter()
    _refused(root, keys, "size limits", "manifest.json has 2147483648 bytes, more than 1048576 "
                                        "(exchange.max_manifest_bytes)")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 1024 ** 2, (elapsed, peak)


def test_the_manifest_ceiling_is_the_projects(signed):
    bundle, keys, _ = signed
    size = (bundle / "manifest.json").stat().st_size
    _refused(bundle, keys, "size limits", f"manifest.json has {size} bytes, more than {size - 1}",
             limits=Limits(max_bundle_bytes=2 ** 30, max_bundle_files=100, max_manifest_bytes=size - 1))
    assert verify(bundle, trusted_keys(keys), limits=Limits(2 ** 30, 100, size)).kind == "data"


@pytest.mark.parametrize("limits, fragment", [
    (Limits(max_bundle_bytes=100, max_bundle_files=100, max_manifest_bytes=2 ** 20),
     "the manifest lists {total} bytes, more than 100 (exchange.max_bundle_bytes)"),
    (Limits(max_bundle_bytes=2 ** 30, max_bundle_files=4, max_manifest_bytes=2 ** 20),
     "the manifest lists 3 files; with the manifest pair more than 4 (exchange.max_bundle_files)"),
])
def test_the_listed_files_are_checked_against_the_ceilings_before_any_is_hashed(signed, limits, fragment):
    bundle, keys, _ = signed
    total = sum(f["size"] for f in json.loads((bundle / "manifest.json").read_text())["files"])
    _refused(bundle, keys, "size limits", fragment.format(total=total), limits=limits)


def test_a_folder_full_of_unlisted_files_is_walked_only_up_to_the_ceiling(signed, tmp_path):
    bundle, keys, _ = signed
    root = copy_of(bundle, tmp_path)
    for i in range(30):
        (root / f"extra-{i}.txt").write_text("x")
    _refused(root, keys, "size limits", "the folder holds more than 10 files (exchange.max_bundle_files)",
             limits=Limits(max_bundle_bytes=2 ** 30, max_bundle_files=10, max_manifest_bytes=2 ** 20))
    _refused(root, keys, "unlisted files", "not in the manifest: extra-0.txt")


def test_a_signature_of_the_wrong_length_or_a_linked_manifest_is_refused(signed, tmp_path):
    bundle, keys, _ = signed
    root = copy_of(bundle, tmp_path)
    (root / "manifest.sig").write_bytes(b"0123456789")
    _refused(root, keys, "signature", "manifest.sig has 10 bytes; an Ed25519 signature has 64")
    linked = copy_of(bundle, tmp_path / "linked")
    (linked / "manifest.json").rename(tmp_path / "elsewhere.json")
    (linked / "manifest.json").symlink_to(tmp_path / "elsewhere.json")
    _refused(linked, keys, "signature", "manifest.json is not a regular file")


def test_a_bundle_handed_to_the_wrong_command_is_refused_as_the_wrong_kind_whoever_signed_it(signed, tmp_path):
    """The industry's own data bundle, received by the industry (its key left out): the kind, not the signature."""
    bundle, keys, private = signed
    own_left_out = trusted_keys(keys, exclude=["industry"])
    with pytest.raises(BundleError) as refused:
        verify(bundle, own_left_out, kind="model", command="import-model")
    assert refused.value.check == "kind"
    assert refused.value.detail == "this is a data bundle, import-model takes model bundles"
    with pytest.raises(BundleError, match="this is a data bundle, expected a model bundle"):
        verify(bundle, own_left_out, kind="model")
    as_model = copy_of(bundle, tmp_path)
    reseal(as_model, private, partner="industry", change=lambda m: m.update(kind="model"))
    with pytest.raises(BundleError) as reverse:
        verify(as_model, trusted_keys(keys), kind="data", command="train --data-bundle")
    assert reverse.value.detail == "this is a model bundle, train --data-bundle takes data bundles"


def test_the_receiving_partners_own_key_does_not_count(signed):
    bundle, keys, _ = signed
    _refused(bundle, keys, "signature", "signed with the key of 'industry', the receiving partner itself",
             partner="industry")
    _refused(bundle, keys, "signature", "the receiving partner itself", partner={"data": "industry"})
    assert verify(bundle, trusted_keys(keys), partner={"data": "university", "model": "industry"}).signer == "industry"


def _parquet(change):
    def damage(root: Path) -> None:
        path = root / "data" / "parking-occupancy.parquet"
        change(pd.read_parquet(path)).to_parquet(path, index=False)
    return damage


@pytest.mark.parametrize("damage, check, fragment", [
    (lambda root: (root / "profile.json").unlink(), "required files",
     "a data bundle must hold profile.json; this one does not"),
    (lambda root: (root / "data" / "parking-occupancy.parquet").write_bytes(b"PAR1 not really"), "data",
     "data/parking-occupancy.parquet is not a readable Parquet file"),
    (_parquet(lambda frame: frame.iloc[1:]), "data", "data/parking-occupancy.parquet has {rows_less} rows, "
                                                    "the manifest says {rows}"),
    (_parquet(lambda frame: frame.assign(raw_plate="ABC123")), "data",
     "data/parking-occupancy.parquet does not have the contract's columns: not in the contract: raw_plate"),
    (_parquet(lambda frame: frame.drop(columns=["rain_mm"])), "data",
     "data/parking-occupancy.parquet does not have the contract's columns: missing rain_mm"),
    (lambda root: (root / "contract.yaml").write_text("a: &x [1]\nb: *x\n"), "contract",
     "contract.yaml is not a readable data contract: it uses YAML aliases"),
    (lambda root: (root / "contract.yaml").write_text("- just\n- a list\n"), "contract",
     "contract.yaml is not a readable data contract: it holds a list, not a mapping"),
])
def test_a_data_bundle_whose_payload_is_not_what_its_kind_needs_is_refused(signed, tmp_path, damage, check, fragment):
    bundle, keys, private = signed
    rows = json.loads((bundle / "manifest.json").read_text())["rows"]
    root = copy_of(bundle, tmp_path)
    damage(root)
    reseal(root, private, partner="industry")
    _refused(root, keys, check, fragment.format(rows=rows, rows_less=rows - 1), kind="data")


def test_a_data_file_the_manifest_names_but_does_not_list_is_a_missing_required_file(signed, tmp_path):
    bundle, keys, private = signed
    root = copy_of(bundle, tmp_path)
    reseal(root, private, partner="industry", change=lambda m: m.update(data_file="data/other.parquet"))
    _refused(root, keys, "required files", "a data bundle must hold data/other.parquet; this one does not")


def _with_categories(categories: list[str]) -> Any:
    raw = yaml.safe_load(CONTRACT.read_text())
    for column in raw["columns"]:
        if column["name"] == "car_park_kind":
            column["categories"] = categories
    from collabops.data.contract import contract_from_dict

    return contract_from_dict(raw)


def test_contract_compatibility_compares_category_lists_as_sets():
    ours = CONTRACT_SPEC.column("car_park_kind").categories
    assert ours is not None
    assert contract_differences(CONTRACT_SPEC, _with_categories(list(reversed(ours)))) == []
    assert contract_differences(CONTRACT_SPEC, _with_categories([*ours, "ferry_terminal"])) == [
        "column 'car_park_kind' has other categories: only there: ferry_terminal"]
    assert contract_differences(CONTRACT_SPEC, _with_categories(list(ours[1:]))) == [
        f"column 'car_park_kind' has other categories: only here: {ours[0]}"]


def test_the_size_check_reads_the_file_size_not_the_file(signed, tmp_path):
    """A listed file grown to 1 GiB (sparse) is refused from its size before it is hashed."""
    bundle, keys, _ = signed
    root = copy_of(bundle, tmp_path)
    with open(root / "profile.json", "r+b") as handle:
        handle.truncate(1024 ** 3)
    started = time.perf_counter()
    _refused(root, keys, "files", f"'profile.json' has {1024 ** 3} bytes, the manifest says "
                                  f"{os.path.getsize(bundle / 'profile.json')}")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("period, fragment", [
    ({"start": "2024-03-01T00:00:00+01:00", "end": "2024-02-01T00:00:00+01:00"}, "starts (2024-03-01T00:00:00+01:00) "
                                                                               "after it ends"),
    ({"start": "2024-01-01T00:00:00", "end": "2024-02-01T00:00:00+01:00"}, "both carry an offset, or neither"),
    ({"start": "last week", "end": "2024-02-01T00:00:00+01:00"}, "not an ISO 8601 date and time"),
])
def test_a_model_manifests_training_period_must_be_a_period(period, fragment):
    from pydantic import ValidationError

    from collabops.exchange.bundle import ModelInfo

    with pytest.raises(ValidationError, match=re.escape(fragment)):
        ModelInfo.model_validate({"training_period": period})
