"""Share on this network, in two Chromiums: the owner's on loopback and a tablet's on a second host.

The second host is a network namespace joined to ours by a veth pair (`tests.netns`); the
tablet's Chromium runs inside it, so it reaches the server only over the shared LAN
address, as a tablet on the phone's hotspot would. The owner's Chromium is the usual
session browser and signs in with the owner link on loopback.

In secure mode the tablet's Chromium is told to accept the server certificate's key
(`--ignore-certificate-errors-spki-list`), which stands in for installing the phone's CA.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from playwright.sync_api import Browser, Page, Playwright, Request, expect
from playwright.sync_api import Error as PlaywrightError

from tests.netns import SecondHost, netns_available
from tests.server import ServerProcess

from .conftest import CHROMIUM, CHROMIUM_ARGS, PHONE, wait_live

pytestmark = pytest.mark.e2e

COMPOSER = "textarea[data-testid=composer]"
STATS = "[data-testid=answer-stats]"
ANSWER = "[data-testid=assistant-message] .gl-answer"
ANSWER_TIMEOUT_MS = 180_000
TABLET_NAME = "Chrome on Linux"  # what the pair page calls a desktop Chromium on Linux
OWNER_NAV = ("nav-models", "nav-sharing", "nav-devices")
REVOKE_DISCONNECT_S = 1.0
CAMERA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

LaunchTablet = Callable[..., Page]


# fixtures ---------------------------------------------------------------------------------------

@pytest.fixture
def host() -> Iterator[SecondHost]:
    if not CHROMIUM.exists():
        pytest.skip("end-to-end tests need Debian's chromium at /usr/bin/chromium")
    if not netns_available():
        pytest.skip("a second host needs root and `ip netns`")
    with SecondHost() as second:
        yield second


@pytest.fixture
def sharing_server(host: SecondHost, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real server on loopback; it is stopped before the second host goes away."""
    with ServerProcess(data_dir=tmp_path / "data") as srv:
        yield srv


@pytest.fixture
def tablet(playwright: Playwright, host: SecondHost, request: pytest.FixtureRequest,
           tmp_path: Path) -> Iterator[LaunchTablet]:
    """`tablet(*extra_args)`: a page in a Chromium that runs on the second host."""
    browsers: list[Browser] = []

    def launch(*extra_args: str) -> Page:
        browser = playwright.chromium.launch(executable_path=str(host.chromium_wrapper(tmp_path)),
                                             args=[*CHROMIUM_ARGS, *extra_args])
        browsers.append(browser)
        context = browser.new_context(viewport=PHONE)
        context.set_default_timeout(30_000)
        context.set_default_navigation_timeout(30_000)
        return context.new_page()

    yield launch
    call_report = getattr(request.node, "report_call", None)
    for b, browser in enumerate(browsers):
        if call_report is not None and call_report.failed:
            for context in browser.contexts:
                for i, page in enumerate(context.pages):
                    try:
                        page.screenshot(path=str(tmp_path / f"tablet-failure-{b}-{i}.png"), full_page=True)
                    except Exception as exc:  # the page may be the reason the test failed
                        print(f"could not save a screenshot of tablet page {i}: {exc}")
        browser.close()


# helpers ----------------------------------------------------------------------------------------

def sign_in(page: Page, server: ServerProcess) -> None:
    """Open the owner link. The second host's network interface came up just before, and
    Chromium, noticing the change a moment later, aborts the requests in flight
    (net::ERR_NETWORK_CHANGED): the page can be left without the modules it was loading, blank.
    A person would load it again; so does the test, only then."""
    aborted: list[str] = []

    def failed(request: Request) -> None:
        if "ERR_NETWORK_CHANGED" in (request.failure or ""):
            aborted.append(request.url)

    page.on("requestfailed", failed)
    page.goto(server.owner_link)
    for _ in range(3):
        page.wait_for_load_state("load")
        if not aborted:
            break
        aborted.clear()
        page.reload()
    page.remove_listener("requestfailed", failed)
    expect(page.locator(COMPOSER)).to_be_visible()
    wait_live(page)


