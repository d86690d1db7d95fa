"""WAV files in, 8 kHz mono μ-law out: what ``python -m gateway call --audio`` says.

The RIFF chunks are read here rather than with the stdlib ``wave`` module, which reads integer PCM
only and refuses the rest (``unknown format: 3``, ``65534``, ``7``). Accepted: PCM of 8, 16, 24 or 32
bits, IEEE float of 32 or 64 bits, μ-law and A-law (format 7 and 6), each plain or as
WAVE_FORMAT_EXTENSIBLE, any sample rate and channel count. Channels are averaged to mono, the rate
is converted to 8 kHz (low-passed below 4 kHz first, so nothing folds into the band), and the result
is encoded as μ-law; a μ-law 8 kHz mono file passes through byte for byte.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.sim.audio import SAMPLE_RATE, audioop

PCM, IEEE_FLOAT, ALAW, MULAW, EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
# KSDATAFORMAT_SUBTYPE_*: the format tag in the first two bytes, then this fixed tail.
SUBFORMAT_TAIL = bytes.fromhex("000000001000800000aa00389b71")
FORMAT_NAMES = {
    PCM: "PCM", IEEE_FLOAT: "IEEE float", ALAW: "A-law", MULAW: "μ-law", EXTENSIBLE: "extensible",
    0x0002: "Microsoft ADPCM", 0x0011: "IMA ADPCM", 0x0031: "GSM 6.10", 0x0040: "G.721 ADPCM",
    0x0050: "MPEG", 0x0055: "MPEG Layer 3", 0x0161: "Windows Media Audio", 0x2000: "AC-3",
}
CONVERT_HINT = "convert it first, e.g. `ffmpeg -i IN -ac 1 -ar 8000 -c:a pcm_s16le OUT.wav` or `sox IN -b 16 OUT.wav`"
FILTER_HALF_WIDTH = 32  # low-pass taps each side, per unit of the rate ratio


@dataclass(frozen=True, slots=True)
class WavFormat:
    tag: int  # the sample format (an extensible file's subformat)
    channels: int
    rate: int
    bits: int  # bits per sample as stored (the container)
    block_align: int  # bytes per frame, all channels
    extensible: bool = False

    @property
    def name(self) -> str:
        name = FORMAT_NAMES.get(self.tag, "unknown")
        return f"{'extensible ' if self.extensible else ''}{name} (format {self.tag}, {self.bits}-bit)"


def _format_name(tag: int) -> str:
    return f"{FORMAT_NAMES.get(tag, 'unknown')} (format {tag} = 0x{tag:04x})"


def parse_wav(data: bytes) -> tuple[WavFormat, bytes]:
    """The ``fmt `` and ``data`` chunks of a RIFF/WAVE file. Raises ValueError saying what is wrong."""
    if len(data) < 12 or data[8:12] != b"WAVE" or data[:4] not in (b"RIFF", b"RIFX", b"RF64"):
        raise ValueError("not a WAV file (no RIFF/WAVE header)")
    if data[:4] != b"RIFF":
        raise ValueError(f"{data[:4].decode()} WAV files are not supported (only little-endian RIFF); {CONVERT_HINT}")
    fmt: WavFormat | None = None
    body: bytes | None = None
    pos = 12
    while pos + 8 <= len(data) and body is None:
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        start = pos + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[start : start + size])
        elif chunk_id == b"data":
            if size == 0 or start + size > len(data):  # written as a stream: the size was never filled in
                size = len(data) - start
            body = data[start : start + size]
        pos = start + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise ValueError("no fmt chunk before the audio: not a usable WAV file")
    if body is None:
        raise ValueError("no data chunk: the file holds no audio")
    return fmt, body


def _parse_fmt(chunk: bytes) -> WavFormat:
    if len(chunk) < 16:
        raise ValueError(f"fmt chunk of {len(chunk)} bytes is too short")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", chunk)
    extensible = tag == EXTENSIBLE
    if extensible:
        if len(chunk) < 40:
            raise ValueError("extensible fmt chunk without its subformat (shorter than 40 bytes)")
        subformat = chunk[24:40]
        if subformat[2:] != SUBFORMAT_TAIL:
            raise ValueError(f"extensible WAV with an unknown subformat GUID {subformat.hex()}; {CONVERT_HINT}")
        tag = struct.unpack_from("<H", subformat)[0]
    if channels < 1 or rate < 1:
        raise ValueError(f"fmt chunk says {channels} channels at {rate} Hz")
    if block_align == 0:  # some writers leave it out
        block_align = channels * ((bits + 7) // 8)
    return WavFormat(tag, channels, rate, bits, block_align, extensible)


def decode(fmt: WavFormat, body: bytes) -> np.ndarray:
    """Samples as float64 in [-1, 1], shape (frames, channels)."""
    width, rest = divmod(fmt.block_align, fmt.channels)
    if rest or width == 0:
        raise ValueError(f"block align {fmt.block_align} does not fit {fmt.channels} channels")
    body = body[: len(body) - len(body) % fmt.block_align]  # a cut-off last frame is dropped
    if fmt.tag == PCM:
        if width == 1:  # 8-bit WAV PCM is unsigned
            x = (np.frombuffer(body, np.uint8).astype(np.float64) - 128.0) / 128.0
        elif width in (2, 3, 4):
            raw = np.frombuffer(body, np.uint8).reshape(-1, width)
            wide = np.zeros((len(raw), 4), np.uint8)
            wide[:, 4 - width :] = raw  # little-endian: the sample in the high bytes of an int32
            x = wide.view("<i4").ravel().astype(np.float64) / 2147483648.0
        else:
            raise ValueError(f"PCM with {width * 8}-bit samples is not supported (8, 16, 24 or 32)")
    elif fmt.tag == IEEE_FLOAT:
        if width not in (4, 8):
            raise ValueError(f"float with {width * 8}-bit samples is not supported (32 or 64)")
        x = np.frombuffer(body, "<f4" if width == 4 else "<f8").astype(np.float64)
        x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    elif fmt.tag in (MULAW, ALAW):
        if width != 1:
            raise ValueError(f"{_format_name(fmt.tag)} with {width * 8}-bit samples (8 expected)")
        pcm = audioop.ulaw2lin(body, 2) if fmt.tag == MULAW else audioop.alaw2lin(body, 2)
        x = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768.0
    else:
        what = "extensible WAV with subformat " if fmt.extensible else ""
        raise ValueError(f"{what}{_format_name(fmt.tag)} is not supported (PCM, float, μ-law or A-law); "
                         + CONVERT_HINT)
    return x.reshape(-1, fmt.channels)


def resample(x: np.ndarray, rate: int, to: int = SAMPLE_RATE) -> np.ndarray:
    """Mono samples from `rate` to `to` Hz: a windowed-sinc low-pass at 90 % of the new Nyquist
    frequency when going down (3.6 kHz for 8 kHz), then linear interpolation on the new grid."""
    if rate == to or len(x) == 0:
        return x
    if rate > to:
        ratio = rate / to
        half = math.ceil(FILTER_HALF_WIDTH * ratio)
        n = np.arange(-half, half + 1)
        cutoff = 0.45 / ratio  # cycles per input sample
        taps = 2.0 * cutoff * np.sinc(2.0 * cutoff * n) * np.blackman(len(n))
        taps /= taps.sum()
        size = 1 << (len(x) + len(taps) - 2).bit_length()  # FFT convolution, zero phase
        x = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(taps, size), size)[half : half + len(x)]
    count = len(x) * to // rate
    return np.interp(np.arange(count) * (rate / to), np.arange(len(x)), x)


def to_ulaw(samples: np.ndarray, rate: int) -> bytes:
    """(frames, channels) floats at `rate` → 8 kHz mono μ-law."""
    mono = resample(samples.mean(axis=1), rate)
    pcm = np.clip(np.round(mono * 32767.0), -32768, 32767).astype("<i2")
    return audioop.lin2ulaw(pcm.tobytes(), 2)


def read_wav_as_ulaw(path: str | Path) -> bytes:
    """Read a WAV file (see the module docstring for what it accepts) as 8 kHz mono μ-law.

    Raises OSError when the file cannot be read, ValueError when it is not a WAV this reads (the
    message names the format)."""
    fmt, body = parse_wav(Path(path).read_bytes())
    if fmt.tag == MULAW and fmt.channels == 1 and fmt.rate == SAMPLE_RATE and fmt.block_align == 1 and body:
        return body  # already what the call sends
    samples = decode(fmt, body)
    if len(samples) == 0:
        raise ValueError(f"{fmt.name} WAV with no audio in its data chunk")
    return to_ulaw(samples, fmt.rate)
