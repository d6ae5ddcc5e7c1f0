from __future__ import annotations

import re

import pytest

from backend.core.errors import AppError
from backend.security.devices import DeviceStore
from backend.security.pairing import COLLECT_WITHIN_S, MAX_WAITING, Pairing
from backend.security.ratelimit import FailureLimiter
from backend.storage.db import Database
from tests.clocks import FakeClock as Clock

TTL = 120.0
TABLET = "192.168.1.30"
OTHER = "192.168.1.31"


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def devices(db: Database, clock: Clock) -> DeviceStore:
    return DeviceStore(db, 30 * 24 * 3600, clock)


@pytest.fixture
def pairing(devices: DeviceStore, clock: Clock) -> Pairing:
    pairing = Pairing(devices, FailureLimiter(limit=10, window_s=60, clock=clock), ttl_s=TTL, clock=clock)
    pairing.start()
    return pairing


def refused(pairing: Pairing, code: str, address: str = TABLET) -> AppError:
    with pytest.raises(AppError) as caught:
        pairing.ask(code, "Tablet", address, "UA")
    return caught.value


def test_code_is_single_use(pairing: Pairing) -> None:
    code, remaining = pairing.code()
    assert len(code) >= 22 and remaining == TTL
    assert pairing.code()[0] == code  # the same code until it is used
    request = pairing.ask(code, "Tablet", TABLET, "Chrome on Android")
    assert request.state == "waiting" and request.name == "Tablet" and request.address == TABLET
    assert request.user_agent == "Chrome on Android"
    error = refused(pairing, code, OTHER)
    assert (error.status, error.code) == (403, "invalid_code")
    fresh, _ = pairing.code()
    assert fresh != code
    assert pairing.ask(fresh, "Laptop", OTHER, "UA").id != request.id


def test_wrong_code_leaves_the_right_one_valid(pairing: Pairing) -> None:
    code, _ = pairing.code()
    for wrong in ("", "0000", code[:-1], code + "x", code.swapcase(), " " + code):
        assert refused(pairing, wrong).code == "invalid_code"
    assert pairing.ask(code, "Tablet", TABLET, "UA").state == "waiting"


def test_no_code_before_one_is_shown(pairing: Pairing) -> None:
    assert refused(pairing, "").code == "invalid_code"


def test_code_expires(pairing: Pairing, clock: Clock) -> None:
    code, _ = pairing.code()
    clock.now += TTL - 1
    assert pairing.code() == (code, 1.0)
    clock.now += 1
    assert refused(pairing, code).code == "invalid_code"
    fresh, remaining = pairing.code()
    assert fresh != code and remaining == TTL
    clock.now += TTL - 0.01
    assert pairing.ask(fresh, "Tablet", TABLET, "UA").state == "waiting"


def test_ttl_is_capped(devices: DeviceStore, clock: Clock) -> None:
    limiter = FailureLimiter(clock=clock)
    long = Pairing(devices, limiter, ttl_s=3600, clock=clock)
    assert long.ttl_s == 300
    long.start()
    _, remaining = long.code()
    assert remaining == 300
    assert Pairing(devices, limiter, ttl_s=30, clock=clock).ttl_s == 30
    assert Pairing(devices, limiter, clock=clock).ttl_s == 300


def test_wrong_codes_are_limited_per_source(pairing: Pairing, clock: Clock) -> None:
    code, _ = pairing.code()
    for _ in range(10):
        assert refused(pairing, "guess").code == "invalid_code"
    error = refused(pairing, code)  # even the right code
    assert (error.status, error.code) == (429, "too_many_attempts")
    assert 0 < error.retry_after <= 60
    assert pairing.code()[0] == code  # the refused attempt did not use the code up
    # another tablet on the same network is not held back
    request = pairing.ask(code, "Tablet", OTHER, "UA")
    assert request.address == OTHER
    # the window passes
    clock.now += 61
    fresh, _ = pairing.code()
    assert pairing.ask(fresh, "Tablet", TABLET, "UA").state == "waiting"


def test_not_sharing(pairing: Pairing) -> None:
    code, _ = pairing.code()
    request = pairing.ask(code, "Tablet", TABLET, "UA")
    second_code, _ = pairing.code()
    pairing.stop()
    assert pairing.waiting() == [] and pairing.status(request.id) is None
    with pytest.raises(AppError) as caught:
        pairing.code()
    assert (caught.value.status, caught.value.code) == (409, "not_sharing")
    error = refused(pairing, second_code)
    assert (error.status, error.code) == (403, "not_sharing")
    with pytest.raises(AppError) as caught:
        pairing.approve(request.id)
    assert caught.value.code == "unknown_request"
    pairing.start()
    assert refused(pairing, second_code).code == "invalid_code"  # the old code died with the stop
    assert pairing.waiting() == []


async def test_stop_drops_an_approval_not_yet_collected(pairing: Pairing, devices: DeviceStore) -> None:
    request = pairing.ask(pairing.code()[0], "Tablet", TABLET, "UA")
    pairing.approve(request.id)
    pairing.stop()
    assert await pairing.collect(request.id) is None
    assert devices.list() == []


