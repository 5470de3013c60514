"""The Open Inference Protocol v2 REST surface of a real runtime process serving iris (ONNX)."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest

from tests.processes import RuntimeProcess

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]


def infer(
    runtime: RuntimeProcess, body: object, path: str = "/v2/models/iris/infer"
) -> httpx.Response:
    return httpx.post(runtime.url + path, json=body, timeout=10)


def iris_request(rows: list[list[float]], **extra: object) -> dict[str, object]:
    tensor = {"name": "X", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}
    return {"inputs": [tensor], **extra}


def test_server_metadata_and_health(iris_runtime: RuntimeProcess) -> None:
    meta = httpx.get(iris_runtime.url + "/v2").json()
    assert meta["name"] == "modelplane"
    assert "binary_tensor_data" in meta["extensions"]
    assert httpx.get(iris_runtime.url + "/v2/health/live").status_code == 200
    assert httpx.get(iris_runtime.url + "/v2/health/ready").status_code == 200
    assert httpx.get(iris_runtime.url + "/v2/models/iris/ready").json()["ready"] is True
    assert httpx.get(iris_runtime.url + "/v2/models/iris/versions/1/ready").status_code == 200


def test_model_metadata_describes_tensors(iris_runtime: RuntimeProcess) -> None:
    meta = httpx.get(iris_runtime.url + "/v2/models/iris").json()
    assert meta["name"] == "iris"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime"
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    outputs = {o["name"]: o for o in meta["outputs"]}
    assert outputs["label"] == {"name": "label", "datatype": "INT64", "shape": [-1]}
    assert outputs["probabilities"]["shape"] == [-1, 3]
    assert httpx.get(iris_runtime.url + "/v2/models/iris/versions/1").json() == meta


def test_infer_classifies_iris(iris_runtime: RuntimeProcess) -> None:
    reply = infer(iris_runtime, iris_request([SETOSA, VIRGINICA], id="req-7"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["id"] == "req-7"
    assert body["model_name"] == "iris"
    assert body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["data"] == [0, 2]
    assert outputs["label"]["datatype"] == "INT64"
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(2, 3)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_nested_and_flat_data_agree(iris_runtime: RuntimeProcess) -> None:
    flat = iris_request([SETOSA])
    flat["inputs"][0]["data"] = SETOSA  # type: ignore[index]
    nested = iris_request([SETOSA])
    assert (
        infer(iris_runtime, flat).json()["outputs"] == infer(iris_runtime, nested).json()["outputs"]
    )


def test_output_selection_returns_only_requested(iris_runtime: RuntimeProcess) -> None:
    body = infer(iris_runtime, iris_request([SETOSA], outputs=[{"name": "label"}])).json()
    assert [o["name"] for o in body["outputs"]] == ["label"]


def test_versioned_infer_path(iris_runtime: RuntimeProcess) -> None:
    reply = infer(iris_runtime, iris_request([SETOSA]), "/v2/models/iris/versions/1/infer")
    assert reply.status_code == 200


def test_binary_request_and_response(iris_runtime: RuntimeProcess) -> None:
    features = np.array([SETOSA, VIRGINICA], dtype=np.float32)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "X",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "parameters": {"binary_data_size": features.nbytes},
                }
            ],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
        }
    )
    reply = httpx.post(
        iris_runtime.url + "/v2/models/iris/infer",
        content=header + features.tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert reply.status_code == 200, reply.text
    length = int(reply.headers["Inference-Header-Content-Length"])
    meta = orjson.loads(reply.content[:length])
    (label,) = meta["outputs"]
    assert "data" not in label
    assert label["parameters"]["binary_data_size"] == 16
    assert np.frombuffer(reply.content[length:], dtype="<i8").tolist() == [0, 2]


def test_binary_data_output_applies_to_all_outputs(iris_runtime: RuntimeProcess) -> None:
    reply = infer(iris_runtime, iris_request([SETOSA], parameters={"binary_data_output": True}))
    length = int(reply.headers["Inference-Header-Content-Length"])
    meta = orjson.loads(reply.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in meta["outputs"]]
    assert sizes == [8, 12]
    assert len(reply.content) == length + 20


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"inputs": []}', 400, "non-empty 'inputs'"),
        (b'{"inputs": [{"name": "X", "shape": [1, 4], "data": [1,2,3,4]}]}', 400, "'datatype'"),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP33", "shape": [1, 4], "data": [1,2,3,4]}]}',
            400,
            "unknown datatype 'FP33'",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3]}]}',
            400,
            "needs 4 elements, data has 3",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 3], "data": [1,2,3]}]}',
            400,
            "has shape [1, 3], the model expects [-1, 4]",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "INT32", "shape": [1, 4], "data": [1,2,3,4]}]}',
            400,
            "has datatype INT32, the model expects FP32",
        ),
        (
            b'{"inputs": [{"name": "Y", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}]}',
            400,
            "missing input 'X'",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]},'
            b'{"name": "Z", "datatype": "FP32", "shape": [1], "data": [1]}]}',
            400,
            "unexpected input 'Z'",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]},'
            b'{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}]}',
            400,
            "appears more than once",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],'
            b' "data": ["a","b","c","d"]}]}',
            400,
            "cannot hold the given values",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 2],'
            b' "data": [[1,2],[3]]}]}',
            400,
            "not a regular nested list",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}],'
            b'"outputs": [{"name": "nope"}]}',
            400,
            "unknown output 'nope'",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4], "data": [1,2,3,4]}]}',
            400,
            "non-negative integers",
        ),
        (b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4]}]}', 400, "needs 'data'"),
    ],
)
def test_bad_requests_get_precise_400s(
    iris_runtime: RuntimeProcess, body: bytes, status: int, fragment: str
) -> None:
    reply = httpx.post(iris_runtime.url + "/v2/models/iris/infer", content=body)
    assert reply.status_code == status
    assert fragment in reply.json()["error"]


def test_binary_size_mismatches_are_rejected(iris_runtime: RuntimeProcess) -> None:
    def send(declared: int, payload: bytes, header_length: int | None = None) -> httpx.Response:
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "X",
                        "datatype": "FP32",
                        "shape": [1, 4],
                        "parameters": {"binary_data_size": declared},
                    }
                ]
            }
        )
        length = len(header) if header_length is None else header_length
        return httpx.post(
            iris_runtime.url + "/v2/models/iris/infer",
            content=header + payload,
            headers={"Inference-Header-Content-Length": str(length)},
        )

    too_short = send(12, bytes(12))
    assert too_short.status_code == 400
    assert "12 bytes, but 4 elements of FP32 need 16" in too_short.json()["error"]
    past_end = send(16, bytes(8))
    assert "runs past the end" in past_end.json()["error"]
    leftover = send(16, bytes(20))
    assert "add up to 16" in leftover.json()["error"]
    bad_header = send(16, bytes(16), header_length=10_000)
    assert "Inference-Header-Content-Length" in bad_header.json()["error"]


def test_unknown_model_and_version_are_404(iris_runtime: RuntimeProcess) -> None:
    reply = infer(iris_runtime, iris_request([SETOSA]), "/v2/models/nope/infer")
    assert reply.status_code == 404
    assert "no model 'nope'" in reply.json()["error"]
    assert httpx.get(iris_runtime.url + "/v2/models/nope").status_code == 404
    assert httpx.get(iris_runtime.url + "/v2/models/iris/versions/9").status_code == 404
    assert httpx.get(iris_runtime.url + "/v2/models/iris/versions/9/ready").status_code == 404


def test_server_survives_bad_input(iris_runtime: RuntimeProcess) -> None:
    for junk in (b"\xff\xfe", b"{" * 10_000, b'{"inputs": [null]}', b'{"inputs": "X"}'):
        assert (
            httpx.post(iris_runtime.url + "/v2/models/iris/infer", content=junk).status_code == 400
        )
    assert infer(iris_runtime, iris_request([SETOSA])).status_code == 200


def test_metrics_count_requests_by_outcome(iris_runtime: RuntimeProcess) -> None:
    infer(iris_runtime, iris_request([SETOSA]))
    httpx.post(iris_runtime.url + "/v2/models/iris/infer", content=b"{")
    text = httpx.get(iris_runtime.url + "/metrics").text
    assert 'modelplane_runtime_requests_total{model="iris",outcome="success"}' in text
    assert 'modelplane_runtime_requests_total{model="iris",outcome="invalid"}' in text
    for family in (
        "modelplane_runtime_request_duration_seconds_bucket",
        "modelplane_runtime_queue_duration_seconds_bucket",
        "modelplane_runtime_inference_duration_seconds_bucket",
        "modelplane_runtime_batch_size_bucket",
        "modelplane_runtime_in_flight_requests",
        'modelplane_runtime_model_ready{model="iris"} 1.0',
    ):
        assert family in text
