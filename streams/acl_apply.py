"""Put the ACL plan on a broker: SCRAM credentials and ACLs; report drift, delete nothing.

Run as the broker's super user. Every principal of the plan gets its password from the
credentials file (streams.broker_auth); the plan's ACLs that the broker lacks are created.
ACLs and SCRAM users on the broker that the plan does not have are reported as drift and left
alone: removing a grant is an operator's decision, made with kafka-acls, not a side effect.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from streams.acl_plan import ADMIN, AclPlan, Grant, build_plan
from streams.broker_auth import (
    LoginRefused,
    check_login,
    client_security,
    credentials_path,
    load_or_create,
    sasl_config,
)
from streams.catalog import get_catalog
from streams.routing import get_partners
from streams.settings import Settings

SCRAM_ITERATIONS = 8192  # Kafka's maximum is 16384; 8192 keeps a login cheap on a laptop broker
ANY_HOST = "*"


def binding(grant: Grant) -> AclBinding:
    return AclBinding(ResourceType[grant.resource.upper()], grant.name, ResourcePatternType[grant.pattern.upper()],
                      f"User:{grant.principal}", ANY_HOST, AclOperation[grant.operation], AclPermissionType.ALLOW)


def described(acl: AclBinding) -> str:
    """A broker ACL in words, whatever it is (a deny, a host, a cluster resource)."""
    pattern = "*" if acl.resource_pattern_type == ResourcePatternType.PREFIXED else ""
    host = "" if acl.host == ANY_HOST else f" from {acl.host}"
    return (f"{acl.principal} {acl.permission_type.name} {acl.operation.name} "
            f"{acl.restype.name.lower()} {acl.name}{pattern}{host}")


def acl_key(acl: AclBinding) -> tuple:
    return (acl.restype, acl.name, acl.resource_pattern_type, acl.principal, acl.host, acl.operation,
            acl.permission_type)


@dataclass
class AclReport:
    credentials_set: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    unchanged: int = 0
    extra: list[str] = field(default_factory=list)  # on the broker, not in the plan
    unknown_users: list[str] = field(default_factory=list)  # SCRAM users on the broker, not in the plan

    def lines(self) -> list[str]:
        out = [f"credentials set for {len(self.credentials_set)} principals"]
        out += [f"created {line}" for line in self.created]
        out += [f"drift   not in the plan: {line}" for line in self.extra]
        out += [f"drift   SCRAM user not in the plan: {user}" for user in self.unknown_users]
        if not self.created and not self.extra and not self.unknown_users:
            out.append(f"no changes ({self.unchanged} ACLs match the plan)")
        return out


def broker_acls(admin: AdminClient, timeout_s: float) -> list[AclBinding]:
    every = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                             AclPermissionType.ANY)
    return admin.describe_acls(every, request_timeout=timeout_s).result()


def apply_acls(plan: AclPlan, admin_config: dict, passwords: dict[str, str], timeout_s: float = 30.0) -> AclReport:
    admin = AdminClient(admin_config)
    report = AclReport()
    upserts = [UserScramCredentialUpsertion(name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
                                            passwords[name].encode())
               for name in plan.principals]
    for name, future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s).items():
        future.result()
        report.credentials_set.append(name)
    report.credentials_set.sort()
    users = admin.describe_user_scram_credentials(request_timeout=timeout_s).result()
    report.unknown_users = sorted(set(users) - set(plan.principals) - {ADMIN})

    wanted = {acl_key(b): b for b in map(binding, plan.grants)}
    present = {acl_key(b): b for b in broker_acls(admin, timeout_s)}
    missing = [b for k, b in wanted.items() if k not in present]
    if missing:
        for acl, future in admin.create_acls(missing, request_timeout=timeout_s).items():
            future.result()
            report.created.append(described(acl))
    report.created.sort()
    report.unchanged = len(wanted) - len(missing)
    report.extra = sorted(described(b) for k, b in present.items() if k not in wanted)
    if missing:
        _wait_until_enforced(admin, set(wanted), timeout_s)
    return report


def _wait_until_enforced(admin: AdminClient, wanted: set[tuple], timeout_s: float) -> None:
    """The controller has the new ACLs; the broker that authorizes clients applies them about a second
    later. Return once it has, so a client that starts next is judged by the plan."""
    deadline = time.monotonic() + timeout_s
    while not wanted <= {acl_key(b) for b in broker_acls(admin, timeout_s)}:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the broker did not show the created ACLs within {timeout_s:.0f} s")
        time.sleep(0.2)


def apply_command(settings: Settings, path: Path | None, echo: Callable[[str], None]) -> int:
    """`antifraud acl apply`: the exit code; a refused admin login is one line, exit 2."""
    plan = build_plan(get_catalog(settings.topics_file), get_partners(settings))
    path = path or credentials_path(settings)
    passwords, generated = load_or_create(path, [ADMIN, *plan.principals])
    # The admin logs in as the settings say, else (the embedded broker) with the file's admin password.
    security = client_security(settings) or sasl_config(ADMIN, passwords[ADMIN])
    try:
        check_login(settings.kafka_bootstrap_servers, security)
    except LoginRefused as exc:
        echo(f"refused: {exc}")
        return 2
    if generated:
        echo(f"generated {len(generated)} passwords into {path}")
    for line in apply_acls(plan, {"bootstrap.servers": settings.kafka_bootstrap_servers, **security}, passwords).lines():
        echo(line)
    return 0
