"""A server's image model: what a model is for (from its name), `RemoteClient.images` against a server on
loopback that behaves well or badly, `RemoteEngines.pictures`, and `ImageEngines`, which sends pictures to a
server's image model while its server is not known to be down and to this device's otherwise (and always
for a picture made from another one). Then pictures through full `Services` (the gallery, a chat message
asking for one, Cancel), and `/api/engines` and `/v1/images/generations` through a real gridless server."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from PIL import Image

from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.core.jobs import Job
from backend.engines.diffusion import GenerateRequest, GenerateResult
from backend.images.engine import ImageEngines
from backend.images.params import ImageParams
from backend.images.png_text import png_text
from backend.images.service import Generation, GenerationState
from backend.models.registry import ModelRecord
from backend.remote.client import RemoteClient, RemoteLimits
from backend.remote.service import MAX_PICTURE_SIDE, RemoteEngines
from backend.remote.sse import StreamLimits
from backend.remote.store import guess_job
from backend.runtime.host import EngineHost, EngineJob
from backend.runtime.protocol import Event, JobDone, JobFailed
from backend.services import Services
from tests.sdmodels import register_image_model
from tests.server import ServerProcess

from .fake_remote import ERROR_MESSAGE, FakeRemote, picture_bytes
from .gridless import api, gridless_server

SDXL = "stabilityai/sdxl-turbo"
LOCAL = "local-sd"
MakeClient = Callable[..., RemoteClient]
BOMB_WARNING = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
"""Pillow warns when it opens the 10 000 × 10 000 header; the picture is refused before it is decoded."""


def opened(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def colour(data: bytes) -> tuple[int, ...]:
    """The colour of a picture's top-left pixel (the fake paints each picture of a batch its own)."""
    return tuple(opened(data).convert("RGB").getpixel((0, 0)))


async def until(check: Callable[[], object], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.02)


# what a model is for ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [
    SDXL, "stable-diffusion-v1-5", "flux1-schnell", "sd3.5-medium", "dall-e-3", "dreamshaper-8",
    "runwayml/stable-diffusion-v1-5", "stabilityai/stable-diffusion-xl-base-1.0", "black-forest-labs/FLUX.1-dev",
    "stabilityai/stable-diffusion-3.5-large", "dall-e-2", "IDKiro/sdxs-512-0.9", "stabilityai/sd-turbo",
    "Lykon/dreamshaper-xl-lightning", "kandinsky-community/kandinsky-2-2-decoder", "sd-v1-4", "sdxl-lightning",
])
def test_image_models_are_guessed_from_their_names(model: str) -> None:
    assert guess_job(model) == "images"


@pytest.mark.parametrize(("model", "job"), [
    ("qwen3:14b", "chat"), ("llama3.2:3b", "chat"), ("gpt-4o-mini", "chat"), ("gpt-3.5-turbo", "chat"),
    ("meta-llama/Llama-3.1-8B-Instruct", "chat"), ("gemma-3-27b-it", "chat"), ("mistral-small3.1:24b", "chat"),
    ("deepseek-r1:8b", "chat"), ("Qwen/Qwen2.5-VL-7B-Instruct", "chat"), ("openai/gpt-oss-20b", "chat"),
    ("big-model", "chat"), ("phi4", "chat"), ("smollm2:1.7b", "chat"),
    ("nomic-embed-text", "embeddings"), ("bge-m3", "embeddings"), ("text-embedding-3-small", "embeddings"),
    ("intfloat/multilingual-e5-large", "embeddings"), ("sentence-transformers/all-MiniLM-L6-v2", "embeddings"),
    ("whisper-1", "speech"), ("Systran/faster-whisper-large-v3", "speech"), ("gpt-4o-transcribe", "speech"),
    ("nvidia/parakeet-tdt-0.6b-v2", "speech"),
])
def test_other_models_are_not_for_pictures(model: str, job: str) -> None:
    assert guess_job(model) == job


# the client ------------------------------------------------------------------------------------------------

