"""Bundles: the only things that cross the boundary between the partners.

A bundle is a directory (or a ``.tar.gz`` of one) with ``manifest.json``
(kind, format version, id, producer, contract digest, and the path, size and
SHA-256 of every payload file), ``manifest.sig`` (an Ed25519 signature over
the manifest's exact bytes) and the payload.

The receiver checks everything before it reads a payload byte, and nothing
it checks can exhaust it: an archive's members are checked from their
headers against the project's ceilings (:class:`Limits`) before anything is
written, and extraction counts what it writes; ``manifest.json`` is read
only up to its ceiling. :func:`verify` is the one entry point: it runs every
check, in this order (the first failure raises :class:`BundleError`, whose
message names the bundle as the user gave it, never a temporary folder, and
the check):

1. ``archive``/``archive member paths``/``size limits`` (archives only,
   :func:`safe_extract`): a readable ``.tar.gz`` of at most
   ``max_bundle_files`` members, only plain files and folders inside the
   target, each path once, at most ``max_bundle_bytes`` in all and a
   ``manifest.json`` of at most ``max_manifest_bytes``;
2. ``signature`` (both files present and regular) and ``size limits`` (the manifest);
3. ``kind``: the kind the manifest declares is the one the command takes
   (read before the signature only to refuse: a bundle handed to the wrong
   command is told so, whoever signed it);
4. ``signature``: by a trusted partner's key;
5. ``manifest``: UTF-8 JSON without duplicate keys or NaN, an object;
6. ``format version``;
7. ``manifest``: the kind's schema (:class:`ModelManifest`, :class:`DataManifest`:
   pydantic, strict; no path listed twice);
8. ``signature``: the signer is not the receiving partner itself, and is the
   producer the manifest names;
9. ``size limits``: the listed files against the ceilings;
10. ``paths``: no listed path absolute, with ``..``, non-canonical, or through a link;
11. ``files``: every listed file present and regular, with its size (all sizes first) and SHA-256;
12. ``unlisted files``;
13. ``contract``: readable, and compatible with the receiver's (types, categories);
14. ``required files``: every file the kind needs
    (``collabops.exchange.model_bundle.REQUIRED_FILES``,
    ``collabops.exchange.data_bundle.REQUIRED_FILES`` and its data file);
15. ``data`` (data bundles): the data file is Parquet with the manifest's rows and the contract's columns.

A model bundle's model is then loaded with the trusted types only and its
reference predictions are replayed (``collabops.exchange.model_bundle``);
:func:`reported_as` keeps those messages naming the bundle too. Hashing
streams large chunks, so memory stays flat whatever the payload size.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from collabops.data.contract import DataContract, contract_from_dict
from collabops.errors import CollabopsError
from collabops.exchange.signing import Signer, identify_signer
from collabops.settings import ExchangeSettings

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CONTRACT_FILE = "contract.yaml"
KINDS = ("data", "model")
CHUNK = 8 * 1024 * 1024
SIGNATURE_BYTES = 64
"""An Ed25519 signature is exactly this long."""
MAX_CONTRACT_BYTES = 1024 ** 2
"""Largest ``contract.yaml`` read (it is parsed whole)."""
MAX_ARCHIVE_READ = 1024 ** 2
"""Largest single read from an archive's uncompressed stream: a header record (long name, pax) above it is refused,
data is read in pieces of this size."""
_BLOCK = tarfile.BLOCKSIZE
_SHA256 = r"^[0-9a-f]{64}$"
_BUNDLE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class BundleError(CollabopsError):
    """A bundle failed a check; nothing from it has been read or imported.

    ``bundle`` is the bundle as the user named it, ``check`` the check that
    failed, ``detail`` what is wrong.
    """

    def __init__(self, bundle: Path | str, check: str, detail: str) -> None:
        self.bundle = str(bundle)
        self.check = check
        self.detail = detail
        super().__init__(f"{bundle}: bundle refused, check '{check}' failed: {detail}")


@dataclass(frozen=True)
class Limits:
    """Ceilings on what a received bundle may make the receiver read or write (bytes and counts)."""

    max_bundle_bytes: int
    """All files together, unpacked."""
    max_bundle_files: int
    """Files in a folder bundle, with the manifest pair; members (folders too) in an archive."""
    max_manifest_bytes: int
    """``manifest.json``, read whole before its signature is checked."""

    @classmethod
    def of(cls, exchange: ExchangeSettings | None = None) -> Limits:
        """The ceilings of a project's ``exchange`` settings (their defaults without one)."""
        exchange = exchange or ExchangeSettings()
        return cls(exchange.max_bundle_bytes, exchange.max_bundle_files, exchange.max_manifest_bytes)


