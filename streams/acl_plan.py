"""Who may do what on the broker: principals and ACLs derived from topics.yaml and banks.yaml.

Every topic names its producers and consumers; each of those parties is a principal (one per
platform process, one per partner organisation and feed). A producer gets WRITE on the topic,
a consumer READ, and a consumer group READ on the groups its code joins. Nothing else: no
principal but the broker's super user (User:admin) may create, delete or alter topics or ACLs.

No transactional producer is used, so there is no TRANSACTIONAL_ID ACL; the producers are
idempotent, and since Kafka 3.0 WRITE on the topic is all an idempotent producer needs
(KIP-679: IDEMPOTENT_WRITE on the cluster is no longer asked for).

`antifraud acl plan` prints the plan (sorted, so the same files give the same text);
docs/security.md holds it and a test keeps it fresh. `antifraud acl apply` puts it on a
broker (streams.acl_apply).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streams.broker_auth import ADMIN
from streams.catalog import Catalog
from streams.routing import Partners


class PlanError(ValueError):
    """topics.yaml names a producer or consumer the plan cannot map to a principal."""


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: `principal` may `operation` on the `resource` called `name`."""

    principal: str
    resource: Literal["group", "topic"]
    name: str
    operation: Literal["DESCRIBE", "READ", "WRITE"]
    pattern: Literal["literal", "prefixed"] = "literal"

    def line(self) -> str:
        shown = f"{self.name}*" if self.pattern == "prefixed" else self.name
        return f"  {self.operation:<8} {self.resource:<5} {shown}"


@dataclass(frozen=True)
class Principal:
    name: str  # the SCRAM user name; the broker sees User:<name>
    runs_as: str  # what connects with it: an antifraud command, or the partner's own system


@dataclass(frozen=True)
class AclPlan:
    principals: dict[str, Principal]
    grants: tuple[Grant, ...]  # sorted
    gaps: tuple[str, ...]  # where topics.yaml does not yet allow least privilege

    def of(self, principal: str) -> list[Grant]:
        return [g for g in self.grants if g.principal == principal]

    def lines(self) -> list[str]:
        out = [
            "# Generated from topics.yaml and banks.yaml by `antifraud acl plan`; do not edit.",
            f"# {len(self.principals)} principals, {len(self.grants)} ACLs, each an ALLOW for one principal;",
            "# the broker denies whatever no ACL allows (allow.everyone.if.no.acl.found=false).",
            f"# Only User:{ADMIN} (super user) creates, deletes or alters topics and ACLs.",
        ]
        for name in sorted(self.principals):
            out += ["", f"User:{name}  ({self.principals[name].runs_as})"]
            out += [g.line() for g in self.of(name)]
        if self.gaps:
            out += ["", "# Gaps (not yet least privilege):"] + [f"# - {gap}" for gap in self.gaps]
        return out

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"


def principal_name(*parts: str) -> str:
    """`bank`, `ICBC` -> `bank-icbc`: lower case, hyphens (carrier codes and channels have underscores)."""
    return "-".join(parts).lower().replace("_", "-")


# Platform parties that topics.yaml names by module, and external ones by their system.
# Every stream stage runs in one Faust worker process, one consumer group: one principal.
_NAMED_PARTIES = {
    "faust": "stream-worker",
    "oversight/ledger.py": "ledger",
    "oversight/audit_worker.py": "audit",
    "oversight/followup.py": "followup",
    "oversight/desk/api.py": "console",  # the desk's outcome API is served by the console process
    "simulator/traffic.py": "simulator",
    "simulator/reference.py": "simulator",
    "operators": "operator",
    "金钟罩 app backend": "feed-app",
    "96110 hotline system": "feed-hotline",
    "police case system": "feed-cases",
    "intelligence sources": "feed-intel",
    "police stations' follow-up system": "station-followup",
    "tests": None,  # tests read as the admin
}

_RUNS_AS = {
    "stream-worker": "antifraud worker: every Faust stage, ingest to escalate",
    "ledger": "antifraud ledger, in antifraud oversight",
    "audit": "antifraud audit, in antifraud oversight",
    "followup": "antifraud followup, in antifraud oversight",
    "console": "antifraud console: the reach-back backlog figure",
    "operator": "antifraud dead-letters list and replay",
    "simulator": "antifraud simulate, development only: plays every feed",
    "feed-app": "the 金钟罩 app backend",
    "feed-hotline": "the 96110 hotline system",
    "feed-cases": "the police case system",
    "feed-intel": "the intelligence sources",
    "station-followup": "the police stations' follow-up system",
}


