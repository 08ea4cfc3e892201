"""Partner keys: Ed25519 key pairs, signatures, and the set of keys a partner trusts.

A partner's private key lives outside the repository (a file with mode 0600,
by default under the user's config directory); its public key is a one-line
text file in the repository (``keys/<partner>.pub``) that the other partner
trusts by committing it. Signatures are made over exact bytes (the bundle
manifest), so verification needs no parsing of untrusted data.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from collabops.errors import ConfigError

PUBLIC_KEY_PREFIX = "ed25519"
PRIVATE_KEY_ENV = "COLLABOPS_PRIVATE_KEY_FILE"


def default_private_key_path(partner: str) -> Path:
    """``$XDG_CONFIG_HOME/collabops/keys/<partner>.key`` (``~/.config`` by default)."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "collabops" / "keys" / f"{partner}.key"


def generate_key_pair(private_path: Path, public_path: Path, partner: str, force: bool = False) -> None:
    """Write a new key pair; the private key with mode 0600. Refuses to overwrite unless ``force``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for path in (private_path, public_path):
        if path.exists() and not force:
            raise ConfigError(f"{path}: already exists (use --force to replace the key pair)")
    key = Ed25519PrivateKey.generate()
    private_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    raw_public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_bytes)
    os.chmod(private_path, 0o600)
    public_path.write_text(f"{PUBLIC_KEY_PREFIX} {base64.b64encode(raw_public).decode()} {partner}\n")


@dataclass(frozen=True)
class Signer:
    partner: str
    key: object  # Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)  # type: ignore[attr-defined]


def load_signer(partner: str, path: Path | None = None) -> Signer:
    """The partner's private key from ``path``, ``$COLLABOPS_PRIVATE_KEY_FILE`` or the default location."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = path or (Path(os.environ[PRIVATE_KEY_ENV]) if os.environ.get(PRIVATE_KEY_ENV) else None) \
        or default_private_key_path(partner)
    if not path.is_file():
        raise ConfigError(f"{path}: private key of partner '{partner}' not found "
                          f"(create one with `python run.py keys init --partner {partner}`)")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 private key")
    return Signer(partner=partner, key=key)


def read_public_key(path: Path) -> object:
    """An ``ed25519 <base64> [partner]`` line as a public key object."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    parts = path.read_text(encoding="utf-8").split()
    try:
        if parts[0] != PUBLIC_KEY_PREFIX:
            raise ValueError(f"starts with '{parts[0]}', expected '{PUBLIC_KEY_PREFIX}'")
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(parts[1], validate=True))
    except (IndexError, ValueError) as exc:
        raise ConfigError(f"{path}: not a collabops public key ({exc})") from None


class TrustedKeys(dict):
    """Public keys by partner name, remembering the folder they were read from (for messages)."""

    def __init__(self, keys: dict[str, object], folder: Path) -> None:
        super().__init__(keys)
        self.folder = folder


def trusted_keys(keys_dir: Path, exclude: Iterable[str] = ()) -> TrustedKeys:
    """Every ``<partner>.pub`` in ``keys_dir``, keyed by partner name."""
    skip = set(exclude)
    return TrustedKeys({p.stem: read_public_key(p) for p in sorted(keys_dir.glob("*.pub")) if p.stem not in skip},
                       keys_dir)


def identify_signer(signature: bytes, data: bytes, keys: dict[str, object]) -> str | None:
    """The partner whose key made ``signature`` over ``data``, or None."""
    from cryptography.exceptions import InvalidSignature

    for partner, key in keys.items():
        try:
            key.verify(signature, data)  # type: ignore[attr-defined]
            return partner
        except InvalidSignature:
            continue
    return None
