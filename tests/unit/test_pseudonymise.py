"""Personal columns become keyed pseudonyms: stable under one key, different under another."""

from __future__ import annotations

import pandas as pd
import pytest

from collabops.errors import ConfigError
from collabops.exchange.pseudonymise import load_key, pseudonymise

KEY_A, KEY_B = b"a" * 32, b"b" * 32


def test_same_value_same_pseudonym_other_key_other_pseudonym():
    frame = pd.DataFrame({"plate": ["ABC 123", "XYZ 999", "ABC 123", None], "n": [1, 2, 3, 4]})
    a, b = pseudonymise(frame, ["plate"], KEY_A), pseudonymise(frame, ["plate"], KEY_B)
    assert a["plate"][0] == a["plate"][2] != a["plate"][1]
    assert a["plate"][0] != b["plate"][0]
    assert a["plate"].isna().tolist() == [False, False, False, True]
    assert not set(frame["plate"].dropna()) & set(a["plate"].dropna())
    assert a["n"].tolist() == [1, 2, 3, 4]
    assert frame["plate"][0] == "ABC 123"  # the input is not modified


def test_key_from_environment_or_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_PSEUDO_KEY", "k" * 32)
    assert load_key("TEST_PSEUDO_KEY", tmp_path / "none") == b"k" * 32
    monkeypatch.delenv("TEST_PSEUDO_KEY")
    (tmp_path / "key").write_text("f" * 40 + "\n")
    assert load_key("TEST_PSEUDO_KEY", tmp_path / "key") == b"f" * 40
    with pytest.raises(ConfigError, match="no pseudonymisation key"):
        load_key("TEST_PSEUDO_KEY", tmp_path / "missing")
    (tmp_path / "short").write_text("abc")
    with pytest.raises(ConfigError, match="too short"):
        load_key(None, tmp_path / "short")