@dataclass(frozen=True)
class Producer:
    """Who made a bundle, and from what."""

    partner: str
    stack: str | None = None
    zenml_run_id: str | None = None
    code_revision: str | None = None


# --- the manifest's schema -------------------------------------------------------------------------------------


def _iso_time(value: str) -> str:
    """``value`` unchanged if it is an ISO 8601 date and time, else ``ValueError`` (pydantic words it)."""
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO 8601 date and time") from None
    return value


IsoTime = Annotated[str, AfterValidator(_iso_time)]
"""A manifest's time: ISO 8601 text, kept as written (it is signed)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FileEntry(_Strict):
    """One payload file: relative POSIX path, size in bytes, SHA-256 (lower-case hex)."""

    path: str = Field(min_length=1)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256)


class ProducerEntry(_Strict):
    partner: str = Field(min_length=1)
    stack: str | None = None
    zenml_run_id: str | None = None
    code_revision: str | None = None


class _Manifest(_Strict):
    format_version: int
    bundle_id: str = Field(pattern=_BUNDLE_ID)
    created_at: IsoTime
    producer: ProducerEntry
    contract_digest: str = Field(pattern=_SHA256)
    files: list[FileEntry]

    @field_validator("files")
    @classmethod
    def _each_path_once(cls, files: list[FileEntry]) -> list[FileEntry]:
        seen: set[str] = set()
        for entry in files:
            if entry.path in seen:
                raise ValueError(f"'{entry.path}' is listed twice")
            seen.add(entry.path)
        return files


class _Period(_Strict):
    """A first and a last time (ISO 8601), the start not after the end; both with an offset, or neither."""

    start: IsoTime
    end: IsoTime

    @model_validator(mode="after")
    def _start_not_after_end(self) -> _Period:
        try:
            backwards = dt.datetime.fromisoformat(self.start) > dt.datetime.fromisoformat(self.end)
        except TypeError:
            raise ValueError("start and end must both carry an offset, or neither") from None
        if backwards:
            raise ValueError(f"starts ({self.start}) after it ends ({self.end})")
        return self


class TrainingPeriod(_Period):
    """First and last time of the rows a model was fitted on (ISO 8601, with the contract zone's offset)."""


class ModelInfo(_Strict):
    """What the producer says about the model version a model bundle holds (all optional)."""

    name: str | None = None
    version: str | None = None
    stage: str | None = None
    training_run_id: str | None = None
    training_data_bundle_id: str | None = None
    mlflow_run_id: str | None = None
    training_period: TrainingPeriod | None = None
    """The industry's gate fits the seasonal baseline on the exported rows of this period only."""


class ModelManifest(_Manifest):
    """``manifest.json`` of a model bundle."""

    kind: Literal["model"]
    model: ModelInfo | None = None


def _one_line(value: str) -> str:
    """``value`` unchanged if it is one line of text, not blank; else ``ValueError`` (pydantic words it)."""
    if not value.strip():
        raise ValueError("must not be empty")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError("must be one line of text (no line breaks or control characters)")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]
"""Text a user is shown as is: one line, not blank."""


class RequestPeriod(_Period):
    """The period a retraining request is about: the production data the monitoring judged (ISO 8601)."""


class LiveError(_Strict):
    """The production model's error measured live: ``metric`` (e.g. ``mae``) is ``value`` on ``rows`` scored rows.

    ``promised``: the figure the model bundle promised (its test metric);
    ``holdout``: what the acceptance gate measured on the industry's holdout;
    either None when unknown. Numbers are finite (a whole number is taken as a float).
    """

    metric: str = Field(min_length=1)
    value: float = Field(allow_inf_nan=False)
    promised: float | None = Field(default=None, allow_inf_nan=False)
    holdout: float | None = Field(default=None, allow_inf_nan=False)
    rows: int = Field(ge=0)


class RetrainingRequest(_Strict):
    """Why the industry asks for a new model, carried in a data bundle's manifest (so its signature covers it).

    ``reason`` one line; ``verdict`` the monitoring's (``drift`` or
    ``warning``); ``drifted_features`` the features it found drifted (may be
    empty); ``period`` the production period judged; ``production_version``
    the model version serving then and ``production_bundle_id`` the model
    bundle it came from (None: unknown); ``live_error`` its error measured
    live (None: no labels yet); ``monitoring_run`` the ZenML run that decided;
    ``requested_at`` when. Unknown keys are refused.
    """

    reason: OneLine
    verdict: Literal["drift", "warning"]
    drifted_features: list[Annotated[str, Field(min_length=1)]]
    period: RequestPeriod
    production_version: str = Field(min_length=1)
    production_bundle_id: str | None = None
    live_error: LiveError | None = None
    monitoring_run: str = Field(min_length=1)
    requested_at: IsoTime


