"""The fallback's TwiML and which credentials the REST call uses (the REST call itself: tests/resilience)."""

from gateway.config import Fallback, Secret
from gateway.telephony.twilio_rest import TwilioRest, fallback_twiml

ACCOUNT = "AC" + "12" * 16
OTHER = "AC" + "34" * 16


def test_fallback_twiml_apologises_and_hangs_up_or_dials():
    apology = fallback_twiml(Fallback(message="Sorry & goodbye."))
    assert apology == ('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Sorry &amp; goodbye.</Say>'
                       "<Hangup /></Response>")
    assert "<Dial>+14155550100</Dial>" in fallback_twiml(Fallback(number="+14155550100"))


def test_credentials_need_the_auth_token_and_an_account():
    assert TwilioRest(Fallback(account_sid=ACCOUNT), None).credentials(None) is None  # webhooks unsigned
    token = Secret("auth-token-123456")
    assert TwilioRest(Fallback(), token).credentials(None) is None
    assert TwilioRest(Fallback(), token).credentials("not-an-account") is None
    assert TwilioRest(Fallback(), token).credentials(OTHER) == (OTHER, "auth-token-123456", OTHER)
    assert TwilioRest(Fallback(account_sid=ACCOUNT), token).credentials(OTHER) == (
        ACCOUNT, "auth-token-123456", ACCOUNT)
    keyed = Fallback(account_sid=ACCOUNT, api_key_sid="SK" + "56" * 16, api_key_secret=Secret("key-secret"))
    assert TwilioRest(keyed, token).credentials(OTHER) == ("SK" + "56" * 16, "key-secret", ACCOUNT)
