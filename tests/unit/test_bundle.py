"""Bundles: a good one verifies; every way of breaking one is refused by name."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from collabops.data.contract import load_contract
from collabops.exchange.bundle import BundleError, Producer, archive, open_bundle, seal, sha256_file
from collabops.exchange.model_bundle import REQUIRED_FILES
from collabops.exchange.signing import generate_key_pair, load_signer, trusted_keys

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(ROOT / "configs" / "contract.yaml")


@pytest.fixture
def keys(tmp_path):
    """University and industry key pairs, plus an outsider's key that nobody trusts."""
    public = tmp_path / "keys"
    for partner in ("university", "industry"):
        generate_key_pair(tmp_path / "private" / f"{partner}.key", public / f"{partner}.pub", partner)
    generate_key_pair(tmp_path / "private" / "mallory.key", tmp_path / "elsewhere" / "mallory.pub", "mallory")
    return public, tmp_path / "private"


def _signer(keys, partner):
    return load_signer(partner, keys[1] / f"{partner}.key")


def _build(tmp_path: Path, keys, partner: str = "university", kind: str = "model") -> Path:
    """A sealed bundle holding every file a model bundle requires (random bytes: only the checks read them)."""
    root = tmp_path / "bundle"
    for name in REQUIRED_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(os.urandom(256))
    (root / "model" / "model.skops").write_bytes(os.urandom(4096))
    (root / "metrics.json").write_text(json.dumps({"mae": 0.03}))
    shutil.copy(ROOT / "configs" / "contract.yaml", root / "contract.yaml")
    seal(root, kind, Producer(partner=partner, stack=f"{partner}-local", zenml_run_id="run-1"),
         CONTRACT.digest(), _signer(keys, partner))
    return root


def _resign(root: Path, keys, partner: str, change) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest)
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (root / "manifest.json").write_bytes(data)
    (root / "manifest.sig").write_bytes(_signer(keys, partner).sign(data))


def _refused(root: Path, keys, check: str, fragment: str, **kwargs) -> None:
    with pytest.raises(BundleError) as error, open_bundle(root, trusted_keys(keys[0]), **kwargs):
        pass
    assert error.value.check == check
    assert fragment in str(error.value)
    assert str(root) in str(error.value)


def test_good_bundle_verifies_as_folder_and_archive(tmp_path, keys):
    root = _build(tmp_path, keys)
    with open_bundle(root, trusted_keys(keys[0]), kind="model", contract=CONTRACT) as bundle:
        assert bundle.signer == "university" and bundle.kind == "model"
        assert {f["path"] for f in bundle.manifest["files"]} == set(REQUIRED_FILES)
        assert bundle.manifest["producer"]["zenml_run_id"] == "run-1"
    packed = archive(root, tmp_path / "bundle.tar.gz")
    with open_bundle(packed, trusted_keys(keys[0]), kind="model", contract=CONTRACT) as bundle:
        assert (bundle.root / "model" / "model.skops").read_bytes() == (root / "model" / "model.skops").read_bytes()


def test_signed_by_an_untrusted_key(tmp_path, keys):
    root = _build(tmp_path, keys)
    (root / "manifest.sig").write_bytes(_signer(keys, "mallory").sign((root / "manifest.json").read_bytes()))
    _refused(root, keys, "signature", "does not verify manifest.json with any trusted key")


def test_manifest_edited_after_signing(tmp_path, keys):
    root = _build(tmp_path, keys)
    text = (root / "manifest.json").read_text().replace('"run-1"', '"run-2"')
    (root / "manifest.json").write_text(text)
    _refused(root, keys, "signature", "does not verify")


def test_signer_is_not_the_named_producer(tmp_path, keys):
    root = _build(tmp_path, keys)
    _resign(root, keys, "industry", lambda m: None)
    _refused(root, keys, "signature", "signed by 'industry' but the manifest names producer 'university'")


def test_payload_changed_same_size(tmp_path, keys):
    root = _build(tmp_path, keys)
    (root / "model" / "model.skops").write_bytes(os.urandom(4096))
    _refused(root, keys, "files", "'model/model.skops' has SHA-256")


def test_payload_truncated(tmp_path, keys):
    root = _build(tmp_path, keys)
    (root / "metrics.json").write_text("{}")
    _refused(root, keys, "files", "'metrics.json' has 2 bytes")


