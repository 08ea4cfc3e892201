"""Bundles: the only things that cross the boundary between the partners.

A bundle is a directory (or a ``.tar.gz`` of one) with ``manifest.json``
(kind, format version, id, producer, contract digest, and the path, size and
SHA-256 of every payload file), ``manifest.sig`` (an Ed25519 signature over
the manifest's exact bytes) and the payload. The receiver checks everything
before it reads a payload byte: the signature by a trusted partner's key,
the format version, every path, every size and hash, that nothing unlisted
is present, and that the contract matches its own. Hashing streams large
chunks, so memory stays flat whatever the payload size.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from collabops.data.contract import DataContract, contract_from_dict
from collabops.errors import CollabopsError
from collabops.exchange.signing import Signer, identify_signer

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CONTRACT_FILE = "contract.yaml"
KINDS = ("data", "model")
CHUNK = 8 * 1024 * 1024


class BundleError(CollabopsError):
    """A bundle failed a check; nothing from it has been read or imported."""

    def __init__(self, bundle: Path | str, check: str, detail: str) -> None:
        self.check = check
        super().__init__(f"{bundle}: bundle refused, check '{check}' failed: {detail}")


@dataclass(frozen=True)
class Producer:
    """Who made a bundle, and from what."""

    partner: str
    stack: str | None = None
    zenml_run_id: str | None = None
    code_revision: str | None = None


def sha256_file(path: Path, chunk: int = CHUNK) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in large chunks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def _payload_files(root: Path) -> list[str]:
    """Relative POSIX paths of every entry below ``root`` except the manifest pair."""
    found = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name in files + [d for d in dirs if (Path(directory) / d).is_symlink()]:
            rel = (Path(directory) / name).relative_to(root).as_posix()
            if rel not in (MANIFEST, SIGNATURE):
                found.append(rel)
    return sorted(found)


def seal(root: Path, kind: str, producer: Producer, contract_digest: str, signer: Signer,
         extra: dict[str, Any] | None = None, bundle_id: str | None = None) -> dict[str, Any]:
    """Write ``manifest.json`` for every file under ``root`` and sign it. Returns the manifest.

    ``bundle_id`` is a new UUID unless the caller chose one before (an export
    tags the holdout it keeps back with the id of the bundle it writes).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    files = []
    for rel in _payload_files(root):
        if (root / rel).is_symlink():
            raise ValueError(f"{root / rel}: links cannot be bundled")
        size, digest = sha256_file(root / rel)
        files.append({"path": rel, "size": size, "sha256": digest})
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "bundle_id": bundle_id or str(uuid.uuid4()),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "producer": {k: v for k, v in producer.__dict__.items() if v is not None},
        "contract_digest": contract_digest,
        "files": files,
        **(extra or {}),
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    (root / MANIFEST).write_bytes(data)
    (root / SIGNATURE).write_bytes(signer.sign(data))
    return manifest


