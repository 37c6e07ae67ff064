"""A real S3 API over HTTP for the tests: moto's server on a free loopback port.

One server per test session (``S3Server``); each test that wants a bucket gets a new one, so
tests never see each other's objects. Clients — ours, boto3 in the test, and `shipyard serve`
processes — reach it through the standard ``AWS_ENDPOINT_URL`` and AWS credential variables.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx2

REGION = "us-east-1"
_buckets = itertools.count(1)


class S3Server:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> None:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.stop()

    def environment(self) -> dict[str, str]:
        """What a client needs to reach this server (test credentials; moto accepts any)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        import boto3

        env = self.environment()
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )

    def new_bucket(self) -> str:
        name = f"shipyard-test-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name

    def require_credentials(self, required: bool) -> None:
        """Make the server check access keys against its IAM users (none: every key is
        refused), or accept any again."""
        count = "0" if required else "inf"
        httpx2.post(f"{self.endpoint}/moto-api/reset-auth", content=count).raise_for_status()
