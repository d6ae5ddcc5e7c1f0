"""`/v1/chat/completions` with an image, through the official `openai` client, on a vision
model made of the bundled SmolLM2 and a tiny random-weight projector (answers are noise;
the path is real)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image

from tests.ggufs import write_tiny_mmproj
from tests.server import ServerProcess
from tests.vision_models import VISION, vision_data_dir

pytestmark = pytest.mark.engine


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), "orange").save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("vision")
    projector = write_tiny_mmproj(folder / "mmproj-tiny-vision.gguf")
    with ServerProcess(data_dir=vision_data_dir(folder, smollm_path, projector)) as srv:
        yield srv


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.token, timeout=120, max_retries=0)


def test_the_vision_model_is_listed(client: openai.OpenAI) -> None:
    assert VISION in {m.id for m in client.models.list()}


def test_a_photo_question_gets_an_answer(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model=VISION, max_tokens=8, temperature=0, messages=[{
        "role": "user", "content": [{"type": "text", "text": "What colour is this?"},
                                    {"type": "image_url", "image_url": {"url": data_url(photo(), "image/jpeg")}}]}])
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.usage is not None and response.usage.prompt_tokens > 16  # the image's 16 tokens and the text
    assert response.usage.completion_tokens > 0


def test_a_photo_question_streams(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=VISION, max_tokens=8, temperature=0, stream=True, messages=[{
        "role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(photo(), "image/jpeg")}},
                                    {"type": "text", "text": "Describe it."}]}])
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(pieces) >= 2


def test_a_pdf_sent_as_an_image_is_refused_by_what_it_is(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=VISION, max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(b"%PDF-1.7\n" + bytes(64), "image/jpeg")}}]}])
    assert caught.value.status_code == 415
    assert "This is a PDF document, not an image." in str(caught.value)


def test_a_local_address_is_not_fetched_for_a_vision_model_either(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=VISION, max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/photo.jpg"}}]}])
    assert "never fetches" in str(caught.value)


def test_a_text_model_says_it_cannot_see(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=8, messages=[{
            "role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(photo(), "image/jpeg")}}]}])
    assert "cannot see images" in str(caught.value)


def test_questions_about_photos_stay_out_of_the_log(client: openai.OpenAI, server: ServerProcess) -> None:
    secret = "Where was this photo of my passport taken?"
    image = {"type": "image_url", "image_url": {"url": data_url(photo(), "image/jpeg")}}
    client.chat.completions.create(model=VISION, max_tokens=4, messages=[{"role": "user", "content": [
        {"type": "text", "text": secret}, image]}])
    assert secret not in server.log()
