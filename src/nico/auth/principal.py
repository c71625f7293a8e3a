"""Who is calling, and what they may do in each org."""

from __future__ import annotations

from dataclasses import dataclass, field

PROVIDER_ADMIN = "PROVIDER_ADMIN"


def is_provider_admin_role(role: str) -> bool:
    """`PROVIDER_ADMIN`, or it behind one legacy `WORD_` prefix (`NICO_PROVIDER_ADMIN`).

    Compared exactly, as upstream does (as-is, then with the first prefix stripped): a
    token saying `provider_admin` or `A_B_PROVIDER_ADMIN` is not an admin.
    """
    if role == PROVIDER_ADMIN:
        return True
    prefix, underscore, rest = role.partition("_")
    return bool(prefix and underscore) and rest == PROVIDER_ADMIN


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
