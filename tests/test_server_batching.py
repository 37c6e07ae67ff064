"""Dynamic batching over real sockets, and deadlines, with MiniLM (a model slow enough to queue).

Each test reads the batch-size histogram before and after what it sends, so the warm-up
batches and earlier tests do not count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from server_helpers import HANG_GUARD_S, client, running_server, scrape, server_settings, triton_url
from shipyard import Registry
from shipyard.server import Server

BATCH_SIZE = "shipyard_batch_size_rows"


def _texts(n: int, start: int = 0) -> list[str]:
    """Distinct sentences, so that a row given to the wrong request would show."""
    subjects = ["The cat", "A pilot", "My neighbour", "The committee", "Our robot", "A violinist"]
    verbs = ["repairs", "paints", "studies", "sells", "forgets", "celebrates", "measures"]
    objects = ["an old bicycle", "the harbour", "seven maps", "a quiet garden", "the budget"]
    out = []
    for i in range(start, start + n):
        out.append(f"{subjects[i % 6]} {verbs[(i // 6) % 7]} {objects[(i // 42) % 5]} on day {i}.")
    return out


def _v2_text(texts: list[str], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]
    }
    body.update(extra)
    return body


def _embedding(document: dict[str, Any], rows: int) -> np.ndarray:
    (output,) = document["outputs"]
    assert output["shape"] == [rows, 384]
    return np.asarray(output["data"], dtype=np.float32).reshape(rows, 384)


def _minilm_server(registry: Registry, **batching: Any) -> Any:
    base = server_settings(registry.settings.home)
    settings = base.model_copy(update={"batching": base.batching.model_copy(update=batching)})
    return running_server(settings, models=["minilm"])


@pytest.fixture(scope="module")
def batching_server(minilm_registry: Registry, minilm_version: Any) -> Iterator[Server]:
    with _minilm_server(minilm_registry, max_batch_delay_ms=50) as server:
        yield server


def test_a_request_with_five_rows_counts_five(batching_server: Server) -> None:
    with client(batching_server) as http:
        before = scrape(http)
        response = http.post("/v2/models/minilm/infer", json=_v2_text(_texts(5)))
        assert response.status_code == 200, response.text
        after = scrape(http)
    labels = {"model": "minilm", "version": "1"}
    count = after.value(BATCH_SIZE + "_count", **labels) - before.value(
        BATCH_SIZE + "_count", **labels
    )
    rows = after.value(BATCH_SIZE + "_sum", **labels) - before.value(BATCH_SIZE + "_sum", **labels)
    assert (count, rows) == (1, 5)


async def _burst(url: str, requests: list[list[str]]) -> list[tuple[int, dict[str, Any]]]:
    connector = aiohttp.TCPConnector(limit=len(requests))
    timeout = aiohttp.ClientTimeout(total=HANG_GUARD_S)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

        async def one(texts: list[str]) -> tuple[int, dict[str, Any]]:
            async with session.post("/v2/models/minilm/infer", json=_v2_text(texts)) as r:
                return r.status, await r.json()

        return await asyncio.gather(*(one(texts) for texts in requests))


def test_a_concurrent_burst_is_batched_and_each_request_gets_its_own_rows(
    batching_server: Server, minilm_reference: Any
) -> None:
    sizes = [1 + (i % 3) for i in range(32)]  # 1, 2 or 3 rows per request: 63 rows in all
    requests: list[list[str]] = []
    start = 0
    for size in sizes:
        requests.append(_texts(size, start))
        start += size
    expected = minilm_reference.predict(_texts(start))["embedding"]

    with client(batching_server) as http:
        before = scrape(http)
        answers = asyncio.run(_burst(batching_server.url, requests))
        after = scrape(http)

    offset = 0
    for (status, document), texts in zip(answers, requests, strict=True):
        assert status == 200, document
        vectors = _embedding(document, len(texts))
        np.testing.assert_allclose(vectors, expected[offset : offset + len(texts)], atol=1e-4)
        offset += len(texts)

    labels = {"model": "minilm", "version": "1"}
    batches = after.value(BATCH_SIZE + "_count", **labels) - before.value(
        BATCH_SIZE + "_count", **labels
    )
    rows = after.value(BATCH_SIZE + "_sum", **labels) - before.value(BATCH_SIZE + "_sum", **labels)
    assert rows == sum(sizes)
    assert batches < len(requests)  # some requests shared a batch
    assert rows / batches > max(sizes)  # mean rows per batch above the largest single request


def test_a_lone_request_on_an_idle_model_is_not_held_back(
    minilm_registry: Registry, minilm_version: Any
) -> None:
    with _minilm_server(minilm_registry, max_batch_delay_ms=2000) as server, client(server) as http:
        started = time.monotonic()
        response = http.post("/v2/models/minilm/infer", json=_v2_text(_texts(1)))
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < 1.5  # the 2 s batch window was not waited out


def test_deadlines_of_held_requests(minilm_registry: Registry, minilm_version: Any) -> None:
    """With a 2 s batch window after an 8-row batch, a 1-row request waits for company; its
    deadline (V2 parameter, header, V1 with the header, tritonclient's timeout) passes first."""
    with _minilm_server(minilm_registry, max_batch_delay_ms=2000) as server, client(server) as http:
        before = scrape(http)
        warm = http.post("/v2/models/minilm/infer", json=_v2_text(_texts(8)))
        assert warm.status_code == 200, warm.text

        by_parameter = http.post(
            "/v2/models/minilm/infer", json=_v2_text(_texts(1), parameters={"timeout": 50_000})
        )
        assert by_parameter.status_code == 504
        assert by_parameter.json() == {"error": "the deadline passed before minilm:1 answered"}

        by_header = http.post(
            "/v2/models/minilm/infer",
            json=_v2_text(_texts(1, 1)),
            headers={"X-Request-Timeout-Ms": "50"},
        )
        assert by_header.status_code == 504
        assert by_header.json() == {"error": "the deadline passed before minilm:1 answered"}

        v1 = http.post(
            "/v1/models/minilm:predict",
            json={"instances": _texts(1, 2)},
            headers={"X-Request-Timeout-Ms": "50"},
        )
        assert v1.status_code == 504
        assert v1.json() == {"error": "the deadline passed before minilm:1 answered"}

        tc = triton.InferenceServerClient(triton_url(server))
        try:
            text = triton.InferInput("text", [1], "BYTES")
            text.set_data_from_numpy(np.array(_texts(1, 3), dtype=object))
            with pytest.raises(InferenceServerException) as info:
                tc.infer("minilm", [text], timeout=50_000)
        finally:
            tc.close()
        assert info.value.status() == "504"
        assert info.value.message() == "the deadline passed before minilm:1 answered"

        after = scrape(http)
    rejected = "shipyard_rejected_requests_total"
    labels = {"model": "minilm", "version": "1", "reason": "deadline"}
    assert after.value(rejected, **labels) - before.value(rejected, **labels) == 4
    timeouts = "shipyard_requests_total"
    status = {"model": "minilm", "version": "1", "status": "504"}
    assert after.value(timeouts, **status) - before.value(timeouts, **status) == 4


def test_a_generous_deadline_is_met(batching_server: Server) -> None:
    with client(batching_server) as http:
        response = http.post(
            "/v2/models/minilm/infer",
            json=_v2_text(_texts(2), parameters={"timeout": 60_000_000}),
            headers={"X-Request-Timeout-Ms": "60000"},
        )
    assert response.status_code == 200, response.text
