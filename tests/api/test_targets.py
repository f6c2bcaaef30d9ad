"""targetUrl rules at subscribe: every refused kind is a 400 naming the reason."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app import targets
from app.database.connection import Connection
from app.settings import Settings
from tests.api.conftest import Api, count, running_api

PUBLIC = "93.184.215.14"

REFUSED = [
    # loopback, in every spelling an IPv4 parser accepts
    ("https://127.0.0.1/hook", "address_not_allowed"),
    ("https://2130706433/hook", "address_not_allowed"),
    ("https://0177.0.0.1/hook", "address_not_allowed"),
    ("https://017700000001/hook", "address_not_allowed"),
    ("https://0x7f.0.0.1/hook", "address_not_allowed"),
    ("https://0x7f000001/hook", "address_not_allowed"),
    ("https://0x7f.1/hook", "address_not_allowed"),
    ("https://127.1/hook", "address_not_allowed"),
    ("https://[::1]/hook", "address_not_allowed"),
    ("https://[::ffff:127.0.0.1]/hook", "address_not_allowed"),
    ("https://[::ffff:7f00:1]/hook", "address_not_allowed"),
    ("https://localhost/hook", "address_not_allowed"),
    ("https://LOCALHOST./hook", "address_not_allowed"),
    ("https://api.localhost/hook", "address_not_allowed"),
    # unspecified
    ("https://0.0.0.0/hook", "address_not_allowed"),
    ("https://0/hook", "address_not_allowed"),
    ("https://[::]/hook", "address_not_allowed"),
    # link-local and cloud metadata
    ("https://169.254.1.1/hook", "address_not_allowed"),
    ("https://[fe80::1]/hook", "address_not_allowed"),
    ("https://169.254.169.254/latest/meta-data/", "address_not_allowed"),
    ("https://[::ffff:169.254.169.254]/", "address_not_allowed"),
    ("https://100.100.100.200/", "address_not_allowed"),
    ("https://[fd00:ec2::254]/", "address_not_allowed"),
    ("https://metadata.google.internal/computeMetadata/v1/", "metadata_host"),
    ("https://metadata.google.internal./", "metadata_host"),
    ("https://metadata/", "metadata_host"),
    ("https://instance-data/", "metadata_host"),
    # private, CGNAT, unique-local, multicast, reserved, documentation
    ("https://10.0.0.1/hook", "address_not_allowed"),
    ("https://172.16.5.4/hook", "address_not_allowed"),
    ("https://192.168.1.1/hook", "address_not_allowed"),
    ("https://100.64.0.1/hook", "address_not_allowed"),
    ("https://[fd12:3456::1]/hook", "address_not_allowed"),
    ("https://224.0.0.1/hook", "address_not_allowed"),
    ("https://[ff02::1]/hook", "address_not_allowed"),
    ("https://255.255.255.255/hook", "address_not_allowed"),
    ("https://192.0.2.1/hook", "address_not_allowed"),
    ("https://[64:ff9b::a00:1]/hook", "address_not_allowed"),
    ("https://[2002:a00:1::]/hook", "address_not_allowed"),
    # shape
    (f"http://{PUBLIC}/hook", "scheme_not_allowed"),
    (f"ftp://{PUBLIC}/hook", "scheme_not_allowed"),
    ("/relative/hook", "scheme_not_allowed"),
    ("https://", "invalid_url"),
    (f"https://user:pass@{PUBLIC}/hook", "credentials_in_url"),
    (f"https://user@{PUBLIC}/hook", "credentials_in_url"),
    (f"https://{PUBLIC}/hook#part", "fragment_in_url"),
    (f"https://{PUBLIC}/hook#", "fragment_in_url"),
    (f"https://{PUBLIC}:0/hook", "invalid_url"),
    (f"https://{PUBLIC}:99999/hook", "invalid_url"),
    (f"https://{PUBLIC}/" + "a" * 2048, "url_too_long"),
    (f" https://{PUBLIC}/hook", "invalid_url"),
    (f"https://{PUBLIC}/ho ok", "invalid_url"),
    (f"https://127.0.0.1\t.{PUBLIC}.nip.io/hook", "invalid_url"),
    (f"https://{PUBLIC}/hook\n", "invalid_url"),
    # a zone id, and a port urlsplit and httpx would read differently
    (f"https://[::ffff:{PUBLIC}%25eth0]/hook", "invalid_url"),
    (f"https://[::ffff:{PUBLIC}]8443/hook", "invalid_url"),
    (f"https://[::ffff:{PUBLIC}]0/hook", "invalid_url"),
    ("https://[2600::1]-0/hook", "invalid_url"),
    # outside the ipaddress module's tables, or a cloud platform's endpoints
    ("https://[fec0::1]/hook", "address_not_allowed"),
    ("https://[3fff::1]/hook", "address_not_allowed"),
    ("https://168.63.129.16/hook", "address_not_allowed"),
    ("https://169.254.170.23/hook", "address_not_allowed"),
    # a private address behind dots IDNA turns into "."
    ("https://10\uff0e0\uff0e0\uff0e5/hook", "address_not_allowed"),
    ("https://169\u3002254\u3002169\u3002254/latest", "address_not_allowed"),
    # a name only the older IDNA rules read (as "localhost"); the delivery
    # client refuses it, so subscribing must too
    (
        "https://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/hook",
        "invalid_url",
    ),
]


@pytest.fixture
def strict(settings: Settings) -> Settings:
    """Production rules: https only, no network exempt."""
    return replace(settings, allow_http_targets=False, allowed_target_networks=())


@pytest.fixture
async def strict_api(
    strict: Settings, workspace: tuple[int, str]
) -> AsyncIterator[Api]:
    async with (
        running_api(strict) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield Api(client=client, workspace_id=workspace[0], key=workspace[1])


async def test_every_refused_url_kind_is_400_with_its_reason_and_nothing_stored(
    strict_api: Api, conn: Connection
) -> None:
    outcomes = []
    for url, _code in REFUSED:
        response = await strict_api.subscribe(url)
        fields = response.json()["error"]["fields"]
        outcomes.append(
            (url, response.status_code, fields[0]["path"], fields[0]["code"])
        )

    expected = [(url, 400, "$.targetUrl", code) for url, code in REFUSED]
    assert outcomes == expected
    assert len(REFUSED) >= 30
    assert await count(conn, "SELECT count(*) FROM subscriptions") == 0


async def test_a_public_https_address_is_accepted(strict_api: Api) -> None:
    response = await strict_api.subscribe(f"https://{PUBLIC}/hooks/catch?zap=1")

    assert response.status_code == 201


async def test_a_name_resolving_to_a_private_address_is_refused(
    strict_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def resolve(host: str, port: int) -> list[targets.IPAddress]:
        return [ipaddress.ip_address(PUBLIC), ipaddress.ip_address("10.1.2.3")]

    monkeypatch.setattr(targets, "resolve", resolve)

    response = await strict_api.subscribe("https://hooks.example.com/x")

    field = response.json()["error"]["fields"][0]
    assert response.status_code == 400
    assert field["code"] == "address_not_allowed"
    assert "10.1.2.3" in field["message"]


async def test_a_name_that_does_not_resolve_is_refused(
    strict_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def resolve(host: str, port: int) -> list[targets.IPAddress]:
        return []

    monkeypatch.setattr(targets, "resolve", resolve)

    response = await strict_api.subscribe("https://no-such-host.example.com/x")

    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["code"] == "unresolvable_host"


async def test_a_name_resolving_to_public_addresses_is_accepted(
    strict_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def resolve(host: str, port: int) -> list[targets.IPAddress]:
        return [ipaddress.ip_address(PUBLIC)]

    monkeypatch.setattr(targets, "resolve", resolve)

    response = await strict_api.subscribe("https://hooks.example.com/x")

    assert response.status_code == 201


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"])
async def test_an_allowed_address_must_be_a_dotted_quad(api: Api, host: str) -> None:
    response = await api.subscribe(f"http://{host}:8080/hook")

    assert response.status_code == 400
    field = response.json()["error"]["fields"][0]
    assert field["path"] == "$.targetUrl"
    assert field["code"] == "invalid_url"
    assert "write it as 127.0.0.1" in field["message"]


async def test_allowed_networks_exempt_loopback_but_never_metadata(api: Api) -> None:
    loopback = await api.subscribe("http://127.0.0.1:8080/hook")
    metadata = await api.subscribe("http://169.254.169.254/latest/")

    assert loopback.status_code == 201
    assert metadata.status_code == 400


def test_a_host_that_passed_once_is_still_judged_on_the_rest_of_each_url(
    settings: Settings,
) -> None:
    # Host verdicts are remembered; what follows the host is checked anew.
    targets.check_url("http://127.0.0.1:8080/first", settings)

    refused = [
        "http://127.0.0.1:8080/hook\x01",
        "http://127.0.0.1:8080/hook#part",
        "http://user@127.0.0.1:8080/hook",
        "http://127.0.0.1:8080/" + "a" * 2048,
    ]
    codes = []
    for url in refused:
        with pytest.raises(targets.TargetRefused) as caught:
            targets.check_url(url, settings)
        codes.append(caught.value.code)

    assert codes == [
        "invalid_url",
        "fragment_in_url",
        "credentials_in_url",
        "url_too_long",
    ]


def test_a_host_remembered_under_one_allow_list_is_judged_again_under_another(
    settings: Settings, strict: Settings
) -> None:
    targets.check_url("http://127.0.0.1:8080/hook", settings)

    with pytest.raises(targets.TargetRefused) as caught:
        targets.check_url("https://127.0.0.1:8080/hook", strict)

    assert caught.value.code == "address_not_allowed"


@pytest.mark.parametrize("host", ["[64:ff9b::7f00:1]", "[2002:7f00:1::1]"])
async def test_an_exempt_network_is_not_reached_through_nat64_or_6to4(
    api: Api, host: str
) -> None:
    response = await api.subscribe(f"http://{host}:8080/hook")

    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["code"] == "address_not_allowed"
