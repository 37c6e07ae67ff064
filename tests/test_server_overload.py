"""Overload: a bounded queue answers 503 with Retry-After at once, memory stays bounded, and
the server serves normally afterwards. The server is a ``shipyard serve`` process so that
its memory is its own."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from server_helpers import HANG_GUARD_S, ServeProcess, client, scrape

LOAD_SECONDS = 3.0
CLIENTS = 48


def _v2_text(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


async def _storm(url: str) -> tuple[Counter[int], list[str], int]:
    """CLIENTS closed-loop clients, each 4 rows per request, for LOAD_SECONDS."""
    statuses: Counter[int] = Counter()
    retry_after: list[str] = []
    malformed = 0
    stop_at = time.monotonic() + LOAD_SECONDS
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    timeout = aiohttp.ClientTimeout(total=HANG_GUARD_S)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

        async def worker(k: int) -> None:
            nonlocal malformed
            i = 0
            while time.monotonic() < stop_at:
                texts = [f"client {k} request {i} sentence {j} about load" for j in range(4)]
                async with session.post("/v2/models/minilm/infer", json=_v2_text(texts)) as r:
                    statuses[r.status] += 1
                    body = await r.read()
                    if r.status == 503:
                        retry_after.append(r.headers.get("Retry-After", ""))
                        if "error" not in json.loads(body):
                            malformed += 1
                i += 1

        await asyncio.gather(*(worker(k) for k in range(CLIENTS)))
    return statuses, retry_after, malformed


def test_overload_is_refused_fast_and_bounded(
    minilm_registry: Any, minilm_version: Any, tmp_path: Path
) -> None:
    batching = {"max_batch_size": 8, "max_queue_rows": 8, "max_batch_delay_ms": 5}
    server = ServeProcess(
        minilm_registry.settings.home,
        tmp_path,
        "--model",
        "minilm",
        "--no-access-log",
        env={"SHIPYARD_BATCHING": json.dumps(batching)},
    )
    try:
        server.wait_ready()
        process = psutil.Process(server.pid)
        with client(server.url) as http:
            warm = http.post("/v2/models/minilm/infer", json=_v2_text(["warm", "up", "a", "b"]))
            assert warm.status_code == 200, warm.text
            rss_before = process.memory_info().rss

            statuses, retry_after, malformed = asyncio.run(_storm(server.url))
            rss_after = process.memory_info().rss

            assert set(statuses) <= {200, 503}, statuses
            assert statuses[503] > 0, statuses
            assert statuses[200] > 0, statuses
            assert len(retry_after) == statuses[503]
            assert all(value.isdigit() and int(value) >= 1 for value in retry_after)
            assert malformed == 0
            assert rss_after < rss_before + 300 * 1024 * 1024, (rss_before, rss_after)

            after = http.post("/v2/models/minilm/infer", json=_v2_text(["calm again"]))
            assert after.status_code == 200, after.text
            assert http.get("/v2/health/ready").status_code == 200

            page = scrape(http)
            rejected = page.value(
                "shipyard_rejected_requests_total", model="minilm", version="1", reason="overload"
            )
            assert rejected == statuses[503]
            assert page.value("shipyard_queue_depth_rows", model="minilm") == 0
            assert (
                page.value("shipyard_requests_total", model="minilm", version="1", status="503")
                == statuses[503]
            )
    finally:
        server.stop()
