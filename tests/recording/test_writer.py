"""The WAV writer: decoding each codec, the file's name, place, format and mode."""

from __future__ import annotations

import base64
import os
import stat
import struct
import wave
from pathlib import Path

import pytest

from gateway.recording.writer import Take, decoder, file_name, render, write
from gateway.sim.audio import speech_like, ulaw_to_pcm16


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def take(directory: Path, **changes) -> Take:
    fields = dict(directory=directory, day="2026-05-12", call_id="CA0123", codec="pcmu", rate=8000,
                  origin_ms=1000.0, end_ms=1100.0, caller_at=[], caller=[], agent_at=[], agent=[])
    fields.update(changes)
    return Take(**fields)


def read(path: Path) -> tuple[wave._wave_params, bytes, bytes]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(params.nframes)
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    left, right = samples[0::2], samples[1::2]
    return params, struct.pack(f"<{len(left)}h", *left), struct.pack(f"<{len(right)}h", *right)


def test_file_names_are_never_paths():
    assert file_name("CA0123abc") == "CA0123abc"
    assert file_name("../../etc/passwd") == "etc_passwd"
    assert file_name("a b/c\\d") == "a_b_c_d"
    assert file_name("...") == "call" and file_name("") == "call"
    assert len(file_name("x" * 500)) == 128


def test_each_codec_decodes_to_16_bit_samples():
    # G.711's table values (ITU-T G.711): μ-law 0xFF/0x7F are the two zeros, 0x00/0x80 the extremes;
    # A-law 0xD5/0x55 are ±8, 0x2A/0xAA the extremes.
    assert struct.unpack("<4h", decoder("pcmu")(bytes([0xFF, 0x7F, 0x00, 0x80]))) == (0, 0, -32124, 32124)
    assert struct.unpack("<4h", decoder("pcma")(bytes([0xD5, 0x55, 0x2A, 0xAA]))) == (8, -8, -32256, 32256)
    assert decoder("l16")(b"\x01\x00\x02\x00") == b"\x01\x00\x02\x00"
    with pytest.raises(ValueError):
        decoder("opus")


def test_a_stereo_wav_at_the_codec_rate(tmp_path: Path):
    caller, agent = speech_like(40, seed=2), speech_like(20, seed=3)
    t = take(tmp_path, caller_at=[1020.0, 1040.0], caller=[b64(caller[:160]), b64(caller[160:])],
             agent_at=[1050.0], agent=[b64(agent)])
    written = write(t)
    assert written.path == tmp_path / "2026-05-12" / "CA0123.wav"
    assert written.duration_s == pytest.approx(0.1) and written.bad_chunks == 0
    params, left, right = read(written.path)
    assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (2, 2, 8000, 800)
    assert left[: 2 * 320] == ulaw_to_pcm16(caller) and left[2 * 320:] == bytes(2 * 480)
    assert right[: 2 * 400] == bytes(800) and right[2 * 400: 2 * 560] == ulaw_to_pcm16(agent)
    assert stat.S_IMODE(os.stat(written.path).st_mode) == 0o640 & ~_umask()
    assert sorted(p.name for p in (tmp_path / "2026-05-12").iterdir()) == ["CA0123.wav"]  # no .part left


def test_l16_at_24_khz(tmp_path: Path):
    samples = struct.pack("<480h", *range(480))  # 20 ms at 24 kHz
    t = take(tmp_path, codec="l16", rate=24000, end_ms=1020.0, caller_at=[1020.0], caller=[b64(samples)])
    params, left, right = read(write(t).path)
    assert params.framerate == 24000 and params.nframes == 480
    assert left == samples and right == bytes(960)


def test_a_second_recording_of_the_same_call_gets_its_own_file(tmp_path: Path):
    first, second = write(take(tmp_path)), write(take(tmp_path))
    assert first.path.name == "CA0123.wav" and second.path.name == "CA0123-2.wav"


def test_chunks_that_are_not_base64_are_silence_and_counted(tmp_path: Path):
    good = speech_like(20, seed=4)
    out, bad = render(take(tmp_path, caller_at=[1020.0, 1040.0, 1060.0], caller=[b64(good), "*" * 216, b64(good)]))
    assert bad == 1
    left = out.channel(0)
    # The bad chunk keeps its place (216 base64 characters: 162 bytes), the next one follows it.
    assert left[:320] == ulaw_to_pcm16(good) and left[320:2 * 322] == bytes(2 * 162)
    assert left[2 * 322:2 * 482] == ulaw_to_pcm16(good)


def test_a_directory_that_cannot_be_written_raises_and_leaves_nothing(tmp_path: Path):
    (tmp_path / "2026-05-12").write_bytes(b"a file where the day's directory goes")
    with pytest.raises(OSError):
        write(take(tmp_path))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