class DataManifest(_Manifest):
    """``manifest.json`` of a data bundle: also its data file, row count and personal (pseudonymised) columns."""

    kind: Literal["data"]
    data_file: str = Field(min_length=1)
    rows: int = Field(ge=0)
    personal_columns: list[str]
    time_zone: str | None = None
    """The zone the data's times are in (the contract's ``time_zone``); absent in bundles made before it existed."""
    retraining_request: RetrainingRequest | None = None
    """Present when the industry's monitoring exported this bundle to ask for a new model; absent otherwise."""


SCHEMAS: dict[str, type[_Manifest]] = {"data": DataManifest, "model": ModelManifest}


# --- writing ---------------------------------------------------------------------------------------------------


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


def _walk(root: Path) -> Iterator[str]:
    """Relative POSIX paths of every entry below ``root`` except folders (links to folders included)."""
    def refuse(error: OSError) -> None:
        raise error

    for directory, dirs, files in os.walk(root, followlinks=False, onerror=refuse):
        for name in files + [d for d in dirs if (Path(directory) / d).is_symlink()]:
            rel = (Path(directory) / name).relative_to(root).as_posix()
            if rel not in (MANIFEST, SIGNATURE):
                yield rel


def _payload_files(root: Path) -> list[str]:
    """Relative POSIX paths of every entry below ``root`` except the manifest pair."""
    return sorted(_walk(root))


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


def move_into_place(staging: Path, out_dir: Path, name: str) -> Path:
    """Move a finished bundle folder to ``out_dir/name``; never replace an existing bundle."""
    final = out_dir / name
    if final.exists():
        raise CollabopsError(f"{final}: already exists; bundles are never overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(final))
    return final


# --- a verified bundle -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that passed every check; ``root`` is safe to read, ``source`` is what the user named."""

    root: Path
    manifest: dict[str, Any]
    signer: str
    source: Path | None = None

    @property
    def name(self) -> Path:
        """The bundle as the user named it (a folder or a ``.tar.gz``): what messages show."""
        return self.source or self.root

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def bundle_id(self) -> str:
        return str(self.manifest["bundle_id"])

    @property
    def listed(self) -> set[str]:
        """The payload paths the manifest lists."""
        return {str(entry["path"]) for entry in self.manifest.get("files", [])}

    def contract(self) -> DataContract:
        """The bundle's ``contract.yaml``; ``BundleError`` (check ``contract``) if it is not a readable contract."""
        import yaml

        path = self.root / CONTRACT_FILE
        try:
            if path.stat().st_size > MAX_CONTRACT_BYTES:
                raise ValueError(f"it has {path.stat().st_size} bytes, more than {MAX_CONTRACT_BYTES}")
            text = path.read_text(encoding="utf-8")
            if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
                raise ValueError("it uses YAML aliases")
            raw = yaml.safe_load(text)
            if not isinstance(raw, dict):
                raise ValueError(f"it holds a {type(raw).__name__}, not a mapping")
            return contract_from_dict(raw, source=CONTRACT_FILE)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError, CollabopsError) as exc:
            raise BundleError(self.name, "contract", f"{CONTRACT_FILE} is not a readable data contract: "
                                                     f"{without_root(str(exc), self.root)}") from None


@contextmanager
def reported_as(bundle: VerifiedBundle, check: str, doing: str) -> Iterator[None]:
    """Any failure while reading a verified bundle's payload, as a ``BundleError`` naming the bundle the user named.

    A ``BundleError`` raised under the bundle's folder (a temporary one for an
    archive) is raised again under the bundle's name; any other exception
    (a payload a library cannot read) becomes a ``BundleError`` of ``check``
    saying what failed (``doing``, e.g. ``"loading model/model.skops"``) and how.
    """
    try:
        yield
    except BundleError as exc:
        if exc.bundle == str(bundle.name):
            raise
        raise BundleError(bundle.name, exc.check, without_root(exc.detail, bundle.root)) from None
    except Exception as exc:  # noqa: BLE001 - whatever a payload makes a reader raise is a refusal of the bundle
        raise BundleError(bundle.name, check, f"{doing} failed: {type(exc).__name__}: "
                                              f"{without_root(str(exc), bundle.root)}") from None


def without_root(text: str, root: Path) -> str:
    """``text`` with the bundle's folder left out of paths (it may be a temporary folder)."""
    return text.replace(f"{root}{os.sep}", "").replace(str(root), ".")


# --- opening: folder or archive --------------------------------------------------------------------------------


