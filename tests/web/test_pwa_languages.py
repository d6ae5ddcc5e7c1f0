"""The manifest speaks the browser's language: its description is what an install prompt and the
phone's list of apps show."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.core.i18n import COOKIE
from backend.core.resources import STATIC_DIR
from web.pwa import router


def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def test_the_manifest_is_the_file_itself_in_english() -> None:
    response = client().get("/manifest.webmanifest", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert response.content == (STATIC_DIR / "manifest.webmanifest").read_bytes()
    assert response.headers["content-type"].startswith("application/manifest+json")
    assert "Accept-Language" in response.headers["vary"]


def test_the_manifest_speaks_italian_to_an_italian_browser() -> None:
    data = client().get("/manifest.webmanifest", headers={"Accept-Language": "it-IT,it;q=0.9,en;q=0.8"}).json()
    assert data["lang"] == "it" and data["description"].startswith("IA privata")
    assert data["name"] == "gridless" and data["start_url"] == "/" and len(data["icons"]) == 3


def test_a_chosen_language_wins() -> None:
    browser = client()
    browser.cookies.set(COOKIE, "en")
    response = browser.get("/manifest.webmanifest", headers={"Accept-Language": "it-IT"})
    assert response.content == (STATIC_DIR / "manifest.webmanifest").read_bytes()
