"""Shared by the service tests: a small trained model and its signed model bundle, built once per module."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from collabops.data.contract import load_contract
from collabops.data.generator import GeneratorSettings, generate
from collabops.data.profile import profile
from collabops.exchange.bundle import Producer
from collabops.exchange.model_bundle import write_model_bundle
from collabops.exchange.signing import generate_key_pair, load_signer
from collabops.training.features import build_model
from collabops.training.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(ROOT / "configs" / "contract.yaml")
FEATURES = CONTRACT.feature_columns


@dataclass(frozen=True)
class Bundle:
    """A signed model bundle (model version "3") of ``model``, trusted by the keys in ``keys``."""

    path: Path
    keys: Path
    private_key: Path
    bundle_id: str
    frame: pd.DataFrame
    model: Any
    base: Path


def records(frame: pd.DataFrame, rows: list[int], features_only: bool = True) -> list[dict[str, Any]]:
    """Rows as a client sends them: JSON values, ISO timestamps, nulls as null."""
    part = frame.iloc[rows]
    return json.loads((part[FEATURES] if features_only else part).to_json(orient="records", date_format="iso"))


def write_bundle(model: Any, frame: pd.DataFrame, base: Path, private_key: Path, out: str, version: str) -> tuple:
    return write_model_bundle(model, CONTRACT, {"test": {}}, profile(frame, CONTRACT), frame.head(100), "# card\n",
                              Producer(partner="university"), load_signer("university", private_key), base / out,
                              extra={"model": {"version": version}})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """One month of four car parks, a 20-iteration model: small enough to fit in about a second."""
    base = tmp_path_factory.mktemp("serving")
    frame = generate(GeneratorSettings(months=1, car_parks=4, seed=8))
    model = build_model(CONTRACT, get_task("regression").make_estimator({"max_iter": 20, "random_state": 0}))
    model.fit(frame[FEATURES], frame[CONTRACT.target])
    keys, private_key = base / "keys", base / "private" / "university.key"
    generate_key_pair(private_key, keys / "university.pub", "university")
    path, manifest = write_bundle(model, frame, base, private_key, "exchange", "3")
    return Bundle(path, keys, private_key, manifest["bundle_id"], frame, model, base)