@contextmanager
def open_bundle(path: Path, keys: dict[str, object], kind: str | None = None,
                contract: DataContract | None = None, limits: Limits | None = None, command: str | None = None,
                partner: str | Mapping[str, str] | None = None) -> Iterator[VerifiedBundle]:
    """Verify a bundle directory or ``.tar.gz`` (:func:`verify`) and yield it while it may be read.

    An archive is checked and extracted (:func:`safe_extract`) to a temporary
    folder, removed when the context ends; messages name ``path``.
    """
    path = Path(path)
    limits = limits or Limits.of()
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="collabops-bundle-") as tmp:
            root = Path(tmp) / "bundle"
            safe_extract(path, root, limits, keys=keys)  # the signature is checked before the payload is written
            yield verify(root, keys, kind=kind, contract=contract, name=path, limits=limits, command=command,
                         partner=partner)
    else:
        yield verify(path, keys, kind=kind, contract=contract, limits=limits, command=command, partner=partner)


class _CappedStream:
    """An archive's uncompressed stream that refuses to be read (or skipped) beyond a budget.

    Whatever tarfile reads goes through here: a single read above
    :data:`MAX_ARCHIVE_READ` (a header record claiming gigabytes) or a total
    above ``budget`` raises ``BundleError`` before the bytes are produced.
    """

    def __init__(self, raw: Any, budget: int, label: Path, limits: Limits) -> None:
        self.raw, self.budget, self.label, self.limits = raw, budget, label, limits
        self.consumed = 0

    def _spend(self, n: int) -> None:
        self.consumed += n
        if self.consumed > self.budget:
            raise BundleError(self.label, "size limits", f"the archive expands to more than {self.budget} bytes "
                                                         f"(exchange.max_bundle_bytes is "
                                                         f"{self.limits.max_bundle_bytes}, plus headers)")

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > MAX_ARCHIVE_READ:
            raise BundleError(self.label, "size limits", f"the archive has a header record or block of "
                                                         f"{'unbounded' if size is None or size < 0 else size} "
                                                         f"bytes (at most {MAX_ARCHIVE_READ} are read at once)")
        self._spend(size)
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        current = self.raw.tell()
        target = offset if whence == os.SEEK_SET else current + offset
        if whence not in (os.SEEK_SET, os.SEEK_CUR):
            raise OSError("an archive stream seeks only from its start or from where it is")
        self._spend(target - current if target >= current else target)  # backwards: gzip decompresses again
        if target < current:
            return self.raw.seek(target)
        while current < target:  # forwards in large reads (gzip's own seek reads 8 KiB at a time)
            skipped = len(self.raw.read(min(target - current, MAX_ARCHIVE_READ)))
            if not skipped:
                break
            current += skipped
        return current

    def tell(self) -> int:
        return self.raw.tell()


def _archive_budget(limits: Limits) -> int:
    """Uncompressed bytes an archive within ``limits`` can take: payload, headers, padding, end blocks."""
    return limits.max_bundle_bytes + (limits.max_bundle_files + 2) * 4 * _BLOCK + 4 * MAX_ARCHIVE_READ


@contextmanager
def _tar(archive_path: Path, label: Path, limits: Limits) -> Iterator[tarfile.TarFile]:
    """The archive as a tarfile reading through :class:`_CappedStream`; unreadable archives are refused."""
    try:
        with gzip.open(archive_path, "rb") as raw:
            stream = _CappedStream(raw, _archive_budget(limits), label, limits)
            with tarfile.open(fileobj=stream, mode="r:") as tar:  # type: ignore[call-overload]
                yield tar
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleError(label, "archive", f"not a readable .tar.gz: {exc}") from None
    except OSError as exc:
        raise BundleError(label, "archive", f"not a readable .tar.gz: {without_root(str(exc), archive_path)}") from None


def _member_kind(member: tarfile.TarInfo) -> str | None:
    """What is wrong with a member's type (None: a plain file or folder)."""
    if member.issym():
        found = f"a symbolic link to '{member.linkname}'"
    elif member.islnk():
        found = f"a hard link to '{member.linkname}'"
    elif member.ischr() or member.isblk():
        found = "a device"
    elif member.isfifo():
        found = "a FIFO"
    elif member.issparse():
        found = "a sparse file (its stored data is not what it expands to)"
    elif not (member.isreg() or member.isdir()):
        found = f"of tar type {member.type!r}"
    else:
        return None
    return f"is a link or special file ({found}); only plain files and folders are extracted"


