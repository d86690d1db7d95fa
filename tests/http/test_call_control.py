"""The carrier's call control as a call uses it, with stand-ins for the media session's parts: a fixed voicemail
message is said by the carrier (where it can: else the call is hung up), then the stream is closed, with
outcome voicemail either way."""

from __future__ import annotations

from typing import Any

import structlog

from gateway.carriers.base import CallControlUnavailable
from gateway.core.codec import PCMU
from gateway.core.events import Hangup, LeaveMessage, StreamStart
from gateway.http.call_control import CallControl

START = StreamStart("MZ1", "CA1", "AC1", {"amd": "1"}, PCMU)
LEAVE = LeaveMessage("Please call Acme Dental back.", "voicemail", "answered by a machine: the carrier leaves it")


class Carrier:
    name = "fake"

    def __init__(self, fails: Exception | None = None) -> None:
        self.said: list[tuple[StreamStart, str]] = []
        self.hung_up: list[StreamStart] = []
        self.fails = fails

    async def say_and_hang_up(self, start: StreamStart, text: str) -> None:
        if self.fails is not None:
            raise self.fails
        self.said.append((start, text))

    async def hang_up(self, start: StreamStart) -> None:
        self.hung_up.append(start)


class CarrierWithoutMessages:
    name = "plain"

    def __init__(self) -> None:
        self.hung_up: list[StreamStart] = []

    async def say_and_hang_up(self, start: StreamStart, text: str) -> None:
        raise CallControlUnavailable("plain cannot say a message")

    async def hang_up(self, start: StreamStart) -> None:
        self.hung_up.append(start)


class Ws:
    closed = False


class Session(CallControl):
    def __init__(self, carrier: Any) -> None:
        self.carrier = carrier
        self.start = START
        self.ws = Ws()  # type: ignore[assignment]
        self.aborted = False
        self.fallback_task = None
        self.outcome: str | None = None
        self.reason = ""
        self.log = structlog.get_logger("test")
        self.hangups: list[Hangup] = []

    def end(self, outcome: str, reason: str) -> None:
        if self.outcome is None:
            self.outcome, self.reason = outcome, reason

    async def hangup(self, action: Hangup) -> None:
        self.end(action.outcome, action.reason)
        self.hangups.append(action)


async def test_the_carrier_says_the_message_then_the_stream_is_closed():
    session = Session(carrier := Carrier())
    await session.leave_message(LEAVE)
    assert carrier.said == [(START, "Please call Acme Dental back.")] and carrier.hung_up == []
    assert session.hangups == [Hangup("voicemail", LEAVE.reason)]  # no second hang-up: the stream is closed
    assert (session.outcome, session.reason) == ("voicemail", LEAVE.reason)


async def test_a_carrier_that_cannot_say_it_hangs_up():
    for carrier in (CarrierWithoutMessages(), Carrier(CallControlUnavailable("no account")), Carrier(OSError("down"))):
        session = Session(carrier)
        await session.leave_message(LEAVE)
        assert carrier.hung_up == [START] and session.outcome == "voicemail"
        assert session.hangups == [Hangup("voicemail", LEAVE.reason)]


async def test_nothing_is_said_once_the_call_has_ended_otherwise():
    session = Session(carrier := Carrier())
    session.end("completed", "caller hung up")
    await session.leave_message(LEAVE)
    assert carrier.said == [] and carrier.hung_up == [] and session.outcome == "completed"
