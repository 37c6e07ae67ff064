"""Tensors on the wire (Open Inference Protocol): JSON data, the binary tensor data
extension, and the checks that turn any malformed input into a 400 naming the input.

BYTES elements in binary form are each a 4-byte little-endian length and the bytes.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from shipyard.errors import SignatureMismatchError
from shipyard.registry.domain import TensorSpec
from shipyard.runtime.session import V2_TO_NUMPY

NUMPY_TO_V2 = {np.dtype(t).str: name for name, t in V2_TO_NUMPY.items() if name != "BYTES"}
_LENGTH = struct.Struct("<I")


def v2_datatype(array: np.ndarray) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    return NUMPY_TO_V2[
        array.dtype.str if array.dtype.byteorder != ">" else array.dtype.newbyteorder("<").str
    ]


def describe(specs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(f"{s.name} {s.datatype} {_shape(s.shape)}" for s in specs)


def _shape(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_shape(spec: TensorSpec, shape: Any) -> tuple[int, ...]:
    """The request's shape for ``spec``, or a SignatureMismatchError saying what was expected."""
    if type(shape) is list and len(shape) == len(spec.shape):
        for want, got in zip(spec.shape, shape, strict=True):
            if type(got) is not int or got < 0 or (want != -1 and want != got):
                break
        else:
            return tuple(shape)  # the common case, checked in one pass
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise SignatureMismatchError(
            f"input {spec.name!r}: shape must be a list of non-negative integers, got {shape!r}"
        )
    if len(shape) != len(spec.shape) or any(
        want != -1 and want != got for want, got in zip(spec.shape, shape, strict=False)
    ):
        raise SignatureMismatchError(
            f"input {spec.name!r} expects shape {_shape(spec.shape)}, got {_shape(shape)}"
        )
    return tuple(shape)


def from_json(spec: TensorSpec, shape: tuple[int, ...], data: Any) -> np.ndarray:
    count = math.prod(shape)
    if spec.datatype == "BYTES":
        flat = _flatten_strings(spec, data)
        if len(flat) != count:
            raise SignatureMismatchError(
                f"input {spec.name!r} has {len(flat)} elements; shape {_shape(shape)} needs {count}"
            )
        array = np.empty(count, dtype=object)
        array[:] = flat
        return array.reshape(shape)
    try:
        with np.errstate(over="ignore"):  # out-of-range values become inf, as a cast would
            array = np.asarray(data, dtype=V2_TO_NUMPY[spec.datatype])
    except (ValueError, TypeError, OverflowError):
        raise SignatureMismatchError(
            f"input {spec.name!r} expects {spec.datatype} numbers; its data holds something else"
        ) from None
    if array.size != count:
        raise SignatureMismatchError(
            f"input {spec.name!r} has {array.size} elements; shape {_shape(shape)} needs {count}"
        )
    return array.reshape(shape)


def _flatten_strings(spec: TensorSpec, data: Any) -> list[str]:
    out: list[str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list):
            stack.extend(reversed(item))
        else:
            raise SignatureMismatchError(
                f"input {spec.name!r} is BYTES: its data must be strings, got {type(item).__name__}"
            )
    return out


def from_binary(spec: TensorSpec, shape: tuple[int, ...], raw: memoryview) -> np.ndarray:
    count = math.prod(shape)
    if spec.datatype == "BYTES":
        items = decode_bytes_elements(spec.name, raw)
        if len(items) != count:
            raise SignatureMismatchError(
                f"input {spec.name!r} has {len(items)} elements; "
                f"shape {_shape(shape)} needs {count}"
            )
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    dtype = np.dtype(V2_TO_NUMPY[spec.datatype])
    needed = count * dtype.itemsize
    if len(raw) != needed:
        raise SignatureMismatchError(
            f"input {spec.name!r} has {len(raw)} bytes of binary data; shape {_shape(shape)} "
            f"of {spec.datatype} needs {needed}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def decode_bytes_elements(name: str, raw: memoryview) -> list[bytes]:
    items: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise SignatureMismatchError(f"input {name!r}: truncated BYTES element length")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise SignatureMismatchError(
                f"input {name!r}: a BYTES element claims {length} bytes, only {end - offset} remain"
            )
        items.append(bytes(raw[offset : offset + length]))
        offset += length
    return items


def encode_bytes_elements(array: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for item in array.ravel():
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)
