"""Every message contract, by the name topics.yaml uses for it.

The type is the schema: JSON Schema files for integrators (docs/schemas/) and
docs/contracts.md are generated from these definitions by `antifraud docs`.
"""

from oversight.contracts import OVERSIGHT_CONTRACTS  # audits and follow-ups (oversight/)
from streams.contracts.actions import Action, Channel, Outcome, Result
from streams.contracts.alerts import Alert, EnrichedSignal, IntelRecheck, ShadowAlert, Tier
from streams.contracts.cases import CaseReport
from streams.contracts.dissuasion import (
    BankAck,
    BankRequest,
    CarrierAck,
    CarrierRequest,
    Escalation,
    EscalationInbox,
)
from streams.contracts.internal import DeadLetter, DeadLetterReason, Ingested
from streams.contracts.reference import IntelUpdate, RegistryUpdate
from streams.contracts.rules_versions import RulesShadow, RulesVersion
from streams.contracts.signals import AppReport, BankEvent, TelecomEvent

# Contracts that outside systems send to the platform, in the order the docs list them.
INPUT_CONTRACTS: dict[str, type] = {
    "TelecomEvent": TelecomEvent,
    "BankEvent": BankEvent,
    "AppReport": AppReport,
    "CaseReport": CaseReport,
    "IntelUpdate": IntelUpdate,
    "RegistryUpdate": RegistryUpdate,
}

# Contracts partners receive from or send back to the platform (signed; see docs/dissuasion.md).
PARTNER_CONTRACTS: dict[str, type] = {
    "BankRequest": BankRequest,
    "BankAck": BankAck,
    "CarrierRequest": CarrierRequest,
    "CarrierAck": CarrierAck,
}

CONTRACTS: dict[str, object] = {
    **INPUT_CONTRACTS,
    **{f"Ingested[{name}]": Ingested[tp] for name, tp in INPUT_CONTRACTS.items()},
    "DeadLetter": DeadLetter,
    "EnrichedSignal": EnrichedSignal,
    "IntelRecheck": IntelRecheck,
    "Alert": Alert,
    "Action": Action,
    "Outcome": Outcome,
    **PARTNER_CONTRACTS,
    "Escalation": Escalation,
    "EscalationInbox": EscalationInbox,
    "RulesVersion": RulesVersion,
    "RulesShadow": RulesShadow,
    "ShadowAlert": ShadowAlert,
    **OVERSIGHT_CONTRACTS,
}


def contract(name: str):
    """The type registered under `name`; a clear error for a name topics.yaml got wrong."""
    try:
        return CONTRACTS[name]
    except KeyError:
        raise KeyError(f"unknown contract {name!r}; known: {', '.join(sorted(CONTRACTS))}") from None


__all__ = [
    "Action",
    "Alert",
    "BankAck",
    "BankRequest",
    "CarrierAck",
    "CarrierRequest",
    "Channel",
    "Escalation",
    "EscalationInbox",
    "EnrichedSignal",
    "IntelRecheck",
    "Outcome",
    "Result",
    "Tier",
    "AppReport",
    "BankEvent",
    "CaseReport",
    "CONTRACTS",
    "DeadLetter",
    "DeadLetterReason",
    "INPUT_CONTRACTS",
    "PARTNER_CONTRACTS",
    "Ingested",
    "IntelUpdate",
    "RegistryUpdate",
    "TelecomEvent",
    "contract",
]