def _check_members(tar: tarfile.TarFile, label: Path, limits: Limits) -> list[tuple[str, bool, int]]:
    """Every member's header checked against the ceilings and the rules; returns (path, is a file, size).

    Reads headers only (their data is skipped, through the capped stream),
    and stops at the first member over a ceiling.
    """
    checked: list[tuple[str, bool, int]] = []
    files: set[str] = set()
    folders: set[str] = set()
    total = 0
    while (member := tar.next()) is not None:
        if len(checked) >= limits.max_bundle_files:
            raise BundleError(label, "size limits", f"the archive has more than {limits.max_bundle_files} members "
                                                    "(exchange.max_bundle_files)")
        problem = _unsafe_path(member.name) or _member_kind(member)
        if problem:
            raise BundleError(label, "archive member paths", f"member '{member.name}' {problem}")
        rel = PurePosixPath(member.name).as_posix()
        parents = {p.as_posix() for p in PurePosixPath(rel).parents} - {"."}
        clash = rel in files or (member.isreg() and rel in folders) or (parents & files)
        if clash:
            raise BundleError(label, "archive member paths", f"member '{member.name}' appears twice, or as both a "
                                                             "file and a folder")
        folders |= parents | ({rel} if member.isdir() else set())
        if member.isreg():
            files.add(rel)
            total += member.size
            if total > limits.max_bundle_bytes:
                raise BundleError(label, "size limits", f"the archive's members hold more than "
                                                        f"{limits.max_bundle_bytes} bytes (exchange.max_bundle_bytes; "
                                                        f"at member '{member.name}', {member.size} bytes)")
            if rel == MANIFEST and member.size > limits.max_manifest_bytes:
                raise BundleError(label, "size limits", f"{MANIFEST} has {member.size} bytes, more than "
                                                        f"{limits.max_manifest_bytes} (exchange.max_manifest_bytes)")
        checked.append((rel, member.isreg(), member.size if member.isreg() else 0))
    return checked


def _extract_members(tar: tarfile.TarFile, expected: list[tuple[str, bool, int]], target: Path, label: Path,
                     limits: Limits, select: Callable[[str], bool] = lambda rel: True) -> None:
    """Write the members ``select`` accepts, in archive order, counting the bytes actually written."""
    written = 0
    position = 0
    while (member := tar.next()) is not None:
        rel = PurePosixPath(member.name).as_posix()
        if position >= len(expected) or expected[position] != (rel, member.isreg(),
                                                               member.size if member.isreg() else 0):
            raise BundleError(label, "archive", "the archive changed while it was read")
        position += 1
        if not select(rel):
            continue
        path = target / rel
        try:
            if not member.isreg():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise BundleError(label, "archive", f"member '{member.name}' cannot be written: "
                                                f"{without_root(str(exc), target)}") from None
        source = tar.extractfile(member)
        assert source is not None  # a regular file
        this = 0
        with source, os.fdopen(fd, "wb") as out:
            while chunk := source.read(MAX_ARCHIVE_READ):
                this += len(chunk)
                written += len(chunk)
                if this > member.size or written > limits.max_bundle_bytes:
                    raise BundleError(label, "size limits", f"member '{member.name}' wrote more than its header "
                                                            f"said or the bundle's {limits.max_bundle_bytes} bytes "
                                                            "(exchange.max_bundle_bytes)")
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise BundleError(label, "archive", f"member '{member.name}' cannot be written: {exc}") from None
        if this != member.size:
            raise BundleError(label, "archive", f"member '{member.name}' holds {this} bytes, its header says "
                                                f"{member.size}")


def safe_extract(archive_path: Path, target: Path, limits: Limits | None = None, name: Path | None = None,
                 keys: dict[str, object] | None = None) -> None:
    """Extract a ``.tar.gz`` bundle into ``target`` (created; it must not exist) after checking every member.

    First pass: every header is checked (:func:`_check_members`: ceilings,
    paths, types, duplicates) and nothing is written. With ``keys``, a second
    pass writes only ``manifest.json`` and ``manifest.sig`` and checks the
    signature, so an archive no trusted partner signed is refused before a
    payload byte is written. Last pass: the members are written in order,
    only plain files and folders inside ``target``, counting the bytes
    actually written. Raises ``BundleError`` naming ``name`` (default
    ``archive_path``); on any failure ``target`` is removed again.
    """
    label = Path(name or archive_path)
    limits = limits or Limits.of()
    with _tar(archive_path, label, limits) as tar:
        expected = _check_members(tar, label, limits)
    target.mkdir(parents=True)
    pair = {MANIFEST, SIGNATURE}
    try:
        if keys is not None:
            with _tar(archive_path, label, limits) as tar:
                _extract_members(tar, expected, target, label, limits, select=pair.__contains__)
            check_signature(label, *read_manifest_pair(target, limits, label), keys)
        with _tar(archive_path, label, limits) as tar:
            _extract_members(tar, expected, target, label, limits,
                             select=(lambda rel: rel not in pair) if keys is not None else (lambda rel: True))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _unsafe_path(name: str) -> str | None:
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
        return "is an absolute or non-POSIX path"
    if ".." in PurePosixPath(name).parts:
        return "contains '..'"
    return None


