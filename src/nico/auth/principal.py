"""Who is calling, and what they may do in each org."""

from __future__ import annotations

from dataclasses import dataclass, field

PROVIDER_ADMIN = "PROVIDER_ADMIN"


def is_provider_admin_role(role: str) -> bool:
    """`PROVIDER_ADMIN`, or a prefixed legacy form such as `NICO_PROVIDER_ADMIN`."""
    role = role.strip().upper()
    return role == PROVIDER_ADMIN or role.endswith("_" + PROVIDER_ADMIN)


@dataclass(frozen=True)
class Principal:
    """The verified token's subject and its roles per (lower-cased) org."""

    subject: str
    org_roles: dict[str, frozenset[str]] = field(default_factory=dict)

    def roles_in(self, org: str) -> frozenset[str] | None:
        """Roles in `org`, or None when the org is not in the token."""
        return self.org_roles.get(org.lower())

    def is_provider_admin(self, org: str) -> bool:
        roles = self.roles_in(org) or frozenset()
        return any(is_provider_admin_role(r) for r in roles)