async def test_approve_then_collect_once(pairing: Pairing, devices: DeviceStore) -> None:
    request = pairing.ask(pairing.code()[0], "Pixel\nTablet", TABLET, "Chrome on Android")
    assert request.name == "Pixel Tablet"
    assert await pairing.collect(request.id) is None  # not approved yet
    assert devices.list() == []
    assert pairing.waiting() == [request]
    pairing.approve(request.id)
    assert pairing.waiting() == []
    status = pairing.status(request.id)
    assert status is not None and status.state == "approved"
    with pytest.raises(AppError) as caught:
        pairing.deny(request.id)  # already answered
    assert (caught.value.status, caught.value.code) == (404, "unknown_request")

    collected = await pairing.collect(request.id)
    assert collected is not None
    device, token = collected
    assert (device.name, device.address, device.user_agent) == ("Pixel Tablet", TABLET, "Chrome on Android")
    assert devices.authenticate(token, TABLET) == device
    assert devices.list() == [device]
    assert await pairing.collect(request.id) is None
    assert pairing.status(request.id) is None
    assert len(devices.list()) == 1


async def test_deny(pairing: Pairing, devices: DeviceStore) -> None:
    request = pairing.ask(pairing.code()[0], "Tablet", TABLET, "UA")
    pairing.deny(request.id)
    status = pairing.status(request.id)
    assert status is not None and status.state == "denied"
    assert await pairing.collect(request.id) is None
    assert devices.list() == []
    for answer in (pairing.approve, pairing.deny):
        with pytest.raises(AppError) as caught:
            answer(request.id)
        assert caught.value.code == "unknown_request"


async def test_unknown_requests(pairing: Pairing) -> None:
    assert pairing.status(None) is None and pairing.status("nope") is None
    assert await pairing.collect("nope") is None
    with pytest.raises(AppError) as caught:
        pairing.approve("nope")
    assert caught.value.status == 404


async def test_waiting_request_expires(pairing: Pairing, clock: Clock) -> None:
    request = pairing.ask(pairing.code()[0], "Tablet", TABLET, "UA")
    clock.now += TTL
    assert pairing.waiting() == [request]
    clock.now += 1
    assert pairing.waiting() == []
    status = pairing.status(request.id)
    assert status is not None and status.state == "expired"
    with pytest.raises(AppError) as caught:
        pairing.approve(request.id)
    assert caught.value.code == "unknown_request"
    assert await pairing.collect(request.id) is None
    clock.now += COLLECT_WITHIN_S + 1
    assert pairing.status(request.id) is None  # forgotten once its device had time to learn the answer


async def test_uncollected_approval_is_forgotten(pairing: Pairing, devices: DeviceStore, clock: Clock) -> None:
    request = pairing.ask(pairing.code()[0], "Tablet", TABLET, "UA")
    pairing.approve(request.id)
    clock.now += COLLECT_WITHIN_S
    status = pairing.status(request.id)
    assert status is not None and status.state == "approved"
    clock.now += 1
    assert pairing.status(request.id) is None
    assert await pairing.collect(request.id) is None
    assert devices.list() == []


def test_max_waiting(pairing: Pairing) -> None:
    requests = [pairing.ask(pairing.code()[0], f"Tablet {i}", f"192.168.1.{40 + i}", "UA")
                for i in range(MAX_WAITING)]
    assert len(pairing.waiting()) == MAX_WAITING
    code, _ = pairing.code()
    error = refused(pairing, code, "192.168.1.99")
    assert (error.status, error.code) == (429, "too_many_waiting") and error.retry_after > 0
    assert len(pairing.waiting()) == MAX_WAITING
    pairing.deny(requests[0].id)
    # the code was not used up by the refused request
    assert pairing.ask(code, "Tablet", "192.168.1.99", "UA").state == "waiting"
    assert len(pairing.waiting()) == MAX_WAITING


def test_confirm_code(pairing: Pairing) -> None:
    confirms = set()
    for i in range(20):
        request = pairing.ask(pairing.code()[0], "Tablet", f"10.0.0.{i}", "UA")
        assert re.fullmatch(r"\d{4}", request.confirm)
        confirms.add(request.confirm)
        pairing.deny(request.id)
    assert len(confirms) > 1  # random, not a constant
    ids = {r.id for r in pairing._requests.values()}
    assert len(ids) == 20 and all(len(i) >= 32 for i in ids)


async def test_version_counts_changes(pairing: Pairing, clock: Clock) -> None:
    seen = [pairing.version]

    def changed() -> None:
        assert pairing.version > seen[-1]
        seen.append(pairing.version)

    def unchanged() -> None:
        assert pairing.version == seen[-1]

    code, _ = pairing.code()
    changed()
    pairing.code()
    unchanged()
    refused(pairing, "wrong")
    unchanged()
    first = pairing.ask(code, "Tablet", TABLET, "UA")
    changed()
    second = pairing.ask(pairing.code()[0], "Tablet", OTHER, "UA")
    changed()
    pairing.approve(first.id)
    changed()
    await pairing.collect(first.id)
    changed()
    pairing.deny(second.id)
    changed()
    third = pairing.ask(pairing.code()[0], "Tablet", "10.0.0.3", "UA")
    changed()
    assert third.state == "waiting"
    clock.now += TTL + 1
    pairing.waiting()  # the request expires
    changed()
    pairing.stop()
    changed()
    pairing.start()
    changed()
    pairing.new_code()
    changed()