# --- the checks, in order --------------------------------------------------------------------------------------


def _regular_file(path: Path) -> os.stat_result | None:
    """``lstat`` of ``path`` if it is a regular file (not a link), else None."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def read_manifest_pair(root: Path, limits: Limits, label: Path) -> tuple[bytes, bytes]:
    """The exact bytes of ``manifest.json`` and ``manifest.sig``, each read only up to its ceiling."""
    infos = {}
    for required in (MANIFEST, SIGNATURE):
        info = _regular_file(root / required)
        if info is None:
            state = "missing" if not (root / required).is_symlink() and not (root / required).exists() else \
                "not a regular file"
            raise BundleError(label, "signature", f"{required} is {state}")
        infos[required] = info
    if infos[MANIFEST].st_size > limits.max_manifest_bytes:
        raise BundleError(label, "size limits", f"{MANIFEST} has {infos[MANIFEST].st_size} bytes, more than "
                                                f"{limits.max_manifest_bytes} (exchange.max_manifest_bytes)")
    if infos[SIGNATURE].st_size != SIGNATURE_BYTES:
        raise BundleError(label, "signature", f"{SIGNATURE} has {infos[SIGNATURE].st_size} bytes; an Ed25519 "
                                              f"signature has {SIGNATURE_BYTES}")
    with open(root / MANIFEST, "rb") as handle:
        data = handle.read(limits.max_manifest_bytes + 1)
    if len(data) > limits.max_manifest_bytes:
        raise BundleError(label, "size limits", f"{MANIFEST} has more than {limits.max_manifest_bytes} bytes "
                                                "(exchange.max_manifest_bytes)")
    with open(root / SIGNATURE, "rb") as handle:
        signature = handle.read(SIGNATURE_BYTES + 1)
    return data, signature


def parse_json(data: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN or Infinity. ``ValueError`` says what is wrong and where."""
    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise ValueError(f"key '{key}' appears twice in one object")
            found[key] = value
        return found

    def no_constant(name: str) -> Any:
        raise ValueError(f"'{name}' is not a JSON number")

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=unique_keys, parse_constant=no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None


def _declared_kind(data: bytes) -> str | None:
    """The kind an (unverified) manifest declares, if it can be read; used only to refuse."""
    try:
        parsed = parse_json(data)
    except ValueError:
        return None
    kind = parsed.get("kind") if isinstance(parsed, dict) else None
    return kind if kind in KINDS else None


def check_kind(label: Path, declared: str | None, kind: str | None, command: str | None) -> None:
    """The bundle's kind is the one expected; the message names the command that takes it, if given."""
    if kind is None or declared is None or declared == kind:
        return
    if command:
        raise BundleError(label, "kind", f"this is a {declared} bundle, {command} takes {kind} bundles")
    raise BundleError(label, "kind", f"this is a {declared} bundle, expected a {kind} bundle")


def check_signature(label: Path, data: bytes, signature: bytes, keys: dict[str, object]) -> str:
    """The trusted partner whose key signed ``data``."""
    if not keys:
        folder = getattr(keys, "folder", None)
        where = f"no <partner>.pub in {folder}" if folder is not None else "none given"
        raise BundleError(label, "signature", f"no trusted partner keys ({where}; commit the partner's public key "
                                              "there, or set exchange.keys_dir in the project file)")
    signer = identify_signer(signature, data, keys)
    if signer is None:
        raise BundleError(label, "signature", f"{SIGNATURE} does not verify {MANIFEST} with any trusted key "
                                              f"(trusted: {', '.join(sorted(keys))})")
    return signer


def check_manifest(label: Path, data: bytes) -> dict[str, Any]:
    """The signed manifest, parsed strictly and checked against its kind's schema; returned as parsed."""
    try:
        manifest = parse_json(data)
    except ValueError as exc:
        raise BundleError(label, "manifest", f"{MANIFEST} is {exc}" if str(exc).startswith("not")
                          else f"{MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(label, "manifest", f"{MANIFEST} holds a JSON {_json_type(manifest)}, not an object")
    version = manifest.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise BundleError(label, "format version", f"format_version {version!r} is not understood "
                                                   f"(this collabops reads version {FORMAT_VERSION})")
    kind = manifest.get("kind")
    if kind not in KINDS:
        raise BundleError(label, "manifest", f"kind: must be one of {', '.join(KINDS)} (got {kind!r})")
    try:
        SCHEMAS[kind].model_validate(manifest)
    except ValidationError as exc:
        raise BundleError(label, "manifest", describe_validation_error(exc)) from None
    return manifest


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "null")


