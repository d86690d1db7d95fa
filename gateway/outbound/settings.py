"""The settings of outbound calls (`POST /calls`), read with the rest at start-up (`config.load_settings`):

    OUTBOUND_MAX_PER_MINUTE     calls placed per sliding minute, per process (0: no limit)
    OUTBOUND_ALLOWED_PREFIXES   comma-separated E.164 prefixes a destination must start with (+1,+44);
                                empty: any E.164 number
    OUTBOUND_RING_TIMEOUT_S     how long a placed call rings before it counts as not answered (5 to 600)
    OUTBOUND_CARRIER            the carrier that places the calls (one that can: twilio)

The call API itself is on only with ADMIN_TOKEN set (its bearer token).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.carriers import registry
from gateway.carriers.base import Carrier
from gateway.env import CollectingEnv

E164_PREFIX = re.compile(r"^\+[1-9][0-9]{0,14}$")
DEFAULT_RING_TIMEOUT_S = 30


@dataclass(frozen=True)
class OutboundSettings:
    max_per_minute: int = 0  # 0: no limit
    allowed_prefixes: tuple[str, ...] = ()  # empty: any E.164 number
    ring_timeout_s: int = DEFAULT_RING_TIMEOUT_S
    carrier: str = "twilio"

    def allows(self, number: str) -> bool:
        """`number` (E.164) starts with one of the allowed prefixes (True when no list is set)."""
        return not self.allowed_prefixes or number.startswith(self.allowed_prefixes)


def dialing_carriers() -> list[str]:
    """The registered carriers that implement `Carrier.place_call`."""
    return sorted(name for name, cls in registry.CARRIERS.items() if cls.place_call is not Carrier.place_call)


def read(env: CollectingEnv) -> OutboundSettings:
    """Read and check the OUTBOUND_* variables; every problem is reported through `env.error`, naming it."""
    per_minute = env.int("OUTBOUND_MAX_PER_MINUTE", 0, 0, 100000) or 0
    ring = env.int("OUTBOUND_RING_TIMEOUT_S", DEFAULT_RING_TIMEOUT_S, 5, 600) or DEFAULT_RING_TIMEOUT_S
    prefixes = tuple(p.strip() for p in (env.str("OUTBOUND_ALLOWED_PREFIXES") or "").split(",") if p.strip())
    bad = [p for p in prefixes if not E164_PREFIX.match(p)]
    if bad:
        env.error(f"OUTBOUND_ALLOWED_PREFIXES must be comma-separated E.164 prefixes such as +1,+44 "
                  f"(got {', '.join(repr(p) for p in bad[:5])})")
        prefixes = ()
    carrier = env.str("OUTBOUND_CARRIER", "twilio") or "twilio"
    able = dialing_carriers()
    if carrier not in able:
        known = carrier in registry.CARRIERS
        env.error(f"OUTBOUND_CARRIER must be a carrier that can place calls: {', '.join(able)} (got {carrier!r}"
                  f"{': it cannot place calls yet' if known else ''})")
        carrier = able[0] if able else "twilio"
    return OutboundSettings(max_per_minute=per_minute, allowed_prefixes=prefixes, ring_timeout_s=ring,
                            carrier=carrier)
