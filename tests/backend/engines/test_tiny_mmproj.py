"""The random-weight vision projector written by `tests.ggufs.write_tiny_mmproj` loads in
llama.cpp's mtmd next to the bundled SmolLM2 model and turns an image into 16 tokens."""

from __future__ import annotations

import ctypes
import io
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.ggufs import write_tiny_mmproj
from tests.threads import ENGINE_THREADS

pytestmark = pytest.mark.engine

GGML_LOG_LEVEL_ERROR = 3
_quiet_callback: object = None


def _quiet(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """mtmd and its clip loader log every tensor to stderr whatever `verbose` says; keep errors only."""
    if level == GGML_LOG_LEVEL_ERROR:
        sys.stderr.write(text.decode("utf-8", "replace"))


def silence_mtmd() -> None:
    from llama_cpp import llama_cpp as lib
    from llama_cpp import mtmd_cpp as mtmd

    global _quiet_callback
    _quiet_callback = lib.llama_log_callback(_quiet)  # kept alive: the library holds the pointer
    mtmd.mtmd_log_set(_quiet_callback, None)
    mtmd.mtmd_helper_log_set(_quiet_callback, None)


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    image = Image.new("RGB", (width, height))
    for x in range(width):
        for y in range(height):
            image.putpixel((x, y), (x * 4 % 256, y * 5 % 256, (x + y) % 256))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_writes_small_file_quickly(tmp_path: Path) -> None:
    started = time.perf_counter()
    path = write_tiny_mmproj(tmp_path / "mmproj.gguf")
    assert time.perf_counter() - started < 1.0
    assert 350_000 < path.stat().st_size < 500_000


def test_projector_loads_and_image_evaluates(tmp_path: Path, smollm_path: Path,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as lib
    from llama_cpp import mtmd_cpp as mtmd

    silence_mtmd()
    projector = write_tiny_mmproj(tmp_path / "mmproj.gguf", embedding_width=576)
    llama = Llama(model_path=str(smollm_path), n_ctx=2048, n_threads=ENGINE_THREADS, verbose=False)
    ctx = bitmap = chunks = None
    try:
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = ENGINE_THREADS
        params.warmup = False
        ctx = mtmd.mtmd_init_from_file(str(projector).encode(), llama.model, params)
        assert ctx, "mtmd could not load the projector"
        assert mtmd.mtmd_support_vision(ctx)

        data = png_bytes()
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(ctx, buf, len(data), False)
        assert bitmap, "the PNG was not decoded"

        marker = mtmd.mtmd_default_marker()
        prompt = b"<|im_start|>user\nWhat is this? " + marker + b"<|im_end|>\n<|im_start|>assistant\n"
        text = mtmd.mtmd_input_text(text=prompt, text_len=len(prompt), add_special=False, parse_special=True)
        chunks = mtmd.mtmd_input_chunks_init()
        assert chunks
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        assert mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(text), bitmaps, 1) == 0

        kinds = []
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            kinds.append((mtmd.mtmd_input_chunk_get_type(chunk), mtmd.mtmd_input_chunk_get_n_tokens(chunk)))
        images = [n for kind, n in kinds if kind == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE]
        assert images == [16]

        n_past = lib.llama_pos(0)
        result = mtmd.mtmd_helper_eval_chunks(ctx, llama.ctx, chunks, 0, 0, llama.n_batch, True,
                                              ctypes.byref(n_past))
        assert result == 0
        assert n_past.value == mtmd.mtmd_helper_get_n_pos(chunks) == sum(n for _, n in kinds)
    finally:
        if chunks:
            mtmd.mtmd_input_chunks_free(chunks)
        if bitmap:
            mtmd.mtmd_bitmap_free(bitmap)
        if ctx:
            mtmd.mtmd_free(ctx)
        llama.close()
    assert capfd.readouterr().err == ""