def describe_validation_error(exc: ValidationError, shown: int = 5, prefix: str | None = None) -> str:
    """pydantic's errors as one line: each field path (under ``prefix``), what is wrong and the value found."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in ((prefix,) if prefix else ()) + tuple(error["loc"])) or "(top level)"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: not a manifest field")
        elif error["type"] == "missing":
            problems.append(f"{where}: missing")
        elif isinstance(error.get("input"), dict | list):
            problems.append(f"{where}: {message}")
        else:
            problems.append(f"{where}: {message} (got {str(repr(error.get('input')))[:80]})")
    more = f"; and {len(problems) - shown} more" if len(problems) > shown else ""
    return "; ".join(problems[:shown]) + more


def check_sender(label: Path, manifest: dict[str, Any], signer: str,
                 partner: str | Mapping[str, str] | None) -> None:
    """The signer is the producer the manifest names, and not the receiving partner itself."""
    receiver = partner.get(manifest["kind"]) if isinstance(partner, Mapping) else partner
    if receiver is not None and signer == receiver:
        raise BundleError(label, "signature", f"signed with the key of '{signer}', the receiving partner itself; "
                                              "a bundle is trusted only when the other partner signed it")
    named = manifest["producer"]["partner"]
    if named != signer:
        raise BundleError(label, "signature", f"signed by '{signer}' but the manifest names producer '{named}'")


def check_ceilings(label: Path, manifest: dict[str, Any], limits: Limits) -> None:
    """The listed files, counted and summed, against ``max_bundle_files`` and ``max_bundle_bytes``."""
    files = manifest["files"]
    if len(files) + 2 > limits.max_bundle_files:
        raise BundleError(label, "size limits", f"the manifest lists {len(files)} files; with the manifest pair "
                                                f"more than {limits.max_bundle_files} (exchange.max_bundle_files)")
    total = sum(entry["size"] for entry in files)
    if total > limits.max_bundle_bytes:
        raise BundleError(label, "size limits", f"the manifest lists {total} bytes, more than "
                                                f"{limits.max_bundle_bytes} (exchange.max_bundle_bytes)")


def check_paths(label: Path, root: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every listed path is relative, canonical, inside the bundle and not through a link; returns them by path."""
    listed: dict[str, dict[str, Any]] = {}
    for entry in manifest["files"]:
        rel = entry["path"]
        problem = _unsafe_path(rel)
        if problem:
            raise BundleError(label, "paths", f"manifest path '{rel}' {problem}")
        if PurePosixPath(rel).as_posix() != rel:
            raise BundleError(label, "paths", f"manifest path '{rel}' is not canonical (it means "
                                              f"'{PurePosixPath(rel).as_posix()}')")
        if rel in (MANIFEST, SIGNATURE):
            raise BundleError(label, "paths", f"manifest lists '{rel}' as payload")
        listed[rel] = entry
    for rel in listed:
        current = root
        for part in PurePosixPath(rel).parts:
            current = current / part
            if current.is_symlink():
                raise BundleError(label, "paths", f"'{current.relative_to(root).as_posix()}' is a link")
    return listed


def check_files(label: Path, root: Path, listed: dict[str, dict[str, Any]]) -> None:
    """Every listed file is present and regular, with its size (checked first) and SHA-256."""
    for rel, entry in listed.items():
        path = root / rel
        if not path.exists():
            raise BundleError(label, "files", f"'{rel}' is listed in the manifest but missing")
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(label, "files", f"'{rel}' is not a regular file")
        if info.st_size != entry["size"]:
            raise BundleError(label, "files", f"'{rel}' has {info.st_size} bytes, the manifest says {entry['size']}")
    for rel, entry in listed.items():
        _, digest = sha256_file(root / rel)
        if digest != entry["sha256"]:
            raise BundleError(label, "files", f"'{rel}' has SHA-256 {digest[:16]}..., the manifest says "
                                              f"{entry['sha256'][:16]}...")


def check_unlisted(label: Path, root: Path, listed: dict[str, dict[str, Any]], limits: Limits) -> None:
    """Nothing is present that the manifest does not list (the folder is walked only up to the file ceiling)."""
    unlisted = []
    try:
        for count, rel in enumerate(_walk(root), start=3):
            if count > limits.max_bundle_files:
                raise BundleError(label, "size limits", f"the folder holds more than {limits.max_bundle_files} "
                                                        "files (exchange.max_bundle_files)")
            if rel not in listed:
                unlisted.append(rel)
    except OSError as exc:
        raise BundleError(label, "files", f"cannot read the folder: {without_root(str(exc), root)}") from None
    if unlisted:
        raise BundleError(label, "unlisted files", f"not in the manifest: {', '.join(sorted(unlisted)[:5])}")


