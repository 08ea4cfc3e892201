"""Pseudonymisation of personal columns with a keyed hash.

Every value of a personal column is replaced by HMAC-SHA256(key, value): the
same value always gives the same pseudonym under one key (so joins and counts
still work), a different key gives different pseudonyms, and going back needs
the key, which only the industry partner holds. Nulls stay null.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from collabops.errors import ConfigError

MIN_KEY_BYTES = 16


def load_key(env_var: str | None = None, file: str | Path | None = None) -> bytes:
    """The pseudonymisation key from an environment variable or a file (never from the repository)."""
    if env_var and os.environ.get(env_var):
        key = os.environ[env_var].encode("utf-8")
        where = f"environment variable {env_var}"
    elif file and Path(file).expanduser().is_file():
        key = Path(file).expanduser().read_bytes().strip()
        where = str(file)
    else:
        raise ConfigError(f"no pseudonymisation key: set the environment variable {env_var} or create the file "
                          f"{file} (at least {MIN_KEY_BYTES} random bytes, e.g. `openssl rand -hex 32`)")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{where}: the pseudonymisation key is too short ({len(key)} bytes, need {MIN_KEY_BYTES})")
    return key


def pseudonym(value: str, key: bytes) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonymise(frame: pd.DataFrame, columns: Iterable[str], key: bytes) -> pd.DataFrame:
    """A copy of ``frame`` with each of ``columns`` replaced by keyed hashes."""
    out = frame.copy()
    for column in columns:
        values = out[column]
        present = values.notna()
        unique = pd.unique(values[present].astype(str))
        mapping = {v: pseudonym(v, key) for v in unique}
        out[column] = values.where(~present, values[present].astype(str).map(mapping)).astype(object)
        out.loc[~present, column] = None
    return out