def start_sharing(page: Page, server: ServerProcess, host: SecondHost, *, secure: bool = False) -> str:
    """On the Share page pick the second host's network, share, and return the pairing link."""
    page.goto(f"{server.base}/sharing")
    wait_live(page)
    network = page.get_by_test_id("share-interface")
    network.click()
    page.get_by_role("option", name=re.compile(re.escape(f" · {host.host_address}") + "$")).click()
    # never share on any other address of this machine
    expect(network).to_contain_text(host.host_address)
    if secure:
        switch = page.get_by_test_id("share-secure")
        switch.click()
        expect(switch).to_have_attribute("aria-checked", "true")
    page.get_by_test_id("share-start").click()
    scheme = "https" if secure else "http"
    origin = f"{scheme}://{host.host_address}:{server.port}"
    expect(page.get_by_test_id("share-address")).to_have_text(origin)
    expect(page.get_by_test_id("share-qr").locator("svg")).to_be_visible()
    link = page.get_by_test_id("share-link").inner_text().strip()
    assert re.fullmatch(re.escape(f"{origin}/pair#") + r"[A-Za-z0-9_-]{20,}", link), link
    return link


def ask_to_pair(tablet_page: Page, owner: Page, link: str) -> str:
    """The tablet opens the pairing link and waits; the owner's page asks with the same code."""
    tablet_page.goto(link)
    state = tablet_page.get_by_test_id("pair-state")
    expect(state).to_have_attribute("data-state", "waiting")
    confirm = tablet_page.get_by_test_id("pair-confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_have_text(re.compile(r"^\d{4}$"))
    code = confirm.inner_text()
    # the code from the link is not left in the address bar (nor in the history)
    assert "#" not in tablet_page.url, tablet_page.url
    assert tablet_page.url == link.split("#")[0], tablet_page.url
    expect(owner.get_by_test_id("pair-request-code")).to_have_text(code)
    expect(owner.get_by_test_id("pair-request-name")).to_have_text(f"Allow {TABLET_NAME}?")
    return code


def owner_api(server: ServerProcess, path: str) -> httpx.Response:
    return httpx.get(f"{server.base}{path}", headers=server.headers(), timeout=10)


def socket_connected(page: Page) -> bool:
    return bool(page.evaluate("!!(window.socket && window.socket.connected)"))


def spki_sha256(cert_file: Path) -> str:
    """base64 SHA-256 of a certificate's SubjectPublicKeyInfo, as Chromium's SPKI allow list takes it."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


# tests ------------------------------------------------------------------------------------------

def test_tablet_pairs_chats_and_is_revoked(sharing_server: ServerProcess, host: SecondHost, page: Page,
                                           tablet: LaunchTablet) -> None:
    server, owner = sharing_server, page
    sign_in(owner, server)
    link = start_sharing(owner, server, host)
    origin = link.split("/pair#")[0]

    tab = tablet()
    ask_to_pair(tab, owner, link)
    owner.get_by_test_id("pair-allow").click()
    expect(owner.get_by_test_id("pair-request-code")).to_be_hidden()

    # the tablet lands on the chat, live, without anything that manages the phone
    expect(tab).to_have_url(f"{origin}/")
    expect(tab.locator(COMPOSER)).to_be_visible()
    wait_live(tab)
    for nav in OWNER_NAV:
        expect(tab.get_by_test_id(nav)).to_have_count(0)
        expect(owner.get_by_test_id(nav)).to_have_count(1)
    expect(owner.get_by_test_id("sharing-on")).to_be_visible()  # the owner sees that the app is shared
    expect(tab.get_by_test_id("sharing-on")).to_have_count(0)
    refused = tab.goto(f"{origin}/models")
    assert refused is not None and refused.status == 403
    expect(tab.locator("body")).to_contain_text("Only the phone that runs gridless can open this.")

    # it chats with the phone's model
    tab.goto(f"{origin}/")
    wait_live(tab)
    composer = tab.locator(COMPOSER)
    composer.fill("Say hello.")
    composer.press("Enter")
    expect(tab.get_by_test_id("user-message")).to_have_text("Say hello.")
    expect(tab.locator(STATS).last).to_contain_text("tok/s", timeout=ANSWER_TIMEOUT_MS)
    assert tab.locator(ANSWER).last.inner_text().strip(), "the answer is empty"
    assert socket_connected(tab)

    # the owner sees it among the devices and revokes it: the tablet is cut off at once
    devices = owner_api(server, "/api/devices").json()
    assert [d["name"] for d in devices] == [TABLET_NAME]
    device_id = devices[0]["id"]
    assert devices[0]["address"] == host.peer_address
    owner.goto(f"{server.base}/devices")
    card = owner.get_by_test_id(f"device-{device_id}")
    expect(card.get_by_test_id("device-name")).to_have_text(TABLET_NAME)
    expect(card.get_by_test_id("device-seen")).to_contain_text(host.peer_address)
    card.get_by_test_id(f"revoke-{device_id}").click()
    confirm = owner.get_by_test_id("confirm-ok")
    confirm.click(trial=True)  # until the dialog has opened and the button can be clicked
    assert socket_connected(tab)
    clicked = time.monotonic()
    confirm.click()
    while socket_connected(tab):
        assert time.monotonic() - clicked < REVOKE_DISCONNECT_S, "the tablet was still connected 1 s after revoking"
        time.sleep(0.02)
    print(f"the tablet's socket closed {time.monotonic() - clicked:.3f} s after the owner revoked it")
    expect(owner.get_by_test_id("devices-empty")).to_be_visible()
    assert socket_connected(owner)
    assert owner_api(server, "/api/devices").json() == []
    reloaded = tab.reload()
    assert reloaded is not None and reloaded.status == 401
    expect(tab.locator(COMPOSER)).to_have_count(0)


def test_owner_denies(sharing_server: ServerProcess, host: SecondHost, page: Page, tablet: LaunchTablet) -> None:
    server, owner = sharing_server, page
    sign_in(owner, server)
    link = start_sharing(owner, server, host)
    origin = link.split("/pair#")[0]

    tab = tablet()
    ask_to_pair(tab, owner, link)
    owner.get_by_test_id("pair-deny").click()
    expect(owner.get_by_test_id("pair-request-code")).to_be_hidden()
    state = tab.get_by_test_id("pair-state")
    expect(state).to_have_attribute("data-state", "denied")
    expect(tab.get_by_test_id("pair-message")).to_have_text("The phone's owner did not allow this device.")
    expect(tab.get_by_test_id("pair-confirm")).to_be_hidden()

    refused = tab.goto(f"{origin}/")
    assert refused is not None and refused.status == 401
    expect(tab.locator(COMPOSER)).to_have_count(0)
    assert owner_api(server, "/api/devices").json() == []


def test_secure_mode_camera_on_lan(sharing_server: ServerProcess, host: SecondHost, page: Page,
                                   tablet: LaunchTablet) -> None:
    server, owner = sharing_server, page
    sign_in(owner, server)
    link = start_sharing(owner, server, host, secure=True)
    origin = link.split("/pair#")[0]
    fingerprint = owner.get_by_test_id("share-ca-fingerprint").inner_text().strip()
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fingerprint), fingerprint
    guide_url = owner.get_by_test_id("share-ca-url").inner_text().strip()
    assert guide_url == f"http://{host.host_address}:{server.port + 1}/ca"
    expect(owner.get_by_test_id("share-ca-qr").locator("svg")).to_be_visible()

    tls = server.data_dir / "tls"
    ca = x509.load_pem_x509_certificate((tls / "ca.pem").read_bytes())
    assert ca.fingerprint(hashes.SHA256()).hex(":").upper() == fingerprint

    # a tablet that has not installed the CA yet opens the guide, over plain HTTP beside the
    # HTTPS address, and sees the fingerprint the phone shows; the HTTPS address it refuses
    untrusting = tablet()
    guide = untrusting.goto(guide_url)
    assert guide is not None and guide.status == 200
    expect(untrusting.get_by_test_id("ca-fingerprint")).to_have_text(fingerprint)
    expect(untrusting.get_by_test_id("ca-download")).to_have_attribute("href", "/ca/gridless-ca.crt")
    with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
        untrusting.goto(link)
    untrusting.context.close()

    # the tablet after installing it (its Chromium trusts the server's key) has a camera
    tab = tablet(f"--ignore-certificate-errors-spki-list={spki_sha256(tls / 'server.pem')}", *CAMERA_ARGS)
    ask_to_pair(tab, owner, link)
    owner.get_by_test_id("pair-allow").click()
    expect(tab).to_have_url(f"{origin}/")
    expect(tab.locator(COMPOSER)).to_be_visible()
    wait_live(tab)  # the page's socket is up over wss
    assert tab.evaluate("window.isSecureContext") is True
    track_state = tab.evaluate("""async () => {
        const stream = await navigator.mediaDevices.getUserMedia({video: true});
        const [track] = stream.getVideoTracks();
        const state = track ? track.readyState : 'no video track';
        stream.getTracks().forEach((t) => t.stop());
        return state;
    }""")
    assert track_state == "live"