def check_contract(bundle: VerifiedBundle, ours: DataContract | None) -> None:
    """The bundle's contract is readable and, given ours, compatible with it (:func:`contract_differences`)."""
    if CONTRACT_FILE not in bundle.listed:
        raise BundleError(bundle.name, "contract", f"the bundle has no {CONTRACT_FILE}")
    theirs = bundle.contract()
    if ours is not None:
        differences = contract_differences(ours, theirs)
        if differences:
            raise BundleError(bundle.name, "contract", "not compatible with ours: " + "; ".join(differences))


def contract_differences(ours: DataContract, theirs: DataContract) -> list[str]:
    """How ``theirs`` differs from ``ours`` on what a model depends on: clock, features, target, types, categories."""
    from collabops.data.contract import time_zone_difference

    differences = [text for text in (time_zone_difference(ours, theirs),) if text]
    if ours.target != theirs.target:
        differences.append(f"target is '{theirs.target}' there, '{ours.target}' here")
    for name in [*ours.feature_columns, ours.target]:
        try:
            other = theirs.column(name)
        except KeyError:
            if name != ours.target:
                differences.append(f"feature column '{name}' is missing there")
            continue
        mine = ours.column(name)
        if other.type != mine.type:
            differences.append(f"column '{name}' is {other.type} there, {mine.type} here")
        elif set(other.categories or ()) != set(mine.categories or ()):
            only_there = sorted(set(other.categories or ()) - set(mine.categories or ()))
            only_here = sorted(set(mine.categories or ()) - set(other.categories or ()))
            differences.append(f"column '{name}' has other categories: "
                               + "; ".join(part for part in (
                                   f"only there: {', '.join(only_there)}" if only_there else "",
                                   f"only here: {', '.join(only_here)}" if only_here else "") if part))
    for name in theirs.feature_columns:
        if name not in ours.feature_columns:
            differences.append(f"feature column '{name}' is not in our contract")
    return differences


def _kind_checks(kind: str) -> tuple[Callable[[dict[str, Any]], tuple[str, ...]],
                                    Callable[[VerifiedBundle], None] | None]:
    """The files a kind requires (from its manifest) and its payload check, from the kind's own module."""
    if kind == "model":
        from collabops.exchange import model_bundle

        return (lambda manifest: tuple(model_bundle.REQUIRED_FILES)), None
    from collabops.exchange import data_bundle

    return data_bundle.required_files, data_bundle.check_data_file


def check_required_files(bundle: VerifiedBundle) -> None:
    """Every file the bundle's kind requires is listed (and so, by now, present and hashed)."""
    required, _ = _kind_checks(bundle.kind)
    missing = [rel for rel in required(bundle.manifest) if rel not in bundle.listed]
    if missing:
        raise BundleError(bundle.name, "required files", f"a {bundle.kind} bundle must hold "
                                                         f"{', '.join(missing)}; this one does not")


def verify(root: Path, keys: dict[str, object], kind: str | None = None,
           contract: DataContract | None = None, name: Path | None = None, limits: Limits | None = None,
           command: str | None = None, partner: str | Mapping[str, str] | None = None) -> VerifiedBundle:
    """Run every check on a bundle folder, in the module's order; raise ``BundleError`` at the first failure.

    ``kind``: the kind the caller takes (None: any; the checks of the kind the
    manifest declares run either way). ``contract``: the receiver's contract
    the bundle's must be compatible with. ``name``: the bundle as the user
    named it, for messages (default ``root``). ``limits``: the ceilings
    (default: the settings' defaults). ``command``: the command that takes
    ``kind``, named when a bundle of another kind is refused. ``partner``: the
    receiving partner, or the receiving partner by kind; a bundle signed with
    its key is refused.
    """
    label = Path(name or root)
    limits = limits or Limits.of()
    data, signature = read_manifest_pair(root, limits, label)
    check_kind(label, _declared_kind(data), kind, command)
    signer = check_signature(label, data, signature, keys)
    manifest = check_manifest(label, data)
    check_sender(label, manifest, signer, partner)
    check_ceilings(label, manifest, limits)
    listed = check_paths(label, root, manifest)
    check_files(label, root, listed)
    check_unlisted(label, root, listed, limits)
    bundle = VerifiedBundle(root=root, manifest=manifest, signer=signer, source=label)
    check_contract(bundle, contract)
    check_required_files(bundle)
    _, payload_check = _kind_checks(bundle.kind)
    if payload_check is not None:
        payload_check(bundle)
    return bundle
