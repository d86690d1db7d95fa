"""Control-document links: what a token names, and every way one is refused (a fake clock for expiry)."""

from __future__ import annotations

import pytest

from gateway.carriers.base import ControlDocument
from gateway.env import Secret
from gateway.http.control import CONTROL_TTL_S, ControlLinks
from gateway.http.stream_tokens import TokenRejected

SECRET = Secret("control-links-secret-for-tests")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_url_names_its_document_and_only_its_document():
    clock = Clock()
    links = ControlLinks(SECRET, "https://gw.example.com/", clock=clock)
    for document in (ControlDocument("fallback", "c1"), ControlDocument("transfer", "c1", "+14155550100"),
                     ControlDocument("transfer", "c1", "sip:desk@pbx.example.com;transport=tls")):
        url = links.url_for("plivo")(document)
        prefix = "https://gw.example.com/voice/plivo/control/"
        assert url.startswith(prefix) and "/" not in url.removeprefix(prefix)
        assert links.read(url.removeprefix(prefix)) == document


def test_forged_altered_expired_and_foreign_tokens_are_refused():
    clock = Clock()
    links = ControlLinks(SECRET, "https://gw.example.com", clock=clock)
    token = links.token(ControlDocument("transfer", "c1", "+14155550100"))
    body, signature = token.split(".")
    other = ControlLinks(Secret("another-secret-of-another-gateway"), "https://gw.example.com", clock=clock)
    other_body = other.token(ControlDocument("transfer", "c1", "+19005550100")).split(".")[0]
    cases = {
        "malformed": ["", "nodot", "." + signature, body + ".", "x" * 2000 + "." + signature],
        "bad_signature": [other_body + "." + signature,  # another target under our signature
                          other.token(ControlDocument("fallback", "c1")),  # signed with another secret
                          body + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B")],
    }
    for reason, tokens in cases.items():
        for bad in tokens:
            with pytest.raises(TokenRejected) as exc:
                links.read(bad)
            assert exc.value.reason == reason, bad
    clock.now += CONTROL_TTL_S + 2
    with pytest.raises(TokenRejected, match="expired"):
        links.read(token)


def test_a_signed_token_of_the_wrong_shape_is_malformed():
    import base64
    import hashlib
    import hmac

    links = ControlLinks(SECRET, "https://gw.example.com")
    for body in (b"[]", b'{"k":"dial","c":"c1","e":9999999999}', b'{"k":"fallback","c":1,"e":9999999999}',
                 b'{"k":"fallback","c":"c1"}', b"not json"):
        encoded = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
        mac = hmac.new(SECRET.reveal().encode(), b"ctl1|" + encoded.encode(), hashlib.sha256).digest()
        with pytest.raises(TokenRejected, match="malformed"):
            links.read(encoded + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode())
