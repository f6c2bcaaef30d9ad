"""Request logs: one request_finished per request, never a key or a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from app import logs
from tests.api.conftest import Api


class Stderr:
    """What the service wrote to stderr so far (pytest's capsys underneath)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text = ""

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


@pytest.fixture
def log_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[Stderr]:
    """Everything logged, by structlog and through the root handler."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure("json", "debug")
    capsys.readouterr()
    yield Stderr(capsys)
    root.handlers[:], level = saved
    root.setLevel(level)


# The test's own HTTP client logs its requests; only the service's lines count.
CLIENT_LOGGERS = ("httpx", "httpcore")


def events(buffer: Stderr) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line]
    return [e for e in lines if not str(e.get("logger")).startswith(CLIENT_LOGGERS)]


def service_text(buffer: Stderr) -> str:
    return "\n".join(json.dumps(e) for e in events(buffer))


async def test_subscribe_logs_no_key_and_no_secret(api: Api, log_lines: Stderr) -> None:
    response = await api.subscribe(
        "http://127.0.0.1:9/hooks/zap?token=hook-token", {"streamId": 1}
    )
    secret = response.json()["secret"]
    await api.client.get("/v2/webhooks", headers=api.auth())
    await api.client.get("/v2/webhooks", headers=api.auth("ctgo_" + "D" * 43))

    text = service_text(log_lines)
    assert "request_finished" in text
    assert api.key not in text
    assert api.key[5:] not in text
    assert secret not in text
    assert "whsec_" not in text
    assert "hook-token" not in text
    assert "ctgo_DDDD" not in text
    finished = [e for e in events(log_lines) if e["event"] == "request_finished"]
    assert [(e["method"], e["status"]) for e in finished] == [
        ("POST", 201),
        ("GET", 200),
        ("GET", 401),
    ]
    assert finished[0]["workspace_id"] == api.workspace_id
    assert finished[2]["workspace_id"] is None


async def test_request_finished_has_fixed_fields_and_covers_unknown_routes(
    api: Api, log_lines: Stderr
) -> None:
    await api.client.get("/no/such/route?secret=x")

    (event,) = [e for e in events(log_lines) if e["event"] == "request_finished"]
    assert event["path"] == "/no/such/route"
    assert event["status"] == 404
    assert {"method", "path", "status", "duration_ms", "workspace_id"} <= set(event)
    assert "secret=x" not in service_text(log_lines)


async def test_subscription_changes_are_told_on_their_request_line(
    api: Api, log_lines: Stderr
) -> None:
    url = "http://127.0.0.1:9/hooks/told"
    created = (await api.subscribe(url, {"streamId": 1})).json()["id"]
    await api.subscribe(url, {"streamId": 2})
    for _ in range(2):
        await api.client.post(
            "/v2/webhooks/unsubscribe", json={"id": created}, headers=api.auth()
        )

    lines = events(log_lines)
    told = [
        (e["path"], e["subscription_id"], e["outcome"])
        for e in lines
        if e["event"] == "request_finished"
    ]
    assert told == [
        ("/v2/webhooks/subscribe", created, "created"),
        ("/v2/webhooks/subscribe", created, "updated"),
        ("/v2/webhooks/unsubscribe", created, "unsubscribed"),
        ("/v2/webhooks/unsubscribe", created, "already_unsubscribed"),
    ]
    assert {e["event"] for e in lines} == {"request_finished"}
    assert lines[0]["target_host"] == "127.0.0.1"
