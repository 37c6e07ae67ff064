"""Open Inference Protocol (KServe V2) infer requests and responses, JSON and binary:
``POST /v2/models/{name}[/versions/{version}]/infer``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from shipyard.errors import InvalidInputError, SignatureMismatchError
from shipyard.runtime.predictor import decode_texts
from shipyard.runtime.session import V2_TO_NUMPY
from shipyard.server.http import JSON, OCTETS, RequestHeaders, json_object
from shipyard.server.interface import ModelInterface
from shipyard.server.pipeline import InferenceProtocol
from shipyard.server.tensors import (
    check_shape,
    describe,
    encode_bytes_elements,
    from_binary,
    from_json,
    v2_datatype,
)

HEADER_LENGTH = b"inference-header-content-length"
_DUMP = orjson.OPT_SERIALIZE_NUMPY


@dataclass(slots=True)
class InferRequest:
    id: str | None
    payload: dict[str, np.ndarray] | list[str]
    rows: int
    outputs: list[tuple[str, bool]] | None  # requested outputs, each with its binary flag
    binary_output: bool  # the request-wide default for outputs not named
    timeout_s: float | None
    parameters: dict[str, Any]


def parse_request(interface: ModelInterface, body: bytes, headers: RequestHeaders) -> InferRequest:
    """Decode and check a V2 infer request; every problem is an InvalidInputError (400)."""
    header_length = headers.header_length
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise InvalidInputError(
                f"Inference-Header-Content-Length is {header_length}; "
                f"the body has {len(body)} bytes"
            )
        header_bytes = body[:header_length] if header_length != len(body) else body
        binary: memoryview | None = memoryview(body)[header_length:]
    else:
        header_bytes, binary = body, None
    header = json_object(header_bytes, "a JSON object with an 'inputs' list")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInputError("the request needs a non-empty 'inputs' list")
    parameters = header.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInputError("'parameters' must be an object")

    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for raw in raw_inputs:
        if not isinstance(raw, dict):
            raise InvalidInputError("each entry of 'inputs' must be an object")
        name = raw.get("name")
        spec = interface.inputs_by_name.get(name) if isinstance(name, str) else None
        if spec is None or not isinstance(name, str):
            raise SignatureMismatchError(
                f"unknown input {name!r}; {interface.name} takes {describe(interface.inputs)}"
            )
        if name in arrays:
            raise SignatureMismatchError(f"input {name!r} is given twice")
        datatype = raw.get("datatype")
        if datatype != spec.datatype:
            raise SignatureMismatchError(
                f"input {name!r} expects datatype {spec.datatype}, got {datatype!r}"
            )
        shape = check_shape(spec, raw.get("shape"))
        input_parameters = raw.get("parameters") or {}
        size = (
            input_parameters.get("binary_data_size") if isinstance(input_parameters, dict) else None
        )
        if size is not None:
            if binary is None:
                raise InvalidInputError(
                    f"input {name!r} has binary_data_size but the request has no "
                    "Inference-Header-Content-Length header"
                )
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise SignatureMismatchError(
                    f"input {name!r}: binary_data_size {size!r} does not fit the "
                    f"{len(binary) - offset} bytes left in the body"
                )
            arrays[name] = from_binary(spec, shape, binary[offset : offset + size])
            offset += size
        elif "data" in raw:
            arrays[name] = from_json(spec, shape, raw["data"])
        else:
            raise InvalidInputError(f"input {name!r} has neither 'data' nor binary_data_size")
    if binary is not None and offset != len(binary):
        raise InvalidInputError(
            f"the body has {len(binary) - offset} bytes of binary data no input claims"
        )
    missing = [s.name for s in interface.inputs if s.name not in arrays]
    if missing:
        raise SignatureMismatchError(
            f"missing input(s) {', '.join(map(repr, missing))}; {interface.name} takes "
            f"{describe(interface.inputs)}"
        )
    rows = _rows(interface, arrays)
    payload: dict[str, np.ndarray] | list[str]
    if interface.text:
        spec = interface.inputs[0]
        payload = decode_texts(spec.name, arrays[spec.name].ravel())
    else:
        payload = arrays
    return InferRequest(
        id=_request_id(header.get("id")),
        payload=payload,
        rows=rows,
        outputs=_requested_outputs(interface, header.get("outputs")),
        binary_output=bool(parameters.get("binary_data_output", False)),
        timeout_s=_timeout(parameters.get("timeout")),
        parameters=parameters,
    )


def _rows(interface: ModelInterface, arrays: dict[str, np.ndarray]) -> int:
    rows: int | None = None
    for spec in interface.inputs:
        array = arrays[spec.name]
        if not spec.shape:
            continue
        n = array.shape[0]
        if rows is not None and n != rows and spec.shape[0] == -1:
            raise SignatureMismatchError(
                f"inputs disagree on the batch size: {spec.name!r} has {n} rows, others {rows}"
            )
        rows = n if rows is None else rows
    if rows == 0:
        raise SignatureMismatchError("the request has no rows (batch dimension 0)")
    return rows or 1


def _request_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError("'id' must be a string")
    return value


def _timeout(value: Any) -> float | None:
    """The V2 ``timeout`` parameter is in microseconds, as Triton reads it."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise InvalidInputError(
            f"parameter 'timeout' must be a positive number of µs, got {value!r}"
        )
    return float(value) / 1e6


def _requested_outputs(interface: ModelInterface, value: Any) -> list[tuple[str, bool]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInputError("'outputs' must be a list")
    requested = []
    for item in value:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in interface.output_names:
            raise SignatureMismatchError(
                f"unknown output {name!r}; {interface.name} returns {describe(interface.outputs)}"
            )
        parameters = item.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInputError(f"output {name!r}: 'parameters' must be an object")
        requested.append((name, bool(parameters.get("binary_data", False))))
    return requested


def encode_response(
    interface: ModelInterface,
    request: InferRequest,
    outputs: dict[str, np.ndarray],
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes, bytes]:
    """The response body and its content type; binary outputs follow the JSON header, whose
    length goes into ``headers``."""
    if request.outputs is None:
        chosen = [(spec.name, request.binary_output) for spec in interface.outputs]
    else:
        chosen = request.outputs
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in chosen:
        array = outputs[name]
        datatype = interface.output_datatypes.get(name)
        if datatype is None or array.dtype != V2_TO_NUMPY[datatype]:
            datatype = v2_datatype(array)  # the runtime answered in another type than declared
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            raw = (
                encode_bytes_elements(array)
                if datatype == "BYTES"
                else np.ascontiguousarray(array).tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        elif datatype == "BYTES":
            entry["data"] = [x.decode() if isinstance(x, bytes) else str(x) for x in array.ravel()]
        else:
            entry["data"] = np.ascontiguousarray(array).ravel()
        entries.append(entry)
    document: dict[str, Any] = {
        "model_name": interface.name,
        "model_version": str(interface.version),
        "outputs": entries,
    }
    if request.id is not None:
        document["id"] = request.id
    header = orjson.dumps(document, option=_DUMP)
    if not blobs:
        return header, JSON
    headers.append((HEADER_LENGTH, str(len(header)).encode()))
    return b"".join([header, *blobs]), OCTETS


class V2Infer(InferenceProtocol[InferRequest]):
    parse = staticmethod(parse_request)
    encode = staticmethod(encode_response)
