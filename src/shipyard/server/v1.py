"""KServe V1 ``POST /v1/models/{name}:predict``: ``{"instances": [...]}`` in,
``{"predictions": [...]}`` out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from shipyard.errors import InvalidInputError, SignatureMismatchError
from shipyard.runtime.predictor import coerce
from shipyard.server.http import JSON, RequestHeaders, json_value
from shipyard.server.interface import ModelInterface
from shipyard.server.pipeline import InferenceProtocol
from shipyard.server.tensors import describe


@dataclass(slots=True)
class PredictRequest:
    payload: Any
    rows: int
    timeout_s: float | None = None  # V1 has no deadline of its own


def parse_instances(
    interface: ModelInterface, body: bytes, headers: RequestHeaders
) -> PredictRequest:
    """The validated payload and its row count."""
    document = json_value(body)
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise InvalidInputError('the request needs a non-empty "instances" list')
    if interface.text:
        if not all(isinstance(item, str) for item in instances):
            raise SignatureMismatchError(f"{interface.name} takes strings as instances")
        return PredictRequest(instances, len(instances))
    if len(interface.inputs) == 1:
        spec = interface.inputs[0]
        if instances and isinstance(instances[0], dict):
            instances = [_field(item, spec.name) for item in instances]
        return PredictRequest({spec.name: _array(spec, instances)}, len(instances))
    if not all(isinstance(item, dict) for item in instances):
        raise SignatureMismatchError(
            f"{interface.name} takes several inputs ({describe(interface.inputs)}): "
            "each instance must be an object naming them"
        )
    payload = {
        spec.name: _array(spec, [_field(item, spec.name) for item in instances])
        for spec in interface.inputs
    }
    return PredictRequest(payload, len(instances))


def _field(item: Any, name: str) -> Any:
    if not isinstance(item, dict) or name not in item:
        raise SignatureMismatchError(f"an instance lacks input {name!r}")
    return item[name]


def _array(spec: Any, values: list[Any]) -> np.ndarray:
    try:
        raw = np.asarray(values)
    except ValueError:
        raise SignatureMismatchError(f"input {spec.name!r}: the instances are ragged") from None
    array = coerce(raw, spec)
    if array.ndim == 0 or array.shape[0] != len(values):
        # coerce() adds a batch axis to one bare example; here every instance is one row, and
        # the batcher splits results by the row count this request reports.
        raise SignatureMismatchError(
            f"input {spec.name!r}: each instance must be one row of shape {list(spec.shape[1:])}"
        )
    return array


def encode_predictions(
    interface: ModelInterface,
    request: PredictRequest,
    outputs: dict[str, np.ndarray],
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes, bytes]:
    names = [s.name for s in interface.outputs]
    if len(names) == 1:
        return orjson.dumps({"predictions": _plain(outputs[names[0]])}), JSON
    columns = {name: _plain(outputs[name]) for name in names}
    rows = len(next(iter(columns.values())))
    predictions = [{name: columns[name][i] for name in names} for i in range(rows)]
    return orjson.dumps({"predictions": predictions}), JSON


def _plain(array: np.ndarray) -> list[Any]:
    if array.dtype.kind in "OSU":
        return [x.decode() if isinstance(x, bytes) else str(x) for x in array.tolist()]
    return list(array.tolist())


class V1Predict(InferenceProtocol[PredictRequest]):
    parse = staticmethod(parse_instances)
    encode = staticmethod(encode_predictions)
