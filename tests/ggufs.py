"""Small GGUF files written by the tests: shaped like a language model or a vision
projector as far as the header goes, with random tensor data to reach a chosen size."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import gguf
import numpy as np

from backend.models.gguf_info import read_gguf_info


def write_lm_gguf(path: Path, *, size_mb: float = 2.0, layers: int = 2, embedding: int = 64, vocab: int = 256,
                  context: int = 2048, name: str = "tiny test model", seed: int = 0,
                  chat_template: str | None = None) -> Path:
    """A GGUF whose header says 'llama language model' (with `chat_template` as its
    `tokenizer.chat_template` if given); it is not loadable by llama.cpp."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_block_count(layers)
    writer.add_context_length(context)
    writer.add_embedding_length(embedding)
    writer.add_feed_forward_length(embedding * 4)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_license("apache-2.0")
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", rng.random((vocab, embedding), dtype=np.float32))
    filler = max(1, int(size_mb * 1_000_000 / 4) - vocab * embedding)
    writer.add_tensor("blk.0.ffn_up.weight", rng.random((filler,), dtype=np.float32))
    finish_gguf(writer)
    return path


def write_projector_gguf(path: Path, *, projection_dim: int = 64, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_uint32("clip.vision.projection_dim", projection_dim)
    writer.add_tensor("mm.input_projection.weight", rng.random((projection_dim, 16), dtype=np.float32))
    finish_gguf(writer)
    return path


def finish_gguf(writer: gguf.GGUFWriter) -> None:
    """Write the header, metadata and tensors, and close the file."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_oversized_count_gguf(path: Path) -> Path:
    """A header that claims 2^60 tensors in a file of a few bytes."""
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**60, 1) + b"\0" * 64)
    return path


def write_tiny_mmproj(path: Path, embedding_width: int = 576, seed: int = 0) -> Path:
    """A loadable vision projector with random weights: a gemma3-type clip GGUF with a
    2-block, 64-wide SigLIP-style tower (224 px images, 14 px patches, 16 image tokens)
    whose output width is `embedding_width`, the text model's embedding width."""
    rng = np.random.default_rng(seed)
    width, ff, blocks, heads, image, patch = 64, 256, 2, 4, 224, 14
    n_patches = (image // patch) ** 2

    def matrix(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float16)

    def vector(n: int, value: float | None = None) -> np.ndarray:
        if value is not None:
            return np.full((n,), value, dtype=np.float32)
        return (rng.standard_normal(n) * 0.02).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name("tiny vision projector")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.use_gelu", True)
    writer.add_string("clip.projector_type", "gemma3")
    writer.add_uint32("clip.vision.image_size", image)
    writer.add_uint32("clip.vision.patch_size", patch)
    writer.add_uint32("clip.vision.embedding_length", width)
    writer.add_uint32("clip.vision.feed_forward_length", ff)
    writer.add_uint32("clip.vision.block_count", blocks)
    writer.add_uint32("clip.vision.projection_dim", embedding_width)
    writer.add_uint32("clip.vision.attention.head_count", heads)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    # numpy shapes are ggml's ne reversed
    writer.add_tensor("v.patch_embd.weight", matrix(width, 3, patch, patch))
    writer.add_tensor("v.patch_embd.bias", vector(width))
    writer.add_tensor("v.position_embd.weight", (rng.standard_normal((n_patches, width)) * 0.02).astype(np.float32))
    for i in range(blocks):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"v.blk.{i}.{name}.weight", matrix(width, width))
            writer.add_tensor(f"v.blk.{i}.{name}.bias", vector(width))
        for name in ("ln1", "ln2"):
            writer.add_tensor(f"v.blk.{i}.{name}.weight", vector(width, 1.0))
            writer.add_tensor(f"v.blk.{i}.{name}.bias", vector(width, 0.0))
        writer.add_tensor(f"v.blk.{i}.ffn_up.weight", matrix(ff, width))
        writer.add_tensor(f"v.blk.{i}.ffn_up.bias", vector(ff))
        writer.add_tensor(f"v.blk.{i}.ffn_down.weight", matrix(width, ff))
        writer.add_tensor(f"v.blk.{i}.ffn_down.bias", vector(width))
    writer.add_tensor("v.post_ln.weight", vector(width, 1.0))
    writer.add_tensor("v.post_ln.bias", vector(width, 0.0))
    writer.add_tensor("mm.soft_emb_norm.weight", vector(width, 1.0))
    writer.add_tensor("mm.input_projection.weight", matrix(width, embedding_width))
    finish_gguf(writer)
    return path


def chat_template_of(path: Path) -> str:
    """The `tokenizer.chat_template` a GGUF file carries."""
    template = read_gguf_info(path).metadata["tokenizer.chat_template"]
    assert isinstance(template, str)
    return template


def copy_with_chat_template(source: Path, dest: Path, template: str) -> Path:
    """A copy of `source` whose `tokenizer.chat_template` is `template`: the header up to that
    entry, the new entry, the rest of the header, padding to the file's alignment, and then the
    tensor data as it was (tensor offsets count from the start of the data, so they still hold)."""
    reader = gguf.GGUFReader(str(source))
    field = reader.fields["tokenizer.chat_template"]
    entry_end = field.offset + sum(int(part.nbytes) for part in field.parts)
    last = reader.tensors[-1].field
    header_end = last.offset + sum(int(part.nbytes) for part in last.parts)
    key, text = b"tokenizer.chat_template", template.encode("utf-8")
    entry = struct.pack("<Q", len(key)) + key + struct.pack("<IQ", gguf.GGUFValueType.STRING, len(text)) + text
    with source.open("rb") as src, dest.open("wb") as out:
        out.write(src.read(field.offset))
        out.write(entry)
        src.seek(entry_end)
        out.write(src.read(header_end - entry_end))
        out.write(b"\0" * (-out.tell() % reader.alignment))
        src.seek(reader.data_offset)
        shutil.copyfileobj(src, out, 1 << 20)
    return dest
