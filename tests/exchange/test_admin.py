"""Admin routes: who may call them (loopback or token), chaos injection end to end, book checksums."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from support import with_remote

from reference_exchange.admin import ADMISSION, admin_allowed, is_loopback, presented_tokens, token_matches
from reference_exchange.config import Settings
from reference_exchange.engine import MatchingEngine
from reference_exchange.journal import Journal
from reference_exchange.server import create_app
from reference_exchange.service import ExchangeService

SEED_CHAOS = {"type": "latency_injection", "duration": 60, "parameters": {"latency_ms": 50}}
ORDER = {"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": "60000", "quantity": "0.5"}
REMOTE = "203.0.113.7"  # TEST-NET-3: never loopback


def settings(**changes) -> Settings:
    return dataclasses.replace(Settings(), **changes)


@pytest.fixture
async def journal():
    journal = Journal.open(":memory:")
    await journal.start()
    yield journal
    journal.clear_chaos()
    await journal.close()


@pytest.fixture
async def client(aiohttp_client, journal):
    return await aiohttp_client(create_app(settings(), journal))


async def error_of(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return (await response.json())["error"]


# --- the access decision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "remote", ["127.0.0.1", "127.5.6.7", "127.255.255.254", "::1", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"]
)
def test_loopback_addresses(remote):
    assert is_loopback(remote)
    assert admin_allowed(remote, {}, None)


@pytest.mark.parametrize(
    "remote",
    [
        REMOTE,
        "10.0.0.1",
        "192.168.1.1",
        "::ffff:10.0.0.1",
        "fe80::1%eth0",
        "2001:db8::1",
        "",
        None,
        "localhost",
    ],
)
def test_other_addresses_need_the_token(remote):
    assert not is_loopback(remote)
    assert not admin_allowed(remote, {}, "s3cret")
    assert not admin_allowed(remote, {"Authorization": "Bearer s3cret"}, None)  # no token configured
    assert admin_allowed(remote, {"Authorization": "Bearer s3cret"}, "s3cret")
    assert admin_allowed(remote, {"X-Admin-Token": "s3cret"}, "s3cret")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer s3cre"},
        {"Authorization": "Bearer s3cret2"},
        {"Authorization": "Basic s3cret"},
        {"Authorization": "s3cret"},
        {"Authorization": "Bearer "},
        {"X-Admin-Token": ""},
        {"X-Admin-Token": "S3CRET"},
        {"X-Admin-Token": "s3crét"},
        {"X-Admin-Token": "\udcff\udcfe"},  # undecodable bytes as aiohttp hands them over
    ],
)
def test_wrong_or_missing_tokens_are_refused(headers):
    assert not admin_allowed(REMOTE, headers, "s3cret")


def test_token_parsing_and_comparison():
    assert presented_tokens({"Authorization": "bearer  abc "}) == ["abc"]
    assert presented_tokens({"Authorization": "Basic abc", "X-Admin-Token": "xyz"}) == ["xyz"]
    assert presented_tokens({"Authorization": "Bearer a", "X-Admin-Token": "b"}) == ["a", "b"]
    assert presented_tokens({}) == []
    # Either header may carry the token, whatever the other one holds.
    assert admin_allowed(REMOTE, {"Authorization": "Bearer wrong", "X-Admin-Token": "s3cret"}, "s3cret")
    assert admin_allowed(REMOTE, {"Authorization": "Bearer s3cret", "X-Admin-Token": "wrong"}, "s3cret")
    assert token_matches("ünïcode", "ünïcode") and not token_matches("ünïcode", "unicode")
    assert not token_matches(None, "x") and not token_matches("x", None) and not token_matches("", "")


# --- access through HTTP -----------------------------------------------------------------------------


async def test_remote_client_needs_the_token_over_http(aiohttp_client, journal):
    app = with_remote(create_app(settings(admin_token="s3cret"), journal), REMOTE)
    client = await aiohttp_client(app)

    for method, path in [
        ("GET", "/demo/chaos-test"),
        ("DELETE", "/demo/chaos-test"),
        ("GET", "/api/books/checksum"),
        ("GET", "/demo/admission"),
        ("PUT", "/demo/admission"),
    ]:
        error = await error_of(await client.request(method, path), 403)
        assert error["code"] == "forbidden" and "ADMIN_TOKEN" in error["message"]
    refused = await client.post("/demo/chaos-test", json=SEED_CHAOS, headers={"Authorization": "Bearer nope"})
    assert (await error_of(refused, 403))["code"] == "forbidden"
    assert journal.chaos_status() is None  # nothing happened

    started = await client.post(
        "/demo/chaos-test", json=SEED_CHAOS, headers={"Authorization": "Bearer s3cret"}
    )
    assert started.status == 200, await started.text()
    shown = await client.get("/demo/chaos-test", headers={"X-Admin-Token": "s3cret"})
    assert (await shown.json())["active"]["latency_ms"] == 50
    # Trading routes are public: only /demo/* and the checksum route are guarded.
    assert (await client.get("/api/symbols")).status == 200


async def test_remote_client_without_a_configured_token_is_refused(aiohttp_client, journal):
    client = await aiohttp_client(with_remote(create_app(settings(), journal), REMOTE))
    response = await client.get("/demo/chaos-test", headers={"Authorization": "Bearer anything"})
    assert (await error_of(response, 403))["code"] == "forbidden"


async def test_loopback_client_needs_no_token(client):
    assert (await client.get("/demo/chaos-test")).status == 200
    assert (await client.get("/api/books/checksum")).status == 200


# --- chaos ------------------------------------------------------------------------------------------


async def test_seed_chaos_body_starts_shows_and_ends_an_injection(client, journal):
    assert await (await client.get("/demo/chaos-test")).json() == {"active": None}

    started = await client.post("/demo/chaos-test", json=SEED_CHAOS)
    assert started.status == 200
    active = (await started.json())["active"]
    assert active["type"] == "latency_injection" and active["latency_ms"] == 50 and active["duration_s"] == 60
    assert 59 < active["remaining_s"] <= 60
    assert active["started_at"].endswith("Z") and active["ends_at"] > active["started_at"]
    assert journal.chaos_status()["latency_ms"] == 50

    before = time.perf_counter()
    assert (await client.post("/api/orders", json=ORDER)).status == 201
    assert time.perf_counter() - before >= 0.045  # the commit slept ~50 ms before acknowledging

    ended = await client.delete("/demo/chaos-test")
    body = await ended.json()
    assert body["active"] is None and body["ended"]["latency_ms"] == 50
    assert journal.chaos_status() is None
    assert await (await client.get("/demo/chaos-test")).json() == {"active": None}
    again = await client.delete("/demo/chaos-test")  # ending nothing is fine
    assert await again.json() == {"active": None, "ended": None}


async def test_injection_restores_itself_and_accepts_duration_strings(client, journal):
    body = {"type": "latency_injection", "duration": "300ms", "parameters": {"latency_ms": 80}}
    started = await client.post("/demo/chaos-test", json=body)
    assert (await started.json())["active"]["duration_s"] == 0.3
    slow_started = time.perf_counter()
    assert (await client.post("/api/orders", json=ORDER)).status == 201
    assert time.perf_counter() - slow_started >= 0.075
    await asyncio.sleep(0.35)
    assert await (await client.get("/demo/chaos-test")).json() == {"active": None}
    fast_started = time.perf_counter()
    assert (await client.post("/api/orders", json=ORDER)).status == 201
    assert time.perf_counter() - fast_started < 0.075


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [(60, 60), (0.5, 0.5), ("60s", 60), ("1m", 60), ("1h", 3600), ("90", 90), ("2M", 120)],
)
async def test_duration_forms(client, duration, seconds):
    body = {**SEED_CHAOS, "duration": duration}
    response = await client.post("/demo/chaos-test", json=body)
    assert response.status == 200, await response.text()
    assert (await response.json())["active"]["duration_s"] == seconds


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SEED_CHAOS, "type": "cpu_spike"}, "body.type"),
        ({**SEED_CHAOS, "type": None}, "body.type"),
        ({**SEED_CHAOS, "duration": 0}, "body.duration"),
        ({**SEED_CHAOS, "duration": -5}, "body.duration"),
        ({**SEED_CHAOS, "duration": 3601}, "body.duration"),
        ({**SEED_CHAOS, "duration": 1e30}, "body.duration"),
        ({**SEED_CHAOS, "duration": "2h"}, "body.duration"),
        ({**SEED_CHAOS, "duration": "61m"}, "body.duration"),
        ({**SEED_CHAOS, "duration": "0s"}, "body.duration"),
        ({**SEED_CHAOS, "duration": 0.0005}, "body.duration"),
        ({**SEED_CHAOS, "duration": "0.5ms"}, "body.duration"),
        ({**SEED_CHAOS, "duration": 5e-324}, "body.duration"),
        ({**SEED_CHAOS, "duration": "soon"}, "body.duration"),
        ({**SEED_CHAOS, "duration": "-1s"}, "body.duration"),
        ({**SEED_CHAOS, "duration": True}, "body.duration"),
        ({**SEED_CHAOS, "parameters": {"latency_ms": 10001}}, "body.parameters.latency_ms"),
        ({**SEED_CHAOS, "parameters": {"latency_ms": -1}}, "body.parameters.latency_ms"),
        ({**SEED_CHAOS, "parameters": {"latency_ms": "50"}}, "body.parameters.latency_ms"),
        ({**SEED_CHAOS, "parameters": {}}, "latency_ms"),
        ({**SEED_CHAOS, "parameters": {"latency_ms": 5, "jitter": 1}}, "jitter"),
        ({**SEED_CHAOS, "parameters": [50]}, "body.parameters"),
        ({"type": "latency_injection", "parameters": {"latency_ms": 50}}, "duration"),
        ({**SEED_CHAOS, "extra": 1}, "extra"),
        ([SEED_CHAOS], "body"),
    ],
)
async def test_bad_chaos_requests_get_400_naming_the_field(client, journal, body, field):
    error = await error_of(await client.post("/demo/chaos-test", json=body), 400)
    assert error["code"] == "invalid_request" and field in error["message"], error
    assert journal.chaos_status() is None


async def test_chaos_without_a_journal_is_a_409(aiohttp_client):
    client = await aiohttp_client(create_app(settings(journal_path=None)))
    error = await error_of(await client.post("/demo/chaos-test", json=SEED_CHAOS), 409)
    assert error["code"] == "journal_disabled" and "journal" in error["message"]
    assert await (await client.get("/demo/chaos-test")).json() == {"active": None}
    assert (await client.delete("/demo/chaos-test")).status == 200


async def test_unparsable_chaos_body(client):
    assert (await error_of(await client.post("/demo/chaos-test", data=b"{"), 400))["code"] == "invalid_json"
    assert (await error_of(await client.post("/demo/chaos-test", data=b""), 400))["code"] == "invalid_json"


# --- the admission controller ------------------------------------------------------------------------


async def test_admission_shows_its_settings_and_is_retuned_while_running(client):
    shown = await client.get("/demo/admission")
    assert shown.status == 200
    state = await shown.json()
    defaults = Settings()
    assert state == {
        "share": defaults.admission_share,
        "target_s": defaults.admission_target,
        "interval_s": defaults.admission_interval,
        "standing": False,
        "refused": 0,
        "last_turn_s": 0.0,
        "retry_after_s": 1,
    }

    retuned = await client.put("/demo/admission", json={"share": 0.6, "target_s": 0.005})
    assert retuned.status == 200
    assert (await retuned.json())["share"] == 0.6
    controller = client.app[ADMISSION]  # the very object the lean path decides with
    assert (controller.share, controller.target_s, controller.interval_s) == (
        0.6,
        0.005,
        defaults.admission_interval,
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"share": 1}, "share"),
        ({"share": 0}, "share"),
        ({"share": "0.5"}, "share"),
        ({"share": True}, "share"),
        ({"target_s": 0}, "target_s"),
        ({"interval_s": 7200}, "interval_s"),
        ({"share": 0.5, "speed": 2}, "speed"),
        ({}, "body"),
        ([0.5], "body"),
    ],
)
async def test_admission_refuses_bad_settings_and_keeps_its_own(client, body, named):
    controller = client.app[ADMISSION]
    before = (controller.share, controller.target_s, controller.interval_s)
    error = await error_of(await client.put("/demo/admission", json=body), 400)
    assert named in error["message"]
    assert (controller.share, controller.target_s, controller.interval_s) == before


async def test_admission_is_the_lean_paths(aiohttp_client, journal):
    client = await aiohttp_client(create_app(settings(lean_http=False), journal))
    for method in ("GET", "PUT"):
        response = await client.request(method, "/demo/admission", json={"share": 0.5})
        assert (await error_of(response, 409))["code"] == "admission_off"


# --- checksums ----------------------------------------------------------------------------------------


async def test_book_checksums_match_the_engine(client, journal):
    for price in ("59990", "59995", "60000"):
        assert (await client.post("/api/orders", json={**ORDER, "price": price})).status == 201
    assert (await client.post("/api/orders", json={**ORDER, "side": "sell", "price": "61000"})).status == 201
    body = await (await client.get("/api/books/checksum")).json()
    assert body["resting_orders"] == 4 and body["journal_sequence"] == 4

    replayed = MatchingEngine(body["checksums"])
    ExchangeService(replayed).replay(journal.replay())
    assert body["checksums"] == {symbol: book.checksum() for symbol, book in replayed.books.items()}
    assert body["checksums"]["BTCUSD"] != 0 and body["checksums"]["ETHUSD"] == 0


async def test_admission_state_matches_its_schema_with_long_configured_settings(aiohttp_client, journal):
    from reference_exchange.schemas import ADMISSION_STATE, compile_schema

    app = create_app(settings(admission_target=7200.0, admission_interval=9000.0), journal)
    state = await (await (await aiohttp_client(app)).get("/demo/admission")).json()
    assert state["target_s"] == 7200.0
    compile_schema(ADMISSION_STATE)(state)  # raises when the document and the answer disagree