def test_payload_missing(tmp_path, keys):
    root = _build(tmp_path, keys)
    (root / "metrics.json").unlink()
    _refused(root, keys, "files", "'metrics.json' is listed in the manifest but missing")


def test_unlisted_file(tmp_path, keys):
    root = _build(tmp_path, keys)
    (root / "model" / "extra.pkl").write_bytes(b"surprise")
    _refused(root, keys, "unlisted files", "model/extra.pkl")


@pytest.mark.parametrize("bad_path, fragment", [("../outside.txt", "contains '..'"),
                                                ("/etc/passwd", "absolute")])
def test_manifest_paths_leaving_the_bundle(tmp_path, keys, bad_path, fragment):
    root = _build(tmp_path, keys)
    _resign(root, keys, "university",
            lambda m: m["files"].append({"path": bad_path, "size": 1, "sha256": "0" * 64}))
    _refused(root, keys, "paths", fragment)


def test_payload_that_is_a_link(tmp_path, keys):
    root = _build(tmp_path, keys)
    secret = tmp_path / "secret.txt"
    secret.write_text("industry secret")
    (root / "metrics.json").unlink()
    (root / "metrics.json").symlink_to(secret)
    size, digest = sha256_file(secret)
    _resign(root, keys, "university", lambda m: [f.update(size=size, sha256=digest)
                                                 for f in m["files"] if f["path"] == "metrics.json"])
    _refused(root, keys, "paths", "'metrics.json' is a link")


def test_unknown_format_version(tmp_path, keys):
    root = _build(tmp_path, keys)
    _resign(root, keys, "university", lambda m: m.update(format_version=99))
    _refused(root, keys, "format version", "format_version 99 is not understood")


def test_wrong_kind(tmp_path, keys):
    root = _build(tmp_path, keys, kind="data")
    _refused(root, keys, "kind", "this is a data bundle, expected a model bundle", kind="model")


def test_incompatible_contract_names_the_columns(tmp_path, keys):
    root = _build(tmp_path, keys)
    raw = yaml.safe_load((root / "contract.yaml").read_text())
    for column in raw["columns"]:
        if column["name"] == "capacity":
            column["type"] = "float"
    raw["columns"] = [c for c in raw["columns"] if c["name"] != "rain_mm"]
    (root / "contract.yaml").write_text(yaml.safe_dump(raw))
    size, digest = sha256_file(root / "contract.yaml")
    _resign(root, keys, "university", lambda m: [f.update(size=size, sha256=digest)
                                                 for f in m["files"] if f["path"] == "contract.yaml"])
    _refused(root, keys, "contract", "column 'capacity' is float there, int here", contract=CONTRACT)
    _refused(root, keys, "contract", "feature column 'rain_mm' is missing there", contract=CONTRACT)


def _evil_archive(path: Path, member: tarfile.TarInfo, content: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(member, io.BytesIO(content) if member.isfile() else None)
    return path


def test_archive_member_escaping_the_target_is_refused_before_extraction(tmp_path, keys):
    info = tarfile.TarInfo("../../escaped.txt")
    info.size = 1
    packed = _evil_archive(tmp_path / "evil.tar.gz", info)
    _refused(packed, keys, "archive member paths", "member '../../escaped.txt' contains '..'")
    assert not list(tmp_path.parent.glob("escaped.txt")) and not (tmp_path / "escaped.txt").exists()


def test_archive_with_a_link_member_is_refused(tmp_path, keys):
    info = tarfile.TarInfo("model.skops")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    packed = _evil_archive(tmp_path / "link.tar.gz", info)
    _refused(packed, keys, "archive member paths", "is a link or special file")


def test_corrupt_archive(tmp_path, keys):
    packed = tmp_path / "broken.tar.gz"
    packed.write_bytes(b"not gzip")
    _refused(packed, keys, "archive", "not a readable .tar.gz")


def test_private_key_is_private_and_never_overwritten(tmp_path, keys):
    private = keys[1] / "university.key"
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(Exception, match="already exists"):
        generate_key_pair(private, keys[0] / "university.pub", "university")
    assert "PRIVATE" not in (keys[0] / "university.pub").read_text()
