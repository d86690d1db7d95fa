"""errors.classify: the `error` object of an error event to a severity and a bounded label (§1.6, §5)."""

import pytest

from gateway.core.events import BENIGN, FATAL, RECOVERABLE, TRUNCATE_TOO_LONG, WARNING, UpstreamError
from gateway.realtime.errors import classify

TRUNCATE_MESSAGE = "Audio content of 1200 ms is already shorter than 1500 ms"

CASES = [
    # (error object, severity, label)
    ({"type": "invalid_request_error", "code": "invalid_api_key"}, FATAL, "invalid_api_key"),
    ({"type": "insufficient_quota", "code": "insufficient_quota"}, FATAL, "insufficient_quota"),
    ({"type": "invalid_request_error", "code": "rate_limit_exceeded"}, FATAL, "rate_limit_exceeded"),
    ({"type": "invalid_request_error", "code": "beta_api_shape_disabled"}, FATAL, "beta_api_shape_disabled"),
    ({"type": "invalid_request_error", "code": "model_not_found"}, FATAL, "model_not_found"),
    ({"type": "invalid_request_error", "code": "session_not_found"}, FATAL, "session_not_found"),
    ({"code": "invalid_api_key"}, FATAL, "invalid_api_key"),
    ({"type": "authentication_error"}, FATAL, "authentication_error"),
    ({"type": "authentication_error", "code": None}, FATAL, "authentication_error"),
    ({"type": "authentication_error", "code": ""}, FATAL, "authentication_error"),
    ({"type": "permission_error", "code": None}, FATAL, "permission_error"),
    ({"type": "server_error", "code": "server_error"}, RECOVERABLE, "server_error"),
    ({"code": "server_error"}, RECOVERABLE, "server_error"),
    ({"type": "invalid_request_error", "code": "session_expired"}, RECOVERABLE, "session_expired"),
    ({"type": "server_error", "code": "session_expired"}, RECOVERABLE, "session_expired"),
    ({"type": "server_error"}, RECOVERABLE, "server_error"),
    ({"type": "server_error", "code": "internal_error"}, RECOVERABLE, "server_error"),
    ({"type": "server_error", "code": "upstream_timeout"}, RECOVERABLE, "server_error"),
    ({"type": "invalid_request_error", "code": None, "message": TRUNCATE_MESSAGE}, TRUNCATE_TOO_LONG,
     "invalid_request_error"),
    ({"type": "invalid_request_error", "code": "invalid_value", "message": TRUNCATE_MESSAGE}, TRUNCATE_TOO_LONG,
     "invalid_value"),
    ({"message": TRUNCATE_MESSAGE}, TRUNCATE_TOO_LONG, "unknown"),
    ({"type": "invalid_request_error", "code": "conversation_already_has_active_response"}, BENIGN,
     "conversation_already_has_active_response"),
    ({"type": "invalid_request_error", "code": "response_cancel_not_active"}, BENIGN, "response_cancel_not_active"),
    ({"type": "invalid_request_error", "code": "item_truncate_invalid_item_id"}, BENIGN,
     "item_truncate_invalid_item_id"),
    ({"type": "invalid_request_error", "code": "input_audio_buffer_commit_empty"}, BENIGN,
     "input_audio_buffer_commit_empty"),
    ({"type": "invalid_request_error", "code": "unknown_parameter"}, WARNING, "unknown_parameter"),
    ({"type": "invalid_request_error", "code": "cannot_update_voice"}, WARNING, "cannot_update_voice"),
    ({"type": "invalid_request_error", "code": "something_new_2027"}, WARNING, "something_new_2027"),
    ({"type": "invalid_request_error"}, WARNING, "invalid_request_error"),
    # a code on an auth type is read by its code: an unknown one is only a warning
    ({"type": "authentication_error", "code": "something_new_2027"}, WARNING, "something_new_2027"),
    ({}, WARNING, "unknown"),
    ({"type": None, "code": None, "message": "Something went wrong."}, WARNING, "unknown"),
    ({"type": "", "code": ""}, WARNING, "unknown"),
    ({"type": 401, "code": 401}, WARNING, "unknown"),
    ({"type": ["server_error"], "code": {"c": "invalid_api_key"}}, WARNING, "unknown"),
]


@pytest.mark.parametrize(("error", "severity", "label"), CASES, ids=lambda v: repr(v)[:60])
def test_classify_table(error, severity, label):
    result = classify(error)
    assert type(result) is UpstreamError
    assert (result.severity, result.label) == (severity, label)


@pytest.mark.parametrize("error", [None, "Internal server error", 500, ["server_error"], ("x",), True])
def test_non_dict_error_is_an_unknown_warning(error):
    assert classify(error) == UpstreamError(WARNING, "unknown", None, None, "", None)


def test_message_code_type_and_param_are_carried_through():
    error = {"type": "invalid_request_error", "code": "unknown_parameter",
             "message": "Unknown parameter: 'session.temperature'.", "param": "session.temperature",
             "event_id": "evt_1"}
    assert classify(error) == UpstreamError(WARNING, "unknown_parameter", "unknown_parameter",
                                            "invalid_request_error", "Unknown parameter: 'session.temperature'.",
                                            "session.temperature")


@pytest.mark.parametrize(("error", "message", "param"), [
    ({"message": None, "param": None}, "", None),
    ({"message": "", "param": ""}, "", None),
    ({"param": 3}, "", None),
    ({"message": 42}, "42", None),
])
def test_missing_message_and_param(error, message, param):
    result = classify(error)
    assert (result.message, result.param) == (message, param)


def test_truncate_too_long_wins_over_the_code():
    # The message is the only sign of it (no code recorded, §1.6), whatever else came with it.
    for code in ("server_error", "session_expired", "invalid_api_key", "item_truncate_invalid_item_id"):
        assert classify({"code": code, "message": TRUNCATE_MESSAGE}).severity == TRUNCATE_TOO_LONG


SECRETS = [
    {"type": "invalid_request_error", "code": "invalid_api_key",
     "message": "Incorrect API key provided: sk-proj-abc123SECRET.", "param": "sk-proj-abc123SECRET"},
    {"type": "authentication_error", "message": "Bearer sk-live-SECRET rejected", "param": "authorization"},
    {"type": "server_error", "code": "boom", "message": "token=SECRET"},
    {"message": "api-key: SECRET"},
    {"code": "x" * 300, "message": "SECRET"},
    *[error for error, _, _ in CASES],
]


@pytest.mark.parametrize("error", SECRETS, ids=lambda v: repr(v)[:60])
def test_label_is_what_the_server_sent_and_nothing_more(error):
    result = classify(error)
    assert result.label in [error.get("code"), error.get("type"), "unknown"]
    assert "SECRET" not in result.label
    assert result.code is None or result.code == error.get("code")
    assert result.error_type is None or result.error_type == error.get("type")
