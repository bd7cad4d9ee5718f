"""Late intelligence: frauds whose number or mule account is listed only after the resident touched it.

Most fraud numbers and mule accounts become known after their calls and transfers (a case
report, a bank's own detection, the ministry's list): the residents they reached can only be
warned by reaching back (回溯预警, docs/detection.md). So the traffic simulator plays a share
of its frauds with a counterpart no list holds yet, and publishes the entry that lists it on
the intelligence input seconds to minutes of wall clock after the first contact with it. The
value is new (drawn like the seeded lists' values and checked against them): listed here, it
was never listed before, and only the reach-back can find who touched it.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import msgspec

from simulator.reference import Intel, unlisted_account, unlisted_number
from simulator.scenarios import EventIds, LateListing, Offer, Scenario
from streams.contracts.reference import IntelKind, IntelUpdate
from streams.contracts.signals import AppReport, BankEvent, BankKind, TelecomEvent

# Either side of the reference loader's one-minute race repair: both paths show up in `make run`.
DELAY_S = (10.0, 180.0)
NUMBER_SOURCES = ("carrier", "case_review", "app_report", "mps_list")  # who confirms a number
ACCOUNT_SOURCES = ("bank", "case_review", "province_centre")  # who confirms a mule account


def listed_late(scenario: Scenario, intel: Intel, rng: random.Random, ids: EventIds,
                delay_s: tuple[float, float] = DELAY_S) -> Scenario:
    """The scenario with its fraud number or its mule account swapped for an unlisted one, and the
    listing of that one after the first call/SMS with it or the first transfer to it. Unchanged
    when it uses neither (a number only inside a listed range, an unlisted payee)."""
    calls = [o.value for o in scenario.offers
             if isinstance(o.value, TelecomEvent) and o.value.counterpart in intel.values[IntelKind.fraud_number]]
    transfers = [o.value for o in scenario.offers if isinstance(o.value, BankEvent)
                 and o.value.kind is BankKind.transfer_out and intel.is_listed_account(o.value.counterparty_account)]
    options = [c for c in (calls, transfers) if c]
    if not options:
        return scenario
    if rng.choice(options) is calls:
        kind, old, first = IntelKind.fraud_number, calls[0].counterpart, calls[0]
        new, source = unlisted_number(intel, first.counterpart_type, rng), rng.choice(NUMBER_SOURCES)
    else:
        kind, old, first = IntelKind.mule_account, transfers[0].counterparty_account, transfers[0]
        new, source = unlisted_account(intel, rng), rng.choice(ACCOUNT_SOURCES)
    delay = round(rng.uniform(*delay_s), 1)
    update = IntelUpdate(event_id=ids("intel"), event_time=first.event_time + timedelta(seconds=delay), kind=kind,
                         value=new, typology=scenario.typology, confidence=round(rng.uniform(0.7, 1.0), 2),
                         source=source)
    listing = LateListing(Offer("in_intel", f"{kind.value}:{new}".encode(), update), first.event_id, delay)
    offers = [_swapped(o, old, new) for o in scenario.offers]
    return dataclasses.replace(scenario, offers=offers, listings=(listing,))


def _swapped(offer: Offer, old: str, new: str) -> Offer:
    """The offer with the counterpart `old` replaced by `new` (keys name the resident's side: unchanged)."""
    value = offer.value
    if isinstance(value, TelecomEvent | AppReport) and value.counterpart == old:
        return dataclasses.replace(offer, value=msgspec.structs.replace(value, counterpart=new))
    if isinstance(value, BankEvent) and value.counterparty_account == old:
        return dataclasses.replace(offer, value=msgspec.structs.replace(value, counterparty_account=new))
    return offer
