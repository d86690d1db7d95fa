"""Per-frame stamps hidden in the audio itself, so latency is measured per frame and not guessed.

A stamp is the first 15 bytes of a μ-law frame (exactly the first 20 base64 characters, so it can be
written and read without touching the rest of the payload). Each byte carries 5 bits as a μ-law code
of the lowest segment (0x70-0x7F, 0xF0-0xFF: at most ±120 of 32767), far below any VAD threshold.

Fields: kind and flags, a small extra field (the response index, for agent audio), call id (10 bits),
sequence number (20 bits), send time (30 bits of 10 µs on CLOCK_MONOTONIC, which every process of the
machine shares: `time.monotonic()`) and a check value.
"""

from __future__ import annotations

import binascii
import time
from typing import NamedTuple

STAMP_BYTES = 15
STAMP_CHARS = 20  # base64 of STAMP_BYTES, no padding since 15 is a multiple of 3
TICK_S = 1e-5
_TIME_MASK = (1 << 30) - 1
MAX_CALLS = 1 << 10

KIND_IN = 1  # caller -> upstream (written by the caller, read by the echo line)
KIND_OUT = 2  # upstream -> caller (written by the echo line, read by the caller)
FLAG_STALE = 4  # agent audio sent after speech_started cut its response: the target may drop it
FLAG_LAST = 8  # the last delta of a response that played out

_ENC = bytes(0x70 | (v & 15) | (0x80 if v & 16 else 0) for v in range(256))  # only 0..31 are used
_DEC = bytes(((b & 15) | (16 if b & 0x80 else 0)) if (b & 0x70) == 0x70 else 255 for b in range(256))
# A 10-bit value as two stamp bytes, and the sum of its two 5-bit digits (for the check value).
_PAIR = [bytes((_ENC[v >> 5], _ENC[v & 31])) for v in range(1024)]
_PAIR_SUM = [(v >> 5) + (v & 31) for v in range(1024)]


class Stamp(NamedTuple):
    kind: int
    flags: int
    call: int
    seq: int
    ticks: int
    extra: int


def now_ticks(t: float | None = None) -> int:
    """The stamp clock: `time.monotonic()` in 10 µs ticks, modulo 2**30."""
    return int((time.monotonic() if t is None else t) / TICK_S) & _TIME_MASK


def elapsed_ms(sent_ticks: int, t: float) -> float:
    """Milliseconds from a stamp's send time to monotonic time `t` (wraps after ~3 hours)."""
    return ((now_ticks(t) - sent_ticks) & _TIME_MASK) * (TICK_S * 1000.0)


def encode(kind: int, flags: int, call: int, seq: int, ticks: int, extra: int = 0) -> str:
    """The 20 base64 characters of a stamp. Bytes, 5 bits each: kind|flags, extra, call (2), seq (4),
    ticks (6), check."""
    a = (kind | flags) << 5 | (extra & 31)
    call &= 1023
    s1, s2 = (seq >> 10) & 1023, seq & 1023
    t1, t2, t3 = (ticks >> 20) & 1023, (ticks >> 10) & 1023, ticks & 1023
    ps = _PAIR_SUM
    check = (ps[a] + ps[call] + ps[s1] + ps[s2] + ps[t1] + ps[t2] + ps[t3]) & 31
    pair = _PAIR
    raw = pair[a] + pair[call] + pair[s1] + pair[s2] + pair[t1] + pair[t2] + pair[t3] + _ENC[check:check + 1]
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def decode(payload: str) -> Stamp | None:
    """The stamp at the start of a base64 μ-law payload; None when there is none."""
    try:
        v = binascii.a2b_base64(payload[:STAMP_CHARS]).translate(_DEC)
    except binascii.Error:
        return None
    if len(v) != STAMP_BYTES or max(v) > 31 or sum(v[:14]) & 31 != v[14]:
        return None
    return Stamp(v[0] & 3, v[0] & ~3, v[2] << 5 | v[3], v[4] << 15 | v[5] << 10 | v[6] << 5 | v[7],
                 v[8] << 25 | v[9] << 20 | v[10] << 15 | v[11] << 10 | v[12] << 5 | v[13], v[1])

