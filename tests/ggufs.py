"""Small GGUF files written by the tests: shaped like a language model or a vision
projector as far as the header goes, with random tensor data to reach a chosen size."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np


def write_lm_gguf(path: Path, *, size_mb: float = 2.0, layers: int = 2, embedding: int = 64, vocab: int = 256,
                  context: int = 2048, name: str = "tiny test model", seed: int = 0) -> Path:
    """A GGUF whose header says 'llama language model'; it is not loadable by llama.cpp."""
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