def build_plan(catalog: Catalog, partners: Partners) -> AclPlan:
    principals: dict[str, Principal] = {}
    grants: set[Grant] = set()
    channels = _channels(catalog)

    def add(name: str, runs_as: str | None = None) -> str:
        principals.setdefault(name, Principal(name, runs_as or _RUNS_AS[name]))
        return name

    def parties(party: str, topic_id: str, consuming: bool) -> list[str]:
        label = party.split(" (")[0].strip()
        if label.startswith("agents/") or label == "faust":
            return [add("stream-worker")]
        if label == "channels/worker.py":
            chosen = [topic_id.removeprefix("actions_")] if consuming else channels
            return [add(principal_name("channel", c), f"antifraud channel-worker --channel {c}") for c in chosen]
        if label in ("banks", *partners.banks):
            codes = partners.banks if label == "banks" else [label]
            return [add(principal_name("bank", b), f"bank {b}: antifraud bank-consumer --bank {b}") for b in codes]
        if label == "carriers":
            return [add(principal_name("carrier", c), f"carrier {c}: antifraud carrier-consumer --carrier {c}")
                    for c in partners.carriers]
        if label == "carrier feeds":
            return [add(principal_name("feed-telecom", c), f"carrier {c}'s call and SMS record feed")
                    for c in partners.carriers]
        if label == "bank feeds":
            return [add(principal_name("feed-bank", b), f"bank {b}'s transfer feed") for b in partners.banks]
        if label == "carrier and bank registries":
            return [add(principal_name("registry", code), f"{code}'s subscriber or account registry feed")
                    for code in (*partners.carriers, *partners.banks)]
        if label in _NAMED_PARTIES:
            name = _NAMED_PARTIES[label]
            return [] if name is None else [add(name)]
        raise PlanError(f"topics.yaml: topic {topic_id!r} names {party!r}, which the ACL plan cannot map to a "
                        "principal (add it to streams/acl_plan.py)")

    for spec in catalog.topics.values():
        for party in spec.producers:
            grants.update(Grant(p, "topic", spec.name, "WRITE") for p in parties(party, spec.id, consuming=False))
        for party in spec.consumers:
            grants.update(Grant(p, "topic", spec.name, "READ") for p in parties(party, spec.id, consuming=True))

    code_grants = _code_grants(catalog, partners, channels)
    for grant in code_grants:  # the console, and whoever topics.yaml may one day stop naming
        if grant.principal not in principals:
            add(grant.principal)
    grants.update(code_grants)
    return AclPlan(dict(sorted(principals.items())), tuple(sorted(grants)), _gaps(catalog, grants))


def _channels(catalog: Catalog) -> list[str]:
    """The channels a generic channel worker serves: the action topics channels/worker.py consumes."""
    return sorted(spec.id.removeprefix("actions_") for spec in catalog.topics.values()
                  if any(c.startswith("channels/worker.py") for c in spec.consumers))


def _code_grants(catalog: Catalog, partners: Partners, channels: list[str]) -> set[Grant]:
    """What topics.yaml does not say: the consumer groups each process's code uses, and the
    offsets some processes only look at (DESCRIBE: committed offsets and watermarks, no records)."""
    app = catalog.app_id
    grants = {
        # The Faust app's group; streams/faust_transport.py's GapCheck reader.
        Grant("stream-worker", "group", app, "READ"),
        Grant("stream-worker", "group", f"{app}-gap-check", "READ"),
        # oversight/ledger.py; `antifraud ledger rebuild` reads into a group of its own each time.
        Grant("ledger", "group", f"{app}-ledger", "READ"),
        Grant("ledger", "group", f"{app}-ledger-rebuild-", "READ", "prefixed"),
        Grant("audit", "group", f"{app}-audit", "READ"),
        Grant("operator", "group", f"{app}-dead-letters", "READ"),  # streams/redrive.py
        Grant("station-followup", "group", "station-followup", "READ"),
        # The console's reach-back backlog (oversight/backlog.py): the workers' commits on one topic.
        Grant("console", "group", app, "DESCRIBE"),
        Grant("console", "topic", catalog.topic("intel_reach_back").name, "DESCRIBE"),
        # The audit waits until the ledger has committed past the ends (oversight/audit_worker.py LedgerProgress).
        Grant("audit", "group", f"{app}-ledger", "DESCRIBE"),
        Grant("audit", "group", f"{app}-end-offsets", "DESCRIBE"),  # streams/kafka.py end_offsets' reader
        Grant("operator", "group", f"{app}-end-offsets", "DESCRIBE"),
    }
    for spec in catalog.topics.values():
        if spec.contract not in ("AuditRecord", "Ingested[CaseReport]") and "oversight/ledger.py" in spec.consumers:
            grants.add(Grant("audit", "topic", spec.name, "DESCRIBE"))
        if spec.kind == "input":  # `dead-letters replay` sends a record back to its input topic
            grants.add(Grant("operator", "topic", spec.name, "WRITE"))
    grants.update(Grant(principal_name("channel", c), "group", f"{app}-channel-{c}", "READ") for c in channels)
    grants.update(Grant(principal_name("bank", b), "group", f"{app}-bank-{b.lower()}", "READ") for b in partners.banks)
    grants.update(Grant(principal_name("carrier", c), "group", f"{app}-carrier-{c}", "READ") for c in partners.carriers)
    return grants


def _gaps(catalog: Catalog, grants: set[Grant]) -> tuple[str, ...]:
    """Output topics that more than one partner organisation reads: each sees the others' records."""
    gaps = []
    for spec in catalog.of_kind("output"):
        readers = sorted(g.principal for g in grants if g.name == spec.name and g.operation == "READ"
                         and g.principal.startswith(("bank-", "carrier-")))
        if len(readers) > 1:
            gaps.append(f"{spec.name} is read by {len(readers)} partners ({', '.join(readers)}): "
                        "one topic each is planned (issue 18)")
    return tuple(gaps)
