"""Is it audio, and how long: `sniff` on the first bytes, `probe` on real files made here."""

from __future__ import annotations

import io
import struct
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.audio.intake import probe, sniff, wav_bytes, wav_header
from backend.core.errors import AppError
from tests.audiofiles import encode, opus_webm, png_bytes, silent_flac, tone, write_wav

HOUR = 3600.0


# --- sniff ------------------------------------------------------------------------------------

@pytest.mark.parametrize("head,expected", [
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87", ("webm", "audio/webm")),
    (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", ("mka", "audio/x-matroska")),
    (b"OggS\x00\x02" + bytes(22) + b"OpusHead", ("ogg", "audio/ogg")),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", ("wav", "audio/wav")),
    (b"fLaC\x00\x00\x00\x22", ("flac", "audio/flac")),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", ("m4a", "audio/mp4")),
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", ("m4a", "audio/mp4")),
    (b"\x00\x00\x00\x18ftyp3gp4\x00\x00\x00\x00", ("3gp", "audio/3gpp")),
    (b"ID3\x04\x00\x00\x00\x00\x00\x23", ("mp3", "audio/mpeg")),
    (b"\xff\xfb\x90\x64", ("mp3", "audio/mpeg")),  # MPEG-1 layer III frame sync
    (b"\xff\xf3\x48\xc4", ("mp3", "audio/mpeg")),  # MPEG-2 layer III
    (b"\xff\xe3\x18\xc4", ("mp3", "audio/mpeg")),  # MPEG-2.5 layer III
    (b"\xff\xf1\x50\x80\x02\x1f\xfc", ("aac", "audio/aac")),  # ADTS, MPEG-4
    (b"\xff\xf9\x50\x80\x02\x1f\xfc", ("aac", "audio/aac")),  # ADTS, MPEG-2
], ids=["webm", "matroska", "ogg", "wav", "flac", "m4a", "mp4", "3gp", "mp3-id3", "mp3-sync", "mp3-mpeg2",
        "mp3-mpeg25", "aac-adts", "aac-adts-mpeg2"])
def test_sniff_recognises_containers(head: bytes, expected: tuple[str, str]) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize("head,what", [
    (png_bytes(), "PNG image"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG image"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "PDF document"),
    (b"PK\x03\x04\x14\x00\x00\x00", "ZIP archive"),
    (b"GIF89a\x01\x00", "GIF image"),
    (b"\x7fELF\x02\x01\x01", "program"),
    (b"GGUF\x03\x00\x00\x00", "GGUF model"),
    (b"<!DOCTYPE html><html>", "HTML or XML document"),
    (b'{"text": "hello"}', "JSON text"),
])
def test_sniff_names_what_else_it_is(head: bytes, what: str) -> None:
    with pytest.raises(AppError) as info:
        sniff(head)
    assert (info.value.status, info.value.code) == (415, "not_audio")
    assert what in info.value.message


def test_sniff_refuses_empty_and_unknown() -> None:
    with pytest.raises(AppError) as info:
        sniff(b"")
    assert (info.value.status, info.value.code) == (400, "empty_audio")
    with pytest.raises(AppError) as info:
        sniff(b"just some notes, not a recording")
    assert (info.value.status, info.value.code) == (415, "not_audio")
    assert "WebM" in info.value.message  # says what would be accepted


# --- real files: what PyAV and `wave` write ---------------------------------------------------

REAL = {
    "wav": lambda p: write_wav(p, 1.0),
    "flac": lambda p: encode(p, "flac", 1.0, rate=16_000, fmt="flac"),
    "ogg": lambda p: encode(p, "libopus", 1.0, fmt="ogg"),
    "webm": lambda p: opus_webm(p, 1.0),
    "m4a": lambda p: encode(p, "aac", 1.0, rate=44_100, fmt="ipod"),
    "3gp": lambda p: encode(p, "aac", 1.0, rate=16_000, fmt="3gp"),
    "mp3": lambda p: encode(p, "libmp3lame", 1.0, rate=44_100, fmt="mp3"),
    "mp3-no-id3": lambda p: encode(p, "libmp3lame", 1.0, rate=44_100, fmt="mp3", options={"id3v2_version": "0"}),
    "aac": lambda p: encode(p, "aac", 1.0, rate=44_100, fmt="adts"),
}


@pytest.mark.parametrize("kind", list(REAL))
def test_real_files_are_recognised_and_timed(tmp_path: Path, kind: str) -> None:
    path = REAL[kind](tmp_path / "recording.bin")  # the name says nothing: the bytes decide
    head = path.read_bytes()[:64]
    if kind == "mp3-no-id3":
        assert head[0] == 0xFF  # starts with a frame, not a tag
    extension, mime = sniff(head)
    assert extension == kind.split("-")[0] and mime.startswith("audio/")
    found = probe(str(path), HOUR)
    assert found.duration is not None and found.duration == pytest.approx(1.0, abs=0.06)
    assert found.sample_rate > 0 and found.codec


def test_probe_reads_a_one_second_wav(tmp_path: Path) -> None:
    found = probe(str(write_wav(tmp_path / "a.wav", 1.0)), HOUR)
    assert (found.container, found.codec, found.sample_rate) == ("wav", "pcm_s16le", 16_000)
    assert found.duration == pytest.approx(1.0)


def test_probe_accepts_a_recording_without_duration(tmp_path: Path) -> None:
    """A browser's WebM states no duration: probe lets it through (the worker bounds it)."""
    path = opus_webm(tmp_path / "live.webm", 3.0, live=True)
    found = probe(str(path), 2.0)  # longer than the limit, but nothing says so up front
    assert found.duration is None and found.codec == "opus"


def test_over_long_file_is_refused_from_its_header(tmp_path: Path) -> None:
    path = silent_flac(tmp_path / "three-hours.flac", 3 * HOUR)
    assert path.stat().st_size < 100_000  # three hours of silence, small on disk
    started = time.perf_counter()
    with pytest.raises(AppError) as info:
        probe(str(path), HOUR)
    elapsed = time.perf_counter() - started
    assert (info.value.status, info.value.code) == (413, "audio_too_long")
    assert "3 h 00 min" in info.value.message and "1 h 00 min" in info.value.message
    assert elapsed < 0.25, elapsed  # refused from the header, not by decoding three hours


def test_over_long_wav_is_refused_without_reading_it(tmp_path: Path) -> None:
    """Three hours of 16 kHz PCM (a sparse file: no disk used) would take long to decode."""
    path = tmp_path / "long.wav"
    data = int(3 * HOUR * 16_000 * 2)
    with path.open("wb") as fh:
        fh.write(wav_header(16_000, data))
        fh.truncate(44 + data)
    started = time.perf_counter()
    with pytest.raises(AppError) as info:
        probe(str(path), HOUR)
    assert info.value.code == "audio_too_long"
    assert time.perf_counter() - started < 0.25


def test_just_under_the_limit_is_accepted(tmp_path: Path) -> None:
    found = probe(str(silent_flac(tmp_path / "minute.flac", 59.0)), 60.0)
    assert found.duration == pytest.approx(59.0, abs=0.01)


@pytest.mark.parametrize("make", [
    lambda p: p.write_bytes(wav_header(16_000, 0)),
    lambda p: p.write_bytes(wav_bytes(b"", 16_000)),
], ids=["header-only", "wave-no-frames"])
def test_wav_with_a_header_but_no_frames(tmp_path: Path, make: Callable[[Path], object]) -> None:
    path = tmp_path / "empty.wav"
    make(path)
    with pytest.raises(AppError) as info:
        probe(str(path), HOUR)
    assert (info.value.status, info.value.code) == (415, "invalid_audio")


def test_truncated_webm_is_invalid(tmp_path: Path) -> None:
    whole = opus_webm(tmp_path / "whole.webm", 2.0, live=True).read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(whole[:200])  # the header and track, no audio
    assert sniff(cut.read_bytes()) == ("webm", "audio/webm")
    with pytest.raises(AppError) as info:
        probe(str(cut), HOUR)
    assert (info.value.status, info.value.code) == (415, "invalid_audio")
    assert "damaged or incomplete" in info.value.message


@pytest.mark.parametrize("content", [png_bytes(), b"%PDF-1.4\n" + bytes(2000), bytes(range(256)) * 40],
                         ids=["png", "pdf", "bytes"])
def test_probe_refuses_what_is_not_audio(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sound.wav"
    path.write_bytes(content)
    with pytest.raises(AppError) as info:
        probe(str(path), HOUR)
    assert info.value.status == 415 and info.value.code in ("invalid_audio", "not_audio")


def test_missing_file_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(AppError) as info:
        probe(str(tmp_path / "gone.wav"), HOUR)
    assert info.value.code == "invalid_audio"


# --- WAV writing ------------------------------------------------------------------------------

def test_wav_bytes_is_a_complete_wav() -> None:
    pcm = tone(0.5, 22_050).tobytes()
    with wave.open(io.BytesIO(wav_bytes(pcm, 22_050))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22_050)
        assert w.getnframes() == len(pcm) // 2
        assert w.readframes(w.getnframes()) == pcm


def test_wav_header_with_a_known_length() -> None:
    pcm = tone(0.25, 16_000).tobytes()
    header = wav_header(16_000, len(pcm))
    assert len(header) == 44
    assert struct.unpack("<I", header[4:8])[0] == 36 + len(pcm)
    with wave.open(io.BytesIO(header + pcm)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16_000, len(pcm) // 2)
        assert w.readframes(len(pcm)) == pcm


def test_wav_header_for_a_stream() -> None:
    """Without a length the sizes say 'as long as the stream'; readers take what comes."""
    pcm = tone(0.1, 22_050).tobytes()
    header = wav_header(22_050)
    assert header[4:8] == b"\xff\xff\xff\xff"
    assert struct.unpack("<I", header[40:44])[0] == 0xFFFFFFFF - 36
    with wave.open(io.BytesIO(header + pcm)) as w:
        assert w.getframerate() == 22_050
        assert w.readframes(10**6) == pcm
