"""The Open Inference Protocol datatypes and their numpy and byte-level representations.

BYTES tensors are numpy object arrays of ``bytes``; BF16, which numpy lacks, is widened to float32
on the way in (lossless) and is never produced on the way out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplane.errors import InvalidRequestError
from modelplane.runtime.types import Array

NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*NUMPY_DTYPES, "BF16", "BYTES")
_BY_KIND_AND_SIZE = {(dt.kind, dt.itemsize): name for name, dt in NUMPY_DTYPES.items()}
_ACCEPTED_KINDS = {"b": "b", "u": "biu", "i": "biu", "f": "biuf"}  # JSON kinds each kind takes


def check_datatype(datatype: str, where: str) -> None:
    if datatype not in DATATYPES:
        raise InvalidRequestError(
            f"{where}: unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
        )


def datatype_of(array: Array) -> str:
    """The protocol datatype for a numpy array a model produced."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    name = _BY_KIND_AND_SIZE.get((array.dtype.kind, array.dtype.itemsize))
    if name is None:
        raise TypeError(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype")
    return name


def element_size(datatype: str) -> int | None:
    """Bytes per element in the binary extension, or None for variable-size BYTES."""
    if datatype == "BF16":
        return 2
    if datatype == "BYTES":
        return None
    return NUMPY_DTYPES[datatype].itemsize


def from_json_data(data: Any, datatype: str, where: str) -> Array:
    """A flat or nested JSON ``data`` list as a flat numpy array of ``datatype``."""
    if datatype == "BYTES":
        return _bytes_from_json(data, where)
    try:
        values = np.asarray(data)
    except ValueError as exc:
        raise InvalidRequestError(f"{where}: data is not a regular nested list: {exc}") from exc
    values = values.reshape(-1)
    target = np.dtype(np.float32) if datatype == "BF16" else NUMPY_DTYPES[datatype]
    if datatype == "UINT64" and values.dtype.kind == "f":
        values = _uint64_from(values, data, where)
    if values.size and values.dtype.kind not in _ACCEPTED_KINDS[target.kind]:
        raise InvalidRequestError(
            f"{where}: datatype {datatype} cannot hold the given values "
            f"(found {_describe_kind(values.dtype.kind)})"
        )
    if target.kind in "iu" and values.size:
        _check_range(values, target, datatype, where)
    return values.astype(target, copy=False)


def _check_range(values: Array, target: np.dtype[Any], datatype: str, where: str) -> None:
    info = np.iinfo(target)
    low, high = values.min(), values.max()
    if low < info.min or high > info.max:
        raise InvalidRequestError(
            f"{where}: values from {low} to {high} do not fit {datatype} ({info.min}..{info.max})"
        )


def _uint64_from(values: Array, data: Any, where: str) -> Array:
    # numpy reads integers above INT64's range as float64; re-read them exactly.
    try:
        exact = np.asarray(data, dtype=np.uint64).reshape(-1)
    except (OverflowError, ValueError, TypeError) as exc:
        raise InvalidRequestError(f"{where}: values do not fit UINT64: {exc}") from exc
    if not np.array_equal(exact.astype(np.float64), values):
        raise InvalidRequestError(f"{where}: datatype UINT64 cannot hold fractional values")
    return exact


def _describe_kind(kind: str) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "floating-point numbers"}.get(
        kind, "strings or other non-numeric values"
    )


def _bytes_from_json(data: Any, where: str) -> Array:
    flat: list[bytes] = []
    stack = [data] if not isinstance(data, list) else list(reversed(data))
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            flat.append(item.encode())
        else:
            raise InvalidRequestError(
                f"{where}: BYTES data must be strings, got {type(item).__name__}"
            )
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out


def to_json_data(array: Array, where: str) -> Any:
    """A flat array as a JSON-ready value: numpy for numbers (orjson writes it), str for BYTES."""
    flat = np.ascontiguousarray(array).reshape(-1)
    if flat.dtype.kind not in "OSU":
        return flat
    try:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"{where}: output holds non-UTF-8 bytes that JSON cannot carry; "
            f"ask for it with parameters.binary_data: true"
        ) from exc


def from_binary(blob: bytes, datatype: str, count: int, where: str) -> Array:
    """Decode a binary-extension tensor of ``count`` elements."""
    if datatype == "BYTES":
        return _bytes_from_binary(blob, count, where)
    size = element_size(datatype)
    assert size is not None  # BYTES handled above
    if len(blob) != count * size:
        raise InvalidRequestError(
            f"{where}: binary_data_size is {len(blob)} bytes, but {count} elements of "
            f"{datatype} need {count * size}"
        )
    if datatype == "BF16":
        widened = np.frombuffer(blob, dtype="<u2").astype(np.uint32) << 16
        return widened.view(np.float32)
    return np.frombuffer(blob, dtype=NUMPY_DTYPES[datatype])


def _bytes_from_binary(blob: bytes, count: int, where: str) -> Array:
    out = np.empty(count, dtype=object)
    view = memoryview(blob)
    offset = 0
    for index in range(count):
        if offset + 4 > len(blob):
            raise InvalidRequestError(
                f"{where}: BYTES payload ends after {index} of {count} elements"
            )
        length = int.from_bytes(view[offset : offset + 4], "little")
        offset += 4
        if offset + length > len(blob):
            raise InvalidRequestError(
                f"{where}: BYTES element {index} claims {length} bytes past the payload's end"
            )
        out[index] = bytes(view[offset : offset + length])
        offset += length
    if offset != len(blob):
        raise InvalidRequestError(
            f"{where}: BYTES payload has {len(blob) - offset} bytes left after {count} elements"
        )
    return out


def to_binary(array: Array) -> bytes:
    """Encode an output tensor for the binary extension."""
    if array.dtype.kind not in "OSU":
        return np.ascontiguousarray(array).tobytes()
    parts = []
    for value in array.reshape(-1):
        raw = value if isinstance(value, bytes) else str(value).encode()
        parts.append(len(raw).to_bytes(4, "little"))
        parts.append(raw)
    return b"".join(parts)
