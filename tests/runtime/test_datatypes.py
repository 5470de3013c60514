"""Every Open Inference Protocol datatype, as JSON and as binary, through a real echo runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.conftest import MODELS, write_manifest
from tests.processes import RuntimeProcess

NUMERIC = {
    "BOOL": (np.bool_, [True, False, True, True]),
    "UINT8": (np.uint8, [0, 1, 254, 255]),
    "UINT16": (np.uint16, [0, 1, 65534, 65535]),
    "UINT32": (np.uint32, [0, 1, 2**32 - 2, 2**32 - 1]),
    "UINT64": (np.uint64, [0, 1, 2**63, 2**64 - 1]),
    "INT8": (np.int8, [-128, -1, 0, 127]),
    "INT16": (np.int16, [-(2**15), -1, 0, 2**15 - 1]),
    "INT32": (np.int32, [-(2**31), -1, 0, 2**31 - 1]),
    "INT64": (np.int64, [-(2**63), -1, 0, 2**63 - 1]),
    "FP16": (np.float16, [0.5, -1.25, 65504.0, 0.0]),
    "FP32": (np.float32, [0.5, -1.25, 3.4e38, 1e-30]),
    "FP64": (np.float64, [0.5, -1.25, 1.7e308, 5e-324]),
}


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    tmp = tmp_path_factory.mktemp("echo")
    manifest = write_manifest(tmp / "echo.yaml", "echo", (MODELS / "echo.py").as_uri(), "python")
    runtime = RuntimeProcess(["-f", str(manifest)], tmp / "serve.log")
    try:
        runtime.wait_ready()
        yield runtime
    finally:
        runtime.terminate()


def post(runtime: RuntimeProcess, body: bytes, header_length: int | None = None) -> httpx.Response:
    headers = (
        {} if header_length is None else {"Inference-Header-Content-Length": str(header_length)}
    )
    return httpx.post(runtime.url + "/v2/models/echo/infer", content=body, headers=headers)


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_numeric_datatype_round_trips_as_json(echo: RuntimeProcess, datatype: str) -> None:
    _, values = NUMERIC[datatype]
    body = {"inputs": [{"name": "t", "datatype": datatype, "shape": [2, 2], "data": values}]}
    reply = post(echo, orjson.dumps(body))
    assert reply.status_code == 200, reply.text
    (output,) = reply.json()["outputs"]
    assert output["datatype"] == datatype
    assert output["shape"] == [2, 2]
    assert output["data"] == values


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_numeric_datatype_round_trips_as_binary(echo: RuntimeProcess, datatype: str) -> None:
    dtype, values = NUMERIC[datatype]
    array = np.array(values, dtype=dtype).reshape(2, 2)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "t",
                    "datatype": datatype,
                    "shape": [2, 2],
                    "parameters": {"binary_data_size": array.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    reply = post(echo, header + array.tobytes(), len(header))
    assert reply.status_code == 200, reply.text
    length = int(reply.headers["Inference-Header-Content-Length"])
    (output,) = orjson.loads(reply.content[:length])["outputs"]
    assert output["datatype"] == datatype
    echoed = np.frombuffer(reply.content[length:], dtype=array.dtype.newbyteorder("<"))
    assert echoed.tolist() == array.reshape(-1).tolist()


def test_bytes_round_trip_as_json_and_binary(echo: RuntimeProcess) -> None:
    words = ["héllo", "", "wörld"]
    body = {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [3], "data": words}]}
    (output,) = post(echo, orjson.dumps(body)).json()["outputs"]
    assert output == {"name": "s", "datatype": "BYTES", "shape": [3], "data": words}

    raw = [b"\x00\xffbinary", b"x"]
    payload = b"".join(len(v).to_bytes(4, "little") + v for v in raw)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(payload)},
                }
            ],
            "outputs": [{"name": "s", "parameters": {"binary_data": True}}],
        }
    )
    reply = post(echo, header + payload, len(header))
    length = int(reply.headers["Inference-Header-Content-Length"])
    assert reply.content[length:] == payload


def test_non_utf8_bytes_in_json_ask_for_binary(echo: RuntimeProcess) -> None:
    payload = (2).to_bytes(4, "little") + b"\xff\xfe"
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": 6},
                }
            ]
        }
    )
    reply = post(echo, header + payload, len(header))
    assert reply.status_code == 400
    assert "binary_data: true" in reply.json()["error"]


def test_malformed_bytes_payloads(echo: RuntimeProcess) -> None:
    def send(payload: bytes, count: int) -> str:
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "s",
                        "datatype": "BYTES",
                        "shape": [count],
                        "parameters": {"binary_data_size": len(payload)},
                    }
                ]
            }
        )
        reply = post(echo, header + payload, len(header))
        assert reply.status_code == 400
        return str(reply.json()["error"])

    assert "ends after 1 of 2" in send((1).to_bytes(4, "little") + b"a", 2)
    assert "past the payload's end" in send((9).to_bytes(4, "little") + b"a", 1)
    assert "bytes left after 1" in send((1).to_bytes(4, "little") + b"abc", 1)


def test_bf16_is_accepted_and_widened(echo: RuntimeProcess) -> None:
    values = np.array([1.0, -2.5, 0.15625], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "b",
                    "datatype": "BF16",
                    "shape": [3],
                    "parameters": {"binary_data_size": 6},
                }
            ]
        }
    )
    reply = post(echo, header + bf16.tobytes(), len(header))
    assert reply.status_code == 200, reply.text
    (output,) = reply.json()["outputs"]
    assert output["datatype"] == "FP32"
    assert output["data"] == [1.0, -2.5, 0.15625]
    as_json = {"inputs": [{"name": "b", "datatype": "BF16", "shape": [2], "data": [1.5, 2]}]}
    assert post(echo, orjson.dumps(as_json)).json()["outputs"][0]["data"] == [1.5, 2.0]


@pytest.mark.parametrize(
    ("datatype", "data", "fragment"),
    [
        ("UINT8", [256], "do not fit UINT8"),
        ("INT8", [-129], "do not fit INT8"),
        ("INT32", [1.5], "cannot hold the given values (found floating-point numbers)"),
        ("BOOL", [2], "cannot hold the given values (found integers)"),
        ("BYTES", [1], "BYTES data must be strings"),
    ],
)
def test_values_outside_a_datatype_are_refused(
    echo: RuntimeProcess, datatype: str, data: list[object], fragment: str
) -> None:
    body = {"inputs": [{"name": "t", "datatype": datatype, "shape": [1], "data": data}]}
    reply = post(echo, orjson.dumps(body))
    assert reply.status_code == 400
    assert fragment in reply.json()["error"]


def test_parameters_and_id_are_echoed(echo: RuntimeProcess, tmp_path: Path) -> None:
    body = {
        "id": "abc",
        "parameters": {"custom": 1},
        "inputs": [{"name": "t", "datatype": "INT32", "shape": [1], "data": [7]}],
    }
    reply = post(echo, orjson.dumps(body)).json()
    assert reply["id"] == "abc"
    assert reply["model_name"] == "echo"
