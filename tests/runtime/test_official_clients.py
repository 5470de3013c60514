"""The official v2 clients work unchanged: Triton's HTTP client (binary tensors by default) and
KServe's InferenceRESTClient (JSON and binary)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import tritonclient.http as triton

from tests.processes import RuntimeProcess

IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


@pytest.fixture
def triton_client(iris_runtime: RuntimeProcess) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=f"127.0.0.1:{iris_runtime.port}")


def test_triton_client_health_and_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready("iris")
    assert triton_client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    metadata = triton_client.get_model_metadata("iris")
    assert metadata["inputs"][0]["name"] == "X"


@pytest.mark.parametrize("binary", [True, False])
def test_triton_client_infers(triton_client: triton.InferenceServerClient, binary: bool) -> None:
    features = triton.InferInput("X", list(IRIS.shape), "FP32")
    features.set_data_from_numpy(IRIS, binary_data=binary)
    result = triton_client.infer("iris", [features])  # no outputs named: all come back binary
    assert result.as_numpy("label").tolist() == [0, 2]
    assert result.as_numpy("probabilities").shape == (2, 3)
    chosen = triton_client.infer(
        "iris", [features], outputs=[triton.InferRequestedOutput("label", binary_data=binary)]
    )
    assert chosen.as_numpy("label").tolist() == [0, 2]
    assert chosen.as_numpy("probabilities") is None


def test_triton_client_reports_server_errors(triton_client: triton.InferenceServerClient) -> None:
    wrong = triton.InferInput("X", [1, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(Exception, match=r"the model expects \[-1, 4\]"):
        triton_client.infer("iris", [wrong])


@pytest.mark.parametrize("binary", [True, False])
def test_kserve_rest_client_infers(iris_runtime: RuntimeProcess, binary: bool) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def call() -> list[int]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=10))
        try:
            assert await client.is_server_ready(iris_runtime.url)
            assert await client.is_model_ready(iris_runtime.url, "iris")
            tensor = InferInput(name="X", shape=list(IRIS.shape), datatype="FP32")
            tensor.set_data_from_numpy(IRIS, binary_data=binary)
            request = InferRequest(model_name="iris", infer_inputs=[tensor], request_id="k1")
            response = await client.infer(iris_runtime.url, request, model_name="iris")
            assert response.id == "k1"
            outputs = {o.name: o for o in response.outputs}
            return list(outputs["label"].as_numpy().tolist())
        finally:
            await client.close()

    assert asyncio.run(call()) == [0, 2]
