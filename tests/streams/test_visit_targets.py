"""Where a visit goes: the person's station, else a duty desk that exists (issue 15, item 4).

Pure planning (streams.dissuasion), no servers: tests/agents/test_route.py sends the same
case through a real worker, tests/agents/test_escalation_rules.py through retries and
supervisor visits.
"""

from __future__ import annotations

import pytest

from dissuasion_builders import JURISDICTION, alert, new_person
from streams.contracts.actions import Action, Channel
from streams.contracts.alerts import Jurisdiction, Tier
from streams.dissuasion import plan_for_alert
from streams.routing import get_partners, get_routing

ROUTING, PARTNERS = get_routing(), get_partners()
# What enrich writes for a person not in the registry whose cell and bank branch are not registered either.
UNPLACED = Jurisdiction(county="unknown", station="unknown", grid="unknown")


def visit_for(a) -> Action:
    [visit] = [p.action for p in plan_for_alert(a, ROUTING, PARTNERS)[1] if p.action.channel is Channel.police_visit]
    return visit


def test_an_unplaced_persons_emergency_visit_goes_to_the_city_centre_duty_desk():
    a = alert(new_person(), Tier.funds_warning, jurisdiction=UNPLACED, identity_resolved=False)
    visit = visit_for(a)
    assert (visit.target.station, visit.target.station_reason) == (
        "ZK-CENTRE-DUTY", "no registered home, cell or branch, county unknown: city centre duty desk")
    assert visit.target.station == ROUTING.duty_desks.city_centre  # a desk routing.yaml has, not "unknown"
    assert visit.priority == 0 and visit.jurisdiction == UNPLACED  # the evidence is kept as it was


def test_an_unplaced_person_in_a_known_county_goes_to_that_countys_duty_desk():
    where = Jurisdiction(county="ZK03", station="unknown", grid="unknown")
    visit = visit_for(alert(new_person(), Tier.funds_warning, jurisdiction=where, identity_resolved=False))
    assert (visit.target.station, visit.target.station_reason) == (
        "ZK03-DUTY", "no registered home, cell or branch: county duty desk")
    assert ROUTING.duty_desks.counties["ZK03"] == "ZK03-DUTY"


def test_a_county_without_a_duty_desk_goes_to_the_city_centre_and_says_so():
    where = Jurisdiction(county="ZK99", station="", grid="unknown")
    visit = visit_for(alert(new_person(), Tier.high, jurisdiction=where))
    assert (visit.target.station, visit.target.station_reason) == (
        "ZK-CENTRE-DUTY", "no registered home, cell or branch, county ZK99 has no duty desk: city centre duty desk")


@pytest.mark.parametrize("tier", [Tier.high, Tier.funds_warning])
def test_a_registered_person_is_still_visited_by_their_own_station(tier):
    visit = visit_for(alert(new_person(), tier))
    assert (visit.target.station, visit.target.grid, visit.target.station_reason) == (
        JURISDICTION.station, JURISDICTION.grid, None)


def test_a_person_placed_by_cell_or_branch_only_goes_to_that_station():
    # Not in the registry, but a registered cell or branch gave a station: no desk needed.
    where = Jurisdiction(county="ZK02", station="ZK02-PS04", grid="unknown")
    visit = visit_for(alert(new_person(), Tier.funds_warning, jurisdiction=where, identity_resolved=False))
    assert (visit.target.station, visit.target.station_reason) == ("ZK02-PS04", None)


def test_an_unplaced_person_without_a_phone_is_escalated_to_a_visit_at_the_duty_desk():
    # No phone: no call can reach them, so the visit tier plans it; it too must go to a desk that exists.
    tier, planned = plan_for_alert(alert(new_person(), Tier.low, phone=None, jurisdiction=UNPLACED), ROUTING, PARTNERS)
    assert tier is Tier.high
    assert [(p.action.channel, p.action.target.station) for p in planned] == [(Channel.police_visit, "ZK-CENTRE-DUTY")]