@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    made: list[RemoteClient] = []

    def make(url: str, limits: RemoteLimits | None = None, key: str = "") -> RemoteClient:
        client = RemoteClient(url, key, name="box", limits=limits or RemoteLimits())
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def draw(client: RemoteClient, *, count: int = 1, width: int = 64, height: int = 64,
               extra: dict[str, Any] | None = None, model: str = SDXL) -> list[bytes]:
    return await client.images(model, "a red fox in the snow", width=width, height=height, count=count,
                               extra=extra or {})


async def test_images_asks_for_pictures_in_b64_json_with_the_local_servers_fields(
        fake: FakeRemote, make_client: MakeClient) -> None:
    client = make_client(fake.url + "/v1")
    pictures = await draw(client, count=2, width=320, height=192,
                          extra={"negative_prompt": "blur", "steps": 4, "cfg_scale": 1.5, "seed": 11})
    assert len(pictures) == 2
    for index, data in enumerate(pictures):
        picture = opened(data)
        assert (picture.format, picture.size) == ("PNG", (320, 192))
        assert data == picture_bytes(320, 192, index)  # the bytes as the server encoded them
    assert colour(pictures[0]) != colour(pictures[1])
    [sent] = fake.requests("/v1/images/generations")
    assert sent.method == "POST" and sent.headers["content-type"] == "application/json"
    assert sent.headers["accept-encoding"] == "identity" and "authorization" not in sent.headers
    assert sent.json() == {"model": SDXL, "prompt": "a red fox in the snow", "n": 2, "size": "320x192",
                           "response_format": "b64_json", "negative_prompt": "blur", "steps": 4, "cfg_scale": 1.5,
                           "seed": 11}

    await draw(client, model="dall-e-3")  # nothing beyond OpenAI's fields when none is given
    assert fake.requests("/v1/images/generations")[-1].json() == {
        "model": "dall-e-3", "prompt": "a red fox in the snow", "n": 1, "size": "64x64", "response_format": "b64_json"}


async def test_images_with_the_key(make_client: MakeClient) -> None:
    with FakeRemote(key="sesame") as fake:
        [data] = await draw(make_client(fake.url + "/v1", key="sesame"))
        assert opened(data).size == (64, 64)
        assert fake.requests("/images/generations")[-1].headers["authorization"] == "Bearer sesame"
        with pytest.raises(AppError) as refused:
            await draw(make_client(fake.url + "/v1"))
        assert refused.value.code == ErrorCode.REMOTE_REFUSED and "Invalid API Key" in refused.value.message


async def test_links_are_refused_and_never_fetched(fake: FakeRemote, make_client: MakeClient) -> None:
    """OpenAI's default answer names where the pictures are: gridless goes to no address a server names
    (here another server on loopback, which would see the request)."""
    with FakeRemote() as elsewhere:
        fake.mode, fake.image_url = "images_url", f"{elsewhere.url}/files/picture.png"
        with pytest.raises(AppError) as refused:
            await draw(make_client(fake.url + "/v1"), count=2)
        assert refused.value.code == ErrorCode.REMOTE_FAILED
        assert refused.value.message == ("box answered with links to its pictures, not the pictures themselves; "
                                         "gridless does not fetch them.")
        await asyncio.sleep(0.2)
        assert elsewhere.seen == [] and elsewhere.connections == 0
    assert len(fake.requests("/images/generations")) == 1


@pytest.mark.parametrize(("mode", "words"), [
    ("images_bad_b64", "box sent a picture gridless cannot read."),
    ("images_none", "box did not answer with pictures."),
    ("images_extra", "box did not answer with pictures."),
    ("bad_json", "box sent something that is not JSON."),
    ("html", "box answered with text/html, not JSON"),
    ("huge", "box sent more than "),
])
async def test_answers_that_are_no_pictures(fake: FakeRemote, make_client: MakeClient, mode: str,
                                            words: str) -> None:
    fake.mode = mode
    started = time.monotonic()
    with pytest.raises(AppError) as failed:
        await draw(make_client(fake.url + "/v1"), count=2)
    assert failed.value.code == ErrorCode.REMOTE_FAILED and failed.value.message.startswith(words), \
        failed.value.message
    assert time.monotonic() - started < 5
    if mode == "huge":
        await asyncio.sleep(0.2)
        assert fake.sent < 16 * 1024 * 1024  # a MiB and the room for two small pictures, not the GiB


