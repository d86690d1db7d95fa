"""What a Realtime `error` event means for the call: the classification lives here, in the face.

The core never reads an error code or message: it gets an `UpstreamError` with a severity
(protocol-reference.md §1.6 and §5): fatal (auth, quota, model: another session would fail the same
way), recoverable (this session is lost; a new one can carry on), truncate-too-long (our truncate
asked for more audio than the item had), benign (an expected race) or warning (anything else).
"""

from __future__ import annotations

from typing import Any

from gateway.core.events import BENIGN, FATAL, RECOVERABLE, TRUNCATE_TOO_LONG, WARNING, UpstreamError

FATAL_ERROR_CODES = frozenset({
    "invalid_api_key", "insufficient_quota", "rate_limit_exceeded", "beta_api_shape_disabled",
    "model_not_found", "session_not_found",
})
FATAL_ERROR_TYPES = frozenset({"authentication_error", "permission_error"})
# The session ends, but a new one can carry the call on (when reconnects are enabled; fatal otherwise).
RECOVERABLE_ERROR_CODES = frozenset({"server_error", "session_expired"})
BENIGN_ERROR_CODES = frozenset({
    "conversation_already_has_active_response", "response_cancel_not_active",
    "item_truncate_invalid_item_id", "input_audio_buffer_commit_empty",
})
TRUNCATE_TOO_LONG_MESSAGE = "already shorter than"
# Older servers sent this race with `code: null` (protocol-reference.md §1.6): known by its message.
BENIGN_MESSAGES = ("already has an active response",)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def classify(error: Any) -> UpstreamError:
    """The `error` object of an error event, classified; `label` is bounded by the metrics layer."""
    if not isinstance(error, dict):
        error = {}
    code, etype = _text(error.get("code")), _text(error.get("type"))
    message = str(error.get("message") or "")
    param = _text(error.get("param"))
    label = code or etype or "unknown"
    if TRUNCATE_TOO_LONG_MESSAGE in message:
        severity = TRUNCATE_TOO_LONG
    elif code in RECOVERABLE_ERROR_CODES or etype == "server_error":
        severity = RECOVERABLE
        label = code if code in RECOVERABLE_ERROR_CODES else "server_error"  # also the reconnect reason
    elif code in FATAL_ERROR_CODES or (code is None and etype in FATAL_ERROR_TYPES):
        severity = FATAL
    elif code in BENIGN_ERROR_CODES or (code is None and any(m in message for m in BENIGN_MESSAGES)):
        severity = BENIGN
    else:
        severity = WARNING
    return UpstreamError(severity, label, code, etype, message, param)
