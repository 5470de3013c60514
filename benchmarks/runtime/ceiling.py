"""The practical ceiling: a minimal hand-written asyncio HTTP server doing the same ONNX predict.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) and v2 JSON to answer the
benchmark's requests, with no routing, validation or metrics: what Python on this machine can do.
Usage: python ceiling.py MODEL.onnx PORT
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np
import onnxruntime as ort
import orjson
import uvloop


class Handler(asyncio.Protocol):
    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            start = head.find(b"content-length:")
            line_end = head.find(b"\r\n", start)
            line_end = len(head) if line_end < 0 else line_end
            length = int(head[start + 15 : line_end]) if start >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(self.respond(body))  # type: ignore[attr-defined]

    def respond(self, body: bytes) -> bytes:
        tensor = orjson.loads(body)["inputs"][0]
        features = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        label, probabilities = self.session.run(None, {"X": features})
        payload = orjson.dumps(
            {
                "model_name": "iris",
                "outputs": [
                    {
                        "name": "label",
                        "datatype": "INT64",
                        "shape": list(label.shape),
                        "data": label,
                    },
                    {
                        "name": "probabilities",
                        "datatype": "FP32",
                        "shape": list(probabilities.shape),
                        "data": probabilities.reshape(-1),
                    },
                ],
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        header = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(payload)).encode()
            + b"\r\n\r\n"
        )
        return header + payload


async def main(model: str, port: int) -> None:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Handler(session), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