async def test_a_server_error_says_its_message(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode, fake.error_length = "error500", 80
    with pytest.raises(AppError) as failed:
        await draw(make_client(fake.url + "/v1"))
    assert failed.value.code == ErrorCode.REMOTE_FAILED
    assert failed.value.message.startswith("box answered with HTTP 500: " + ERROR_MESSAGE.strip()), \
        failed.value.message


async def test_a_model_that_takes_long_is_waited_for(fake: FakeRemote, make_client: MakeClient) -> None:
    """A picture comes whole when the model has finished: nothing arrives before, however many steps. Only
    the bound of a whole answer applies, not the silence allowed before a chat model's first token."""
    fake.delay_s = 1.0
    limits = RemoteLimits(silence_s=0.3, stream=StreamLimits(max_seconds=10.0))
    [data] = await draw(make_client(fake.url + "/v1", limits))
    assert opened(data).size == (64, 64)

    fake.delay_s = 3.0
    limits = RemoteLimits(silence_s=0.3, stream=StreamLimits(max_seconds=1.0))
    started = time.monotonic()
    with pytest.raises(AppError) as late:
        await draw(make_client(fake.url + "/v1", limits))
    assert late.value.code == ErrorCode.REMOTE_UNAVAILABLE
    assert late.value.message == "box did not make the picture within 1 s.", late.value.message
    assert time.monotonic() - started < 2
    await until(lambda: fake.requests("/images/generations")[-1].closed_at is not None, 2)  # the request closed


async def test_a_server_that_is_not_there(make_client: MakeClient) -> None:
    with FakeRemote() as fake:
        url = fake.url
    with pytest.raises(AppError) as failed:
        await draw(make_client(url + "/v1"))
    assert failed.value.code == ErrorCode.REMOTE_UNAVAILABLE and "is the server running?" in failed.value.message


# the events of pictures: RemoteEngines.pictures ----------------------------------------------------------------

def request(**fields: Any) -> GenerateRequest:
    wanted: dict[str, Any] = {"prompt": "a lighthouse at dusk", "width": 256, "height": 128, "steps": 4,
                              "cfg_scale": 2.0, "seed": 40, **fields}
    return GenerateRequest(**wanted)


async def pictures(engines: RemoteEngines, model_id: str, **fields: Any) -> GenerateResult:
    model = engines.get(model_id)
    assert model is not None and model.job is Job.IMAGES
    [done] = await engines.pictures(model, request(**fields), EngineJob(id="j1"))
    assert isinstance(done, JobDone) and done.job_id == "j1" and isinstance(done.result, GenerateResult)
    return done.result


async def test_pictures_are_the_events_of_the_local_engine(engines: RemoteEngines, fake: FakeRemote) -> None:
    fake.models = ["qwen3:14b", SDXL]
    engine = await engines.add(fake.host, name="Laptop")
    result = await pictures(engines, f"{engine.id}/{SDXL}", batch_count=3, negative_prompt="")
    assert len(result.images) == 3 and result.seeds == [40, 41, 42]
    assert (result.width, result.height) == (256, 128) and 0 <= result.seconds < 5 and not result.cancelled
    assert all(opened(p).format == "PNG" and opened(p).size == (256, 128) for p in result.images)
    assert len({colour(p) for p in result.images}) == 3
    assert fake.requests("/images/generations")[-1].json() == {
        "model": SDXL, "prompt": "a lighthouse at dusk", "n": 3, "size": "256x128", "response_format": "b64_json",
        "steps": 4, "cfg_scale": 2.0, "seed": 40}  # an empty negative prompt is left out; seed 0 is not
    await pictures(engines, f"{engine.id}/{SDXL}", seed=0, negative_prompt="fog")
    sent = fake.requests("/images/generations")[-1].json()
    assert (sent["seed"], sent["negative_prompt"]) == (0, "fog")


async def test_the_size_is_the_pictures_own(engines: RemoteEngines) -> None:
    """A model that makes its own size (DALL-E's): the result says the size the pictures have."""
    with FakeRemote(models=["dall-e-3"], image_size=(96, 160)) as fake:
        engine = await engines.add(fake.host, name="Laptop")
        result = await pictures(engines, f"{engine.id}/dall-e-3")
        assert (result.width, result.height) == (96, 160) and opened(result.images[0]).size == (96, 160)


async def test_a_jpeg_is_kept_as_png(engines: RemoteEngines, fake: FakeRemote) -> None:
    fake.models = [SDXL]
    engine = await engines.add(fake.host, name="Laptop")
    fake.mode = "images_jpeg"
    result = await pictures(engines, f"{engine.id}/{SDXL}", batch_count=2)
    assert [opened(p).format for p in result.images] == ["PNG", "PNG"]
    assert [opened(p).size for p in result.images] == [(256, 128)] * 2
    sent = opened(picture_bytes(256, 128, 1, "JPEG")).convert("RGB")
    assert opened(result.images[1]).convert("RGB").tobytes() == sent.tobytes()  # the JPEG's pixels, as they are


@BOMB_WARNING
@pytest.mark.parametrize(("mode", "words"), [
    ("images_not_picture", "Laptop sent something that is not a picture."),
    ("images_bomb", f"Laptop sent a picture larger than {MAX_PICTURE_SIDE} pixels a side."),
    ("images_url", "Laptop answered with links to its pictures"),
    ("images_bad_b64", "Laptop sent a picture gridless cannot read."),
    ("error500", "Laptop answered with HTTP 500"),
])
async def test_what_is_no_picture_is_refused(engines: RemoteEngines, fake: FakeRemote, mode: str, words: str) -> None:
    fake.models = [SDXL]
    engine = await engines.add(fake.host, name="Laptop")
    fake.mode = mode
    started = time.monotonic()
    with pytest.raises(AppError) as refused:
        await pictures(engines, f"{engine.id}/{SDXL}")
    assert refused.value.code == ErrorCode.REMOTE_FAILED and refused.value.message.startswith(words), \
        refused.value.message
    assert time.monotonic() - started < 3  # the 10 000 × 10 000 picture is not decoded
    assert engines.engine(engine.id).state == "up"  # it answers: it is not taken to be down


async def test_a_server_gone_is_marked_down(engines: RemoteEngines, fake: FakeRemote) -> None:
    fake.models = [SDXL]
    engine = await engines.add(fake.host, name="Laptop")
    assert engines.first(Job.IMAGES) is not None
    fake.down()
    with pytest.raises(AppError) as failed:
        await pictures(engines, f"{engine.id}/{SDXL}")
    assert failed.value.code == ErrorCode.REMOTE_UNAVAILABLE and "Cannot connect to Laptop" in failed.value.message
    await until(lambda: engines.engine(engine.id).state == "down")
    assert engines.first(Job.IMAGES) is None


# which image model: ImageEngines ------------------------------------------------------------------------------

class LocalImages:
    """This device's image engine, as far as `ImageEngines` uses it: it remembers what it was asked."""

    def __init__(self) -> None:
        self.record = ModelRecord(id=LOCAL, job=Job.IMAGES, name="Local SD", format="gguf", path=Path("sd.gguf"),
                                  size_bytes=1, source="import")
        self.streamed: list[tuple[GenerateRequest, str | None]] = []
        self.cancelled: list[str] = []
        self.warmed = 0

    @property
    def model(self) -> ModelRecord:
        return self.record

    @property
    def loaded(self) -> None:
        return None

    async def warm(self) -> None:
        self.warmed += 1

    def resolve(self, model_id: str | None) -> ModelRecord:
        if model_id not in (None, LOCAL):
            raise AppError(ErrorCode.MODEL_NOT_FOUND, f"no image model '{model_id}'")
        return self.record

    async def stream(self, request: GenerateRequest, job: EngineJob, *, model_id: str | None = None,
                     on_position: Any = None) -> AsyncGenerator[Event, None]:
        self.streamed.append((request, model_id))
        yield JobDone(job_id=job.id, result=GenerateResult(images=[b"made here"], seeds=[request.seed]))

    def cancel(self, job: EngineJob) -> None:
        self.cancelled.append(job.id)

    def kill(self) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture
def local() -> LocalImages:
    return LocalImages()


@pytest.fixture
def routed(local: LocalImages, engines: RemoteEngines) -> ImageEngines:
    return ImageEngines(cast(EngineHost, local), engines)


async def run(images: ImageEngines, job: EngineJob | None = None, **kw: Any) -> list[Event]:
    init = kw.pop("init_image", None)
    return [e async for e in images.stream(request(init_image=init), job or EngineJob(), **kw)]


def made_by_server(events: list[Event]) -> bool:
    [done] = events
    assert isinstance(done, JobDone) and isinstance(done.result, GenerateResult), events
    return done.result.images != [b"made here"]


async def test_a_server_image_model_is_used_while_its_server_is_up(routed: ImageEngines, local: LocalImages,
                                                                   engines: RemoteEngines, fake: FakeRemote) -> None:
    assert routed.model.id == LOCAL and made_by_server(await run(routed)) is False
    fake.models = ["qwen3:14b", SDXL, "nomic-embed-text"]
    engine = await engines.add(fake.host, name="Laptop")
    remote_id = f"{engine.id}/{SDXL}"
    assert routed.model.id == remote_id and routed.loaded.id == remote_id
    assert routed.resolve(None).id == remote_id and routed.resolve(remote_id).id == remote_id
    assert routed.resolve(LOCAL).id == LOCAL
    await routed.warm()  # nothing to load here
    assert local.warmed == 0
    with pytest.raises(AppError) as unknown:  # its chat model makes no pictures
        routed.resolve(f"{engine.id}/qwen3:14b")
    assert unknown.value.code == ErrorCode.MODEL_NOT_FOUND

    assert made_by_server(await run(routed))
    assert made_by_server(await run(routed, model_id=remote_id))
    assert made_by_server(await run(routed, model_id=LOCAL)) is False
    assert len(fake.requests("/images/generations")) == 2 and [m for _, m in local.streamed] == [None, LOCAL]

    # the owner says the model is for something else: this device's again; and any model the owner marks
    await engines.set_job(engine.id, SDXL, "chat")
    assert routed.model.id == LOCAL and made_by_server(await run(routed)) is False
    await engines.set_job(engine.id, "qwen3:14b", "images")
    assert routed.model.id == f"{engine.id}/qwen3:14b" and made_by_server(await run(routed))
    assert fake.requests("/images/generations")[-1].json()["model"] == "qwen3:14b"
    await engines.set_job(engine.id, "qwen3:14b", "chat")
    await engines.set_job(engine.id, SDXL, "images")
    assert routed.model.id == remote_id

    # its server found down: this device's, until it is found again
    fake.down()
    assert (await engines.check(engine.id)).state == "down"
    assert routed.model.id == LOCAL and routed.loaded is None and routed.resolve(None).id == LOCAL
    asked = len(fake.requests("/images/generations"))
    assert made_by_server(await run(routed)) is False
    await routed.warm()
    assert local.warmed == 1
    fake.up()
    assert (await engines.check(engine.id)).state == "up"
    assert routed.model.id == remote_id and made_by_server(await run(routed))
    assert len(fake.requests("/images/generations")) == asked + 1


async def test_a_picture_from_a_picture_is_made_here(routed: ImageEngines, local: LocalImages,
                                                     engines: RemoteEngines, fake: FakeRemote) -> None:
    fake.models = [SDXL]
    engine = await engines.add(fake.host, name="Laptop")
    remote_id = f"{engine.id}/{SDXL}"
    assert routed.resolve(None, from_picture=True).id == LOCAL
    assert routed.resolve(None, from_picture=False).id == remote_id
    assert routed.resolve(remote_id, from_picture=True).id == remote_id  # named: refused when it runs

    assert made_by_server(await run(routed, init_image=b"\x89PNG start")) is False
    assert local.streamed[-1][1] is None
    refused = await run(routed, init_image=b"\x89PNG start", model_id=remote_id)
    [failed] = refused
    assert isinstance(failed, JobFailed) and failed.code == ErrorCode.BAD_REQUEST
    assert failed.message == (f"{SDXL} · Laptop makes new pictures only; starting from a picture is done with this "
                              "device's image model.")
    assert fake.requests("/images/generations") == [] and len(local.streamed) == 1


@BOMB_WARNING
async def test_a_server_failure_is_a_failed_job(routed: ImageEngines, engines: RemoteEngines,
                                                fake: FakeRemote) -> None:
    fake.models = [SDXL]
    engine = await engines.add(fake.host, name="Laptop")
    fake.mode = "images_bomb"
    [failed] = await run(routed)
    assert isinstance(failed, JobFailed) and failed.code == ErrorCode.REMOTE_FAILED
    assert "larger than 4096 pixels" in failed.message
    assert routed.model.id == f"{engine.id}/{SDXL}"  # it answers: still the one used

    job = EngineJob()
    routed.cancel(job)  # cancelled before it started: never asked
    [cancelled] = await run(routed, job)
    assert isinstance(cancelled, JobFailed) and cancelled.code == ErrorCode.CANCELLED
    assert len(fake.requests("/images/generations")) == 1


async def test_cancel_ends_a_slow_picture_at_once(routed: ImageEngines, local: LocalImages, engines: RemoteEngines,
                                                  ) -> None:
    with FakeRemote(models=[SDXL], delay_s=30) as fake:
        await engines.add(fake.host, name="Laptop")
        job = EngineJob()
        events: list[Event] = []

        async def follow() -> None:
            events.extend(await run(routed, job))

        running = asyncio.create_task(follow())
        await until(lambda: fake.requests("/images/generations"))
        stopped = time.monotonic()
        routed.cancel(job)
        await asyncio.wait_for(running, 5)
        assert time.monotonic() - stopped < 1
        [done] = events
        assert isinstance(done, JobDone) and isinstance(done.result, GenerateResult) and done.result.cancelled
        assert done.result.images == [] and local.cancelled == [job.id]
        await until(lambda: fake.requests("/images/generations")[0].closed_at is not None, 2)  # it stops there too
        assert routed._running == {}


# pictures through the whole app ---------------------------------------------------------------------------------

@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    """The whole app on a folder of its own, with an image model of this device's recorded (never started
    here: its file is no model)."""
    data = tmp_path / "data"
    data.mkdir()
    dummy = tmp_path / "local-sd.safetensors"
    dummy.write_bytes(b"\0" * 64)
    await register_image_model(data / "gridless.db", dummy, LOCAL)
    built = Services.build(Settings(data_dir=data, token="t" * 20, remote_check_s=3600))
    await built.start()
    yield built
    await built.stop()


async def finished(generation: Generation, within_s: float = 20) -> Generation:
    await asyncio.wait_for(generation.finished.wait(), within_s)
    return generation


async def test_pictures_from_the_server_are_kept_in_the_gallery(services: Services) -> None:
    images = services.images
    assert images.model is not None and images.model.id == LOCAL
    with FakeRemote(models=["qwen3:14b", SDXL]) as fake:
        engine = await services.remote.add(fake.host, name="Laptop")
        remote_id = f"{engine.id}/{SDXL}"
        assert images.model.id == remote_id
        params = ImageParams(prompt="a red fox in the snow", negative_prompt="fog", width=320, height=192, steps=4,
                             cfg_scale=1.5, sampler="euler_a", seed=9, batch_count=2)
        generation = await finished(await images.generate(params))
        assert generation.state == GenerationState.DONE, (generation.error_code, generation.error)
        assert generation.model.id == remote_id and generation.error is None
        assert fake.requests("/images/generations")[-1].json() == {
            "model": SDXL, "prompt": "a red fox in the snow", "n": 2, "size": "320x192",
            "response_format": "b64_json", "negative_prompt": "fog", "steps": 4, "cfg_scale": 1.5, "seed": 9}

        assert [r.seed for r in generation.images] == [9, 10]
        colours = set()
        for record in generation.images:
            row = await images.store.get(record.id)
            assert row == record
            assert (row.model, row.model_name, row.width, row.height) == (remote_id, f"{SDXL} · Laptop", 320, 192)
            assert (row.prompt, row.negative_prompt, row.steps, row.cfg_scale, row.sampler) == \
                ("a red fox in the snow", "fog", 4, 1.5, "euler_a")
            assert row.origin == "page" and row.seconds >= 0
            path = services.media.path(row.path)
            assert path.suffix == ".png" and path.stat().st_size == row.bytes
            picture = opened(path.read_bytes())
            assert (picture.format, picture.size) == ("PNG", (320, 192))
            assert {k: v for k, v in picture.info.items() if isinstance(v, str)} == \
                png_text(params, row.seed, f"{SDXL} · Laptop")
            assert picture.info["model"] == f"{SDXL} · Laptop" and picture.info["software"] == "gridless"
            colours.add(colour(path.read_bytes()))
            assert opened(services.media.path(row.thumb).read_bytes()).format == "JPEG"
        assert len(colours) == 2

        # a JPEG from the server is kept as PNG, with the same text
        fake.mode = "images_jpeg"
        generation = await finished(await images.generate(params.model_copy(update={"batch_count": 1})))
        assert generation.state == GenerationState.DONE, generation.error
        [record] = generation.images
        stored = opened(services.media.path(record.path).read_bytes())
        assert stored.format == "PNG" and stored.info["seed"] == "9"

        # starting from a gallery picture, naming the server's model: refused, nothing asked of it
        fake.mode = "good"
        asked = len(fake.requests("/images/generations"))
        assert images.host.resolve(None, from_picture=True).id == LOCAL
        refused = await finished(await images.generate(
            ImageParams(prompt="the same fox at night", source_image=record.id, model=remote_id)))
        assert refused.state == GenerationState.ERROR and refused.error_code == ErrorCode.BAD_REQUEST
        assert "makes new pictures only" in (refused.error or "")
        assert len(fake.requests("/images/generations")) == asked
        assert images.host.local.worker_pid is None  # this device's image engine never started


async def test_a_chat_message_asking_for_a_picture(services: Services) -> None:
    """The model's suited settings (SDXL Turbo: one step, no guidance, 1 024 pixels) go to the server."""
    with FakeRemote(models=[SDXL]) as fake:
        engine = await services.remote.add(fake.host, name="Laptop")
        conversation = await services.conversations.create()
        reply = await services.conversations.send(conversation.id, "Generate an image of a lighthouse at dusk")
        await asyncio.wait_for(reply.finished.wait(), 20)
        message = await services.store.get_message(reply.message_id)
        assert message is not None and message.status == "done", message
        assert message.stats["model"] == f"{engine.id}/{SDXL}"
        [image_id] = message.stats["images"]
        assert message.content == f"![a lighthouse at dusk](/api/images/{image_id}/file)"
        sent = fake.requests("/images/generations")[-1].json()
        assert (sent["prompt"], sent["size"], sent["steps"], sent["cfg_scale"]) == \
            ("a lighthouse at dusk", "1024x1024", 1, 1.0)
        row = await services.images.store.get(image_id)
        assert row is not None and (row.origin, row.conversation_id) == ("chat", conversation.id)
        assert opened(services.media.path(row.path).read_bytes()).size == (1024, 1024)
        assert services.images.host.local.worker_pid is None


async def test_cancel_closes_the_request_to_the_server(services: Services) -> None:
    with FakeRemote(models=[SDXL], delay_s=30) as fake:
        await services.remote.add(fake.host, name="Laptop")
        generation = await services.images.generate(ImageParams(prompt="a slow fox", width=128, height=128))
        await until(lambda: fake.requests("/images/generations"))
        stopped = time.monotonic()
        assert services.images.cancel(generation.id)
        await finished(generation, 5)
        assert time.monotonic() - stopped < 1.5
        assert generation.state == GenerationState.CANCELLED and generation.images == []
        await until(lambda: fake.requests("/images/generations")[0].closed_at is not None, 2)
        assert await services.images.store.all_files() == set()
        assert services.images.host.local.worker_pid is None


async def test_what_the_server_gets_wrong_fails_the_generation(services: Services) -> None:
    with FakeRemote(models=[SDXL]) as fake, FakeRemote() as elsewhere:
        engine = await services.remote.add(fake.host, name="Laptop")
        fake.mode, fake.image_url = "images_url", f"{elsewhere.url}/picture.png"
        generation = await finished(await services.images.generate(ImageParams(prompt="a fox")))
        assert generation.state == GenerationState.ERROR and generation.error_code == ErrorCode.REMOTE_FAILED
        assert "links to its pictures" in (generation.error or "")
        assert elsewhere.seen == [] and elsewhere.connections == 0

        # its server gone: the generation says so, and the next ones are made here
        fake.mode = "good"
        fake.down()
        generation = await finished(await services.images.generate(ImageParams(prompt="a fox")))
        assert generation.state == GenerationState.ERROR and generation.error_code == ErrorCode.REMOTE_UNAVAILABLE
        assert "Cannot connect to Laptop" in (generation.error or "")
        await until(lambda: services.remote.engine(engine.id).state == "down")
        assert services.images.model is not None and services.images.model.id == LOCAL
        assert await services.images.store.all_files() == set()


# through a real gridless server -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeRemote]:
    with FakeRemote(models=["qwen3:14b", SDXL]) as server:
        yield server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with gridless_server(tmp_path_factory, "remote-images") as server:
        yield server



def test_pictures_through_the_server(srv: ServerProcess, shared_fake: FakeRemote) -> None:
    assert api(srv, "POST", "/v1/images/generations", json={"prompt": "a fox"}).json()["error"]["code"] == \
        "model_not_found"  # no image model anywhere yet
    made = api(srv, "POST", "/api/engines", json={"url": shared_fake.host, "name": "Laptop"})
    assert made.status_code == 201, made.text
    eid = made.json()["id"]
    remote_id = f"{eid}/{SDXL}"
    [listed] = api(srv, "GET", "/api/engines").json()["engines"]
    assert listed["jobs"] == {"qwen3:14b": "chat", SDXL: "images"} and listed["state"] == "up"

    # b64_json, the model left to the app: the server's, with its suited settings
    answered = api(srv, "POST", "/v1/images/generations",
                   json={"prompt": "a quiet harbour", "size": "256x192", "n": 2, "seed": 5})
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["size"] == "256x192" and body["output_format"] == "png" and len(body["data"]) == 2
    for item, seed in zip(body["data"], (5, 6), strict=True):
        picture = opened(base64.b64decode(item["b64_json"]))
        assert (picture.format, picture.size, item["seed"]) == ("PNG", (256, 192), seed)
        assert picture.info["seed"] == str(seed) and picture.info["model"] == f"{SDXL} · Laptop"
        row = api(srv, "GET", f"/api/images/{item['id']}").json()
        assert (row["model"], row["origin"], row["width"], row["height"]) == (remote_id, "api", 256, 192)
    assert shared_fake.requests("/images/generations")[-1].json() == {
        "model": SDXL, "prompt": "a quiet harbour", "n": 2, "size": "256x192", "response_format": "b64_json",
        "steps": 1, "cfg_scale": 1.0, "seed": 5}

    # url, naming the server's model: a link to the picture in the app
    answered = api(srv, "POST", "/v1/images/generations",
                   json={"prompt": "a quiet harbour", "size": "128x128", "model": remote_id, "response_format": "url",
                         "negative_prompt": "fog", "steps": 3})
    assert answered.status_code == 200, answered.text
    [item] = answered.json()["data"]
    assert "b64_json" not in item and item["url"] == f"{srv.base}/api/images/{item['id']}/file"
    fetched = httpx.get(item["url"], headers=srv.headers(), timeout=30)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert opened(fetched.content).size == (128, 128) and opened(fetched.content).info["negative_prompt"] == "fog"
    sent = shared_fake.requests("/images/generations")[-1].json()
    assert (sent["model"], sent["size"], sent["steps"], sent["negative_prompt"]) == (SDXL, "128x128", 3, "fog")

    # the server's chat model makes no pictures
    asked = len(shared_fake.requests("/images/generations"))
    refused = api(srv, "POST", "/v1/images/generations", json={"prompt": "a fox", "model": f"{eid}/qwen3:14b"})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"

    # a server that answers with links: refused, and the link is not followed
    with FakeRemote() as elsewhere:
        shared_fake.mode, shared_fake.image_url = "images_url", f"{elsewhere.url}/picture.png"
        try:
            failed = api(srv, "POST", "/v1/images/generations", json={"prompt": "a fox", "size": "128x128"})
        finally:
            shared_fake.mode = "good"
        assert failed.status_code == 502 and failed.json()["error"]["code"] == "remote_failed", failed.text
        assert "links to its pictures" in failed.json()["error"]["message"]
        assert elsewhere.connections == 0
    assert len(shared_fake.requests("/images/generations")) == asked + 1
    assert "Traceback" not in srv.log()