def archive(root: Path, out: Path) -> Path:
    """Pack a sealed bundle directory into ``out`` (``.tar.gz``), written atomically."""
    partial = out.with_name(f".{out.name}.partial")
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
        for rel in [MANIFEST, SIGNATURE, *_payload_files(root)]:
            tar.add(root / rel, arcname=rel, recursive=False)
    partial.replace(out)
    return out


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that passed every check; ``root`` is safe to read."""

    root: Path
    manifest: dict[str, Any]
    signer: str

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def bundle_id(self) -> str:
        return str(self.manifest["bundle_id"])

    def contract(self) -> DataContract:
        import yaml

        return contract_from_dict(yaml.safe_load((self.root / CONTRACT_FILE).read_text(encoding="utf-8")),
                                  source=f"{self.root / CONTRACT_FILE}")


@contextmanager
def open_bundle(path: Path, keys: dict[str, object], kind: str | None = None,
                contract: DataContract | None = None) -> Iterator[VerifiedBundle]:
    """Verify a bundle directory or ``.tar.gz`` and yield it; an archive is extracted to a temporary folder first."""
    path = Path(path)
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="collabops-bundle-") as tmp:
            root = Path(tmp) / "bundle"
            safe_extract(path, root)
            yield verify(root, keys, kind=kind, contract=contract, name=path)
    else:
        yield verify(path, keys, kind=kind, contract=contract, name=path)


def safe_extract(archive_path: Path, target: Path) -> None:
    """Extract only plain files and folders that land inside ``target``; check every member first."""
    try:
        tar = tarfile.open(archive_path, "r:gz")  # noqa: SIM115 - closed by the `with` below, after the check
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(archive_path, "archive", f"not a readable .tar.gz: {exc}") from None
    with tar:
        members = tar.getmembers()
        for member in members:
            problem = _unsafe_path(member.name)
            if problem:
                raise BundleError(archive_path, "archive member paths", f"member '{member.name}' {problem}")
            if not (member.isfile() or member.isdir()):
                raise BundleError(archive_path, "archive member paths",
                                  f"member '{member.name}' is a link or special file")
        target.mkdir(parents=True)
        tar.extractall(target, members=members, filter="data")


def _unsafe_path(name: str) -> str | None:
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
        return "is an absolute or non-POSIX path"
    if ".." in PurePosixPath(name).parts:
        return "contains '..'"
    return None


def verify(root: Path, keys: dict[str, object], kind: str | None = None,
           contract: DataContract | None = None, name: Path | None = None) -> VerifiedBundle:
    """Run every check, in order, on a bundle directory; raise ``BundleError`` at the first failure."""
    label = name or root
    manifest_path, signature_path = root / MANIFEST, root / SIGNATURE
    for required in (manifest_path, signature_path):
        if required.is_symlink() or not required.is_file():
            raise BundleError(label, "signature", f"{required.name} is missing")
    data, signature = manifest_path.read_bytes(), signature_path.read_bytes()
    if not keys:
        raise BundleError(label, "signature", "no trusted partner keys (commit the partner's keys/<partner>.pub)")
    signer = identify_signer(signature, data, keys)
    if signer is None:
        raise BundleError(label, "signature", f"{SIGNATURE} does not verify {MANIFEST} with any trusted key "
                                              f"(trusted: {', '.join(sorted(keys))})")
    manifest = json.loads(data)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(label, "format version", f"format_version {version!r} is not understood "
                                                   f"(this collabops reads version {FORMAT_VERSION})")
    if manifest.get("producer", {}).get("partner") != signer:
        raise BundleError(label, "signature", f"signed by '{signer}' but the manifest names producer "
                                              f"'{manifest.get('producer', {}).get('partner')}'")
    listed = {}
    for entry in manifest.get("files", []):
        rel = str(entry.get("path", ""))
        problem = _unsafe_path(rel)
        if problem:
            raise BundleError(label, "paths", f"manifest path '{rel}' {problem}")
        if rel in (MANIFEST, SIGNATURE):
            raise BundleError(label, "paths", f"manifest lists '{rel}' as payload")
        listed[rel] = entry
    for rel in listed:
        current = root
        for part in PurePosixPath(rel).parts:
            current = current / part
            if current.is_symlink():
                raise BundleError(label, "paths", f"'{current.relative_to(root).as_posix()}' is a link")
    for rel, entry in listed.items():
        path = root / rel
        if not path.is_file():
            raise BundleError(label, "files", f"'{rel}' is listed in the manifest but missing")
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(label, "files", f"'{rel}' is not a regular file")
        if info.st_size != entry.get("size"):
            raise BundleError(label, "files",
                              f"'{rel}' has {info.st_size} bytes, the manifest says {entry.get('size')}")
        _, digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise BundleError(label, "files", f"'{rel}' has SHA-256 {digest[:16]}..., the manifest says "
                                              f"{str(entry.get('sha256'))[:16]}...")
    unlisted = [rel for rel in _payload_files(root) if rel not in listed]
    if unlisted:
        raise BundleError(label, "unlisted files", f"not in the manifest: {', '.join(unlisted[:5])}")
    if kind is not None and manifest.get("kind") != kind:
        raise BundleError(label, "kind", f"this is a {manifest.get('kind')} bundle, expected a {kind} bundle")
    bundle = VerifiedBundle(root=root, manifest=manifest, signer=signer)
    if contract is not None:
        if CONTRACT_FILE not in listed:
            raise BundleError(label, "contract", f"the bundle has no {CONTRACT_FILE}")
        differences = contract_differences(contract, bundle.contract())
        if differences:
            raise BundleError(label, "contract", "not compatible with ours: " + "; ".join(differences))
    return bundle


def contract_differences(ours: DataContract, theirs: DataContract) -> list[str]:
    """How ``theirs`` differs from ``ours`` on what a model depends on: features, their types, the target."""
    differences = []
    if ours.target != theirs.target:
        differences.append(f"target is '{theirs.target}' there, '{ours.target}' here")
    for name in ours.feature_columns:
        try:
            other = theirs.column(name)
        except KeyError:
            differences.append(f"feature column '{name}' is missing there")
            continue
        if other.type != ours.column(name).type:
            differences.append(f"column '{name}' is {other.type} there, {ours.column(name).type} here")
    for name in theirs.feature_columns:
        if name not in ours.feature_columns:
            differences.append(f"feature column '{name}' is not in our contract")
    return differences


def move_into_place(staging: Path, out_dir: Path, name: str) -> Path:
    """Move a finished bundle folder to ``out_dir/name``; never replace an existing bundle."""
    final = out_dir / name
    if final.exists():
        raise CollabopsError(f"{final}: already exists; bundles are never overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(final))
    return final
