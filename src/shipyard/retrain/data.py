"""The training data a retrain hands over: the model's served traffic with the labels that
came back for it, split by request into what the training command gets and what is held out
to judge the result.

Only rows whose inputs were logged (payload logging) and whose label arrived can train or
judge a model. The split hashes the request id, so one request never lands on both sides and
the same traffic always splits the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInputError, NoTrainingDataError
from shipyard.monitor.export import rows_of, write_table
from shipyard.registry import ModelVersion, Registry
from shipyard.registry.monitoring import StoredPrediction


@dataclass(frozen=True)
class LabelledRows:
    """Rows of inputs ({field: value}) with their labels, in the order they were served."""

    inputs: list[dict[str, Any]]
    labels: list[Any]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class TrainingData:
    path: Path  # the rows the training command gets, in the monitor's export format
    rows: int
    held_out: LabelledRows
    requests: int  # labelled requests with inputs, on both sides
    unlogged: int  # labelled requests whose inputs were not logged


def held_out(request_id: str, share: float) -> bool:
    digest = hashlib.sha256(request_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """A logged row with a whole tensor in one field (a model registered without reference
    data, whose features have no names) as one field per value: ``input[0]``, ``input[1]``."""
    if not any(isinstance(value, list) for value in row.values()):
        return row
    flattened: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, list):
            flattened.update({f"{name}[{i}]": item for i, item in enumerate(value)})
        else:
            flattened[name] = value
    return flattened


def export_training_data(
    registry: Registry,
    versions: list[ModelVersion],
    folder: Path,
    *,
    since: datetime | None = None,
    holdout: float = 0.3,
) -> TrainingData:
    """Write the labelled traffic of ``versions`` (a model's) to ``folder``/traffic.parquet,
    less the held-out share, which comes back in memory for the gate."""
    if not 0 < holdout < 1:
        raise InvalidInputError(f"the held-out share must be in (0, 1), got {holdout}")
    name = versions[0].name
    training: list[StoredPrediction] = []
    kept_back: list[StoredPrediction] = []
    unlogged = 0
    for version in versions:
        for record in registry.monitoring.predictions(version, since=since, labelled_only=True):
            if not record.inputs:
                unlogged += 1
                continue
            record = replace(record, inputs=[flat(row) for row in record.inputs])
            (kept_back if held_out(record.request_id, holdout) else training).append(record)
    if not training and not kept_back:
        raise NoTrainingDataError(_nothing_to_learn(name, unlogged, since))
    path = folder / "traffic.parquet"
    rows = rows_of(name, training)
    write_table(rows, path)
    return TrainingData(
        path=path,
        rows=len(rows),
        held_out=_labelled(kept_back),
        requests=len(training) + len(kept_back),
        unlogged=unlogged,
    )


def _labelled(records: list[StoredPrediction]) -> LabelledRows:
    inputs: list[dict[str, Any]] = []
    labels: list[Any] = []
    for record in records:
        given = record.label if isinstance(record.label, list) else [record.label]
        if not record.inputs or len(given) != len(record.inputs):
            continue  # a label list that does not fit its request is not guessed at
        inputs.extend(record.inputs)
        labels.extend(given)
    return LabelledRows(inputs, labels)


def _nothing_to_learn(name: str, unlogged: int, since: datetime | None) -> str:
    period = f" since {since.isoformat(timespec='seconds')}" if since else ""
    if unlogged:
        return (
            f"{name} has {unlogged} labelled requests{period} but none with its inputs logged, "
            "so there is no new data to retrain on: turn payload logging on for it "
            f'(SHIPYARD_MODEL_MONITORING=\'{{"{name}": {{"log_inputs": true}}}}\') and send '
            "feedback for the requests served after that"
        )
    return (
        f"{name} has no labelled traffic{period}, so there is no new data to retrain on: send "
        f"ground truth for its requests (POST /v2/models/{name}/feedback with the request ids "
        "it answered) and log their inputs (payload logging), then retrain"
    )
