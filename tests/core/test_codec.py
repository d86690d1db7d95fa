"""Codecs: bytes per millisecond, and the size of base64 audio measured from its length alone."""

import base64

from gateway.core.codec import PCMA, PCMU, b64_audio_ms, b64_size, l16


def test_b64_size_matches_the_decoded_bytes():
    for size in range(801):
        payload = base64.b64encode(bytes(i % 251 for i in range(size))).decode()
        assert b64_size(payload) == size == len(base64.b64decode(payload)), size
        assert b64_audio_ms(payload) == size / 8, size
        assert b64_audio_ms(payload, 32.0) == size / 32, size


def test_b64_size_of_nothing():
    assert b64_size("") == 0
    assert b64_audio_ms("") == 0


def test_a_20_ms_frame_of_each_codec():
    assert b64_audio_ms(base64.b64encode(b"\xff" * 160).decode(), PCMU.bytes_per_ms) == 20.0
    assert b64_audio_ms(base64.b64encode(b"\xd5" * 160).decode(), PCMA.bytes_per_ms) == 20.0
    assert b64_audio_ms(base64.b64encode(b"\x00" * 640).decode(), l16(16000).bytes_per_ms) == 20.0


def test_bytes_per_ms():
    assert (PCMU.name, PCMU.sample_rate, PCMU.bytes_per_ms, PCMU.g711) == ("pcmu", 8000, 8.0, True)
    assert (PCMA.name, PCMA.sample_rate, PCMA.bytes_per_ms, PCMA.g711) == ("pcma", 8000, 8.0, True)
    wide = l16(16000)
    assert (wide.name, wide.sample_rate, wide.bytes_per_ms, wide.g711) == ("l16", 16000, 32.0, False)
    assert l16(8000).bytes_per_ms == 16.0
    assert l16(24000).bytes_per_ms == 48.0
