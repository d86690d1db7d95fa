"""Which credentials the REST call uses, and what it refuses before any request (the REST call itself
against a loopback fake: tests/resilience)."""

import pytest

from gateway.carriers.base import CallControlUnavailable
from gateway.carriers.twilio.rest import TwilioRest
from gateway.carriers.twilio.settings import TwilioSettings
from gateway.env import Secret

ACCOUNT = "AC" + "12" * 16
OTHER = "AC" + "34" * 16
CALL = "CA" + "ab" * 16
TOKEN = Secret("auth-token-123456")


def test_credentials_need_the_auth_token_and_an_account():
    assert TwilioRest(TwilioSettings(account_sid=ACCOUNT)).credentials(None) is None  # webhooks unsigned
    assert TwilioRest(TwilioSettings(auth_token=TOKEN)).credentials(None) is None
    assert TwilioRest(TwilioSettings(auth_token=TOKEN)).credentials("not-an-account") is None
    assert TwilioRest(TwilioSettings(auth_token=TOKEN)).credentials(OTHER) == (OTHER, "auth-token-123456", OTHER)
    assert TwilioRest(TwilioSettings(auth_token=TOKEN, account_sid=ACCOUNT)).credentials(OTHER) == (
        ACCOUNT, "auth-token-123456", ACCOUNT)
    keyed = TwilioSettings(auth_token=TOKEN, account_sid=ACCOUNT, api_key_sid="SK" + "56" * 16,
                           api_key_secret=Secret("key-secret"))
    assert TwilioRest(keyed).credentials(OTHER) == ("SK" + "56" * 16, "key-secret", ACCOUNT)


@pytest.mark.parametrize(("settings", "call_sid", "account_hint", "message"), [
    (TwilioSettings(account_sid=ACCOUNT), CALL, None, "no Twilio REST credentials"),
    (TwilioSettings(auth_token=TOKEN), CALL, None, "no Twilio REST credentials"),
    (TwilioSettings(auth_token=TOKEN), "CA1", ACCOUNT, "not a Twilio call SID"),
])
async def test_update_is_refused_before_any_request(settings, call_sid, account_hint, message):
    rest = TwilioRest(settings)
    with pytest.raises(CallControlUnavailable, match=message):
        await rest.update(call_sid, "<Response/>", account_hint)
    assert rest._http is None  # no session was opened
    await rest.close()
