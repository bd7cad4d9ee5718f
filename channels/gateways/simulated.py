"""The embedded gateway: plausible results and delays, reproducible from a seed.

Each action's result depends only on (seed, outcome id), never on processing order, so
a run is reproducible across restarts and worker counts. The rates are invented but
shaped like the field reports: SMS and app pushes mostly arrive; people answer a human
hotline more than a robot; police at the door almost always reach the person and
usually dissuade; romance and investment victims are the hardest to talk round; the
elderly answer more calls but are harder to convince, the young screen unknown numbers.

Actions carry no age band (the contract keeps personal data minimal), so the simulator
draws a stable synthetic one per person id, with the city's age pyramid.
"""

from __future__ import annotations

import hashlib
import random
import time

from channels.gateways.base import GatewayReply
from channels.metrics import GATEWAY_CALLS
from streams.contracts.actions import Action, Channel, Result
from streams.contracts.common import Typology
from streams.contracts.reference import AgeBand

REACH = {  # the channel reaches the person at all
    Channel.sms: 0.97,
    Channel.app_push: 0.88,
    Channel.ai_voice: 0.62,
    Channel.hotline_call: 0.72,
    Channel.police_visit: 0.95,
}
DISSUADE = {  # reached by voice or in person: talked out of it (SMS and pushes cannot tell)
    Channel.ai_voice: 0.50,
    Channel.hotline_call: 0.72,
    Channel.police_visit: 0.90,
}
TYPOLOGY_SHIFT = {
    Typology.impersonate_police: 0.05,  # a real officer's voice breaks the fake one's spell
    Typology.fake_customer_service: 0.05,
    Typology.fake_loan: 0.0,
    Typology.order_brushing: -0.05,
    Typology.investment: -0.15,  # victims believe in the gains they were shown
    Typology.romance: -0.20,  # emotional ties are the hardest to cut
    Typology.other: 0.0,
    Typology.unknown: 0.0,
}
AGE_REACH_SHIFT = {
    AgeBand.under_18: -0.08, AgeBand.age_18_25: -0.12, AgeBand.age_26_40: -0.05, AgeBand.age_41_59: 0.0,
    AgeBand.age_60_69: 0.08, AgeBand.age_70_plus: 0.05, AgeBand.unknown: 0.0,
}
AGE_DISSUADE_SHIFT = {
    AgeBand.under_18: 0.05, AgeBand.age_18_25: 0.0, AgeBand.age_26_40: 0.0, AgeBand.age_41_59: 0.0,
    AgeBand.age_60_69: -0.05, AgeBand.age_70_plus: -0.10, AgeBand.unknown: 0.0,
}
AGE_PYRAMID = (  # share of residents by band; the shares add up to 1
    (AgeBand.under_18, 0.18), (AgeBand.age_18_25, 0.10), (AgeBand.age_26_40, 0.22),
    (AgeBand.age_41_59, 0.27), (AgeBand.age_60_69, 0.13), (AgeBand.age_70_plus, 0.10),
)
DELAY_S = {  # how long the gateway takes to answer (compressed for visits: minutes in the field)
    Channel.sms: (0.05, 0.3),
    Channel.app_push: (0.05, 0.2),
    Channel.ai_voice: (0.5, 2.0),
    Channel.hotline_call: (1.0, 4.0),
    Channel.police_visit: (2.0, 6.0),
}
FAILURE = 0.01  # the gateway itself fails
UNREACHED = {
    Channel.sms: "handset off or out of coverage",
    Channel.app_push: "app not installed or offline",
    Channel.ai_voice: "no answer",
    Channel.hotline_call: "no answer after three rings",
    Channel.police_visit: "nobody at the address",
}


def synthetic_age_band(person_id: str) -> AgeBand:
    draw = int.from_bytes(hashlib.sha256(person_id.encode()).digest()[:8], "big") / 2**64
    for band, share in AGE_PYRAMID:
        if draw < share:
            return band
        draw -= share
    return AgeBand.age_70_plus


def simulate(action: Action, outcome_id: str, seed: int) -> tuple[GatewayReply, float]:
    """The result and the delay for one action attempt: a pure function of its inputs."""
    return simulate_contact(action.channel, action.typology, synthetic_age_band(action.person_id), outcome_id, seed)


def simulate_contact(channel: Channel, typology: Typology, age: AgeBand, outcome_id: str, seed: int
                     ) -> tuple[GatewayReply, float]:
    """The same from what a desk task shows (simulator/desk_worker.py works tasks with these odds)."""
    rng = random.Random(f"{seed}:{outcome_id}")
    low, high = DELAY_S[channel]
    delay = rng.uniform(low, high)
    if rng.random() < FAILURE:
        return GatewayReply(Result.failed, f"simulated {channel.value} gateway error"), delay
    if rng.random() >= _clamp(REACH[channel] + AGE_REACH_SHIFT[age]):
        return GatewayReply(Result.unreachable, UNREACHED[channel]), delay
    if channel not in DISSUADE:
        return GatewayReply(Result.delivered, "delivered to the handset"), delay
    if rng.random() < _clamp(DISSUADE[channel] + TYPOLOGY_SHIFT[typology] + AGE_DISSUADE_SHIFT[age]):
        return GatewayReply(Result.dissuaded, "the person agreed to stop and not transfer"), delay
    if channel is Channel.police_visit or rng.random() < 0.5:
        return GatewayReply(Result.refused, "the person did not accept the warning"), delay
    return GatewayReply(Result.answered, "answered and listened, no commitment"), delay


def _clamp(p: float) -> float:
    return min(0.98, max(0.02, p))


class SimulatedGateway:
    name = "simulated"

    def __init__(self, channel: Channel, seed: int, time_scale: float = 1.0, concurrency: int = 1):
        self.channel, self.seed, self.time_scale = channel, seed, time_scale
        self.concurrency = concurrency  # officers and operators at work at once: send is a pure function and a sleep

    def send(self, action: Action, outcome_id: str) -> GatewayReply:
        reply, delay = simulate(action, outcome_id, self.seed)
        time.sleep(delay * self.time_scale)
        status = "error" if reply.result is Result.failed else "ok"
        GATEWAY_CALLS.labels(self.channel.value, self.name, status).inc()
        return reply

    def worst_case_s(self) -> float:
        return DELAY_S[self.channel][1] * self.time_scale

    def close(self) -> None:
        pass
