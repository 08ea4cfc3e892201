"""Steps that bring data in: contract, dataset, validation, time split."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from collabops.data.contract import contract_from_dict, load_contract
from collabops.data.dataset import read_table
from collabops.data.generator import GeneratorSettings, generate
from collabops.data.split import SplitSettings, time_split
from collabops.settings import DataSettings
from orchestration import names


@step(enable_cache=False)
def load_data_contract(path: str) -> Annotated[dict, names.DATA_CONTRACT]:
    """Read the contract file on every run, so an edited contract is never served from cache."""
    contract = load_contract(path)
    log_metadata(metadata={"contract": contract.name, "contract_digest": contract.digest()})
    return contract.raw


@step(enable_cache=False)
def load_dataset(path: str, contract: dict) -> Annotated[pd.DataFrame, names.RAW_DATA]:
    """Read a CSV or Parquet file as the contract says; never cached, since the file may change under the same path."""
    frame = read_table(path, contract=contract_from_dict(contract))
    log_metadata(metadata={"source": path, "rows": len(frame)})
    return frame


@step
def generate_dataset(settings: dict) -> Annotated[pd.DataFrame, names.RAW_DATA]:
    """The example generator is deterministic, so its output is safely cached."""
    frame = generate(GeneratorSettings(**settings))
    log_metadata(metadata={"source": "example generator", "generator": settings, "rows": len(frame)})
    return frame


@step
def validate_data(
    raw: pd.DataFrame, contract: dict, source: str, max_days_ahead: float = DataSettings().max_days_ahead
) -> Annotated[pd.DataFrame, names.VALIDATED_DATA]:
    """Refuse data that breaks the contract, lies in the future or has a constant target (file, column, rows named).

    ``max_days_ahead``: the project's ``data.max_days_ahead`` (times later
    than now plus this many days are refused; the project default when the
    pipeline passes none).
    """
    spec = contract_from_dict(contract)
    data = spec.validate(raw, source=source)
    spec.check_horizon(data, source, max_days_ahead)
    spec.check_trainable(data, source=source)
    time = data[spec.time_column]
    log_metadata(metadata={
        "rows": len(data),
        "period_start": time.min().isoformat(),
        "period_end": time.max().isoformat(),
        "time_zone": spec.time_zone,
        "entities": int(data[spec.entity_column].nunique()) if spec.entity_column else 1,
    })
    return data


@step
def split_data(
    data: pd.DataFrame, contract: dict, split: dict, source: str
) -> tuple[
    Annotated[pd.DataFrame, names.TRAIN_DATA],
    Annotated[pd.DataFrame, names.VALIDATION_DATA],
    Annotated[pd.DataFrame, names.TEST_DATA],
]:
    """Cut the data into consecutive periods: train, then validation, then test."""
    spec = contract_from_dict(contract)
    parts = time_split(data, spec.time_column, SplitSettings.from_dict(split), source=source)
    periods: dict[str, Any] = {}
    for name, part in (("train", parts.train), ("validation", parts.validation), ("test", parts.test)):
        periods[name] = {
            "rows": len(part),
            "start": part[spec.time_column].min().isoformat(),
            "end": part[spec.time_column].max().isoformat(),
        }
    log_metadata(metadata={"periods": periods})
    log_metadata(metadata={"periods": periods}, artifact_name=names.TRAIN_DATA, infer_artifact=True)
    return parts.train, parts.validation, parts.test

