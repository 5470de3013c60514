"""Triton's HTTP client works unchanged through the gateway (binary tensors and JSON), as it
does against a runtime (tests/runtime/test_official_clients.py); the ``openai`` client, whole
and streamed, through the gateway is tests/llm/test_gateway.py's."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tritonclient.http as triton
import tritonclient.utils as triton_utils

from tests.platform.conftest import Platform
from tests.security.conftest import admin_key

IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


@pytest.fixture
def bearer(gateway_platform: Platform) -> Callable[[], dict[str, str]]:
    """Fresh headers for each call: the client writes its binary header's length into them."""
    return lambda: {"Authorization": f"Bearer {admin_key(gateway_platform)}"}


@pytest.fixture(scope="module")
def client(gateway_platform: Platform) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=f"127.0.0.1:{gateway_platform.gateway_port}")


def test_triton_client_health_and_metadata(
    client: triton.InferenceServerClient, bearer: Callable[[], dict[str, str]]
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris", headers=bearer())
    metadata = client.get_model_metadata("iris", headers=bearer())
    assert metadata["inputs"][0]["name"] == "X"


@pytest.mark.parametrize("binary", [True, False])
def test_triton_client_infers_through_the_gateway(
    client: triton.InferenceServerClient, bearer: Callable[[], dict[str, str]], binary: bool
) -> None:
    features = triton.InferInput("X", list(IRIS.shape), "FP32")
    features.set_data_from_numpy(IRIS, binary_data=binary)
    result = client.infer("iris", [features], headers=bearer())  # outputs come back binary
    assert result.as_numpy("label").tolist() == [0, 2]
    assert result.as_numpy("probabilities").shape == (2, 3)
    asked = [triton.InferRequestedOutput("label", binary_data=binary)]
    chosen = client.infer("iris", [features], outputs=asked, headers=bearer())
    assert chosen.as_numpy("label").tolist() == [0, 2]
    assert chosen.as_numpy("probabilities") is None


def test_triton_client_sees_the_gateways_refusals(client: triton.InferenceServerClient) -> None:
    features = triton.InferInput("X", list(IRIS.shape), "FP32")
    features.set_data_from_numpy(IRIS)
    with pytest.raises(triton_utils.InferenceServerException, match="API key"):
        client.infer("iris", [features])  # no credential
