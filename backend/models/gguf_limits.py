"""What a real GGUF model's header holds, at most: the caps the header reader enforces.

A count that still fits the file can be far beyond anything real (2^36 metadata entries in
a 1 TiB sparse file, a vocabulary of 2^36 tokens): reading it entry by entry would keep a
core busy for hours, and reading it at all is pointless. Each cap is the largest figure
seen in real models, with a wide margin, so that no real model comes near it and every
hostile count is refused before the reader walks it.

Real figures (from llama.cpp's own load logs of the published files):
- metadata entries: 22 (Llama 3 8B), 43 (DeepSeek-V3), 51 (Gemma 4 31B), 64 (a DeepSeek-V3
  re-quantization with imatrix and split keys).
- tensors: 291 (Llama 3 8B), 833 (Gemma 4 31B), 1025 (DeepSeek-V3 671B), 1086 (its
  re-quantization with extra tensors).
- list lengths: vocabularies of 128256 (Llama 3), 201088 (gpt-oss), 248320 (Qwen 3.6) and
  262144 (Gemma 3) tokens; merge lists of 280147 (Llama 3), 318088 (GLM 4.5) and 446189
  (gpt-oss), the longest list seen. All lists of gpt-oss together hold about 1.05 million
  items (tokens, scores and token types of 201088 each, and the merges).
- header size: the vocabulary is nearly all of it. The bundled SmolLM2's header is 1.8 MB for
  49152 tokens and 48900 merges (about 16 bytes a string); at that rate gpt-oss's is about 12 MB.
- ggml's GGUF reader (gguf.cpp, in llama.cpp and stable-diffusion.cpp alike) refuses an array of
  arrays, and a tensor name as long as GGML_MAX_NAME: 64 in llama.cpp, 128 in stable-diffusion.cpp,
  whose tensor names are longer.
"""

from __future__ import annotations

MIB = 1024 * 1024

MAX_ENTRIES = 4096
"""Metadata entries: 64 is the most seen; 64 times that."""

MAX_TENSORS = 65_536
"""Tensors: 1086 is the most seen; 60 times that. Reading 65535 tensor entries took 0.2 s here."""

MAX_ARRAY_ITEMS = 1 << 22
"""Items in one metadata list (4194304): 9 times gpt-oss's 446189 merges, 16 times Gemma 3's vocabulary."""

MAX_ARRAY_ITEMS_TOTAL = 1 << 23
"""Items in all metadata lists together (8388608): 8 times gpt-oss's 1.05 million. A string item costs one
step of the reader, so this bounds the walk even when every item is a string (measured: 8 million empty
strings in 0.8 s here, where 2^24 entries in a 256 MiB file took 22 s to refuse without the caps)."""

MAX_HEADER_BYTES = 128 * MIB
"""Where the tensor data must have begun: 10 times gpt-oss's header of about 12 MB. It bounds what the reader
touches of the file (and so the pages counted in its memory) whatever the counts say."""

MAX_TEXT_KEPT = 4 * MIB
"""Text kept from the metadata (keys, strings, short lists of strings; the vocabulary is only counted, not
kept). A real model keeps a few kilobytes plus its chat templates, tens of kilobytes each; 4 MiB is far
beyond that, and keeps a header of thousands of long strings from taking gigabytes (measured: importing a
file of 5000 strings of 256 KiB peaked at 2.6 GB when every string up to 256 KiB was kept)."""

MAX_STRING_KEPT = 256 * 1024
"""A longer string is skipped (not kept, not counted): nothing the app reads is that long."""

MAX_KEY = 65_535
"""The GGUF specification's limit for a metadata key."""

MAX_TENSOR_NAME = 127
"""Longer names are refused by both engines' readers (GGML_MAX_NAME is 128 in stable-diffusion.cpp)."""

MAX_ARCHITECTURE_NAME = 64
"""llama.cpp's architecture names are short words ('llama', 'deepseek2', 'wavtokenizer-dec' at 16
letters is among the longest); four times the longest."""

MAX_ARRAY_KEPT = 64
"""A list this short is kept as its items (per-layer values, languages); a longer one only as its length."""
