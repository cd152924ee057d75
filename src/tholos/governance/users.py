"""Users and roles: each user has an Ed25519 key of their own, fixed roles and named groups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import model_validator

from tholos.governance._keys import PublicKey, public_key_from_hex
from tholos.governance._model import Hex32, Model, Name, NameSet

Role = Literal["admin", "initiator", "approver", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "initiator", "approver", "auditor")


class User(Model):
    """A registered person or service: its public key, roles and groups (e.g. treasury, risk)."""

    user_id: Name
    public_key: Hex32
    roles: NameSet
    groups: NameSet = ()

    @model_validator(mode="after")
    def _check(self) -> User:
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; roles are {list(ROLES)}")
        public_key_from_hex(self.public_key)  # must be a valid point
        return self

    def has(self, role_or_group: str) -> bool:
        """True if the user holds this role or belongs to this group."""
        return role_or_group in self.roles or role_or_group in self.groups


class Registry:
    """Users by id with their parsed public keys, built once per adopted governance document."""

    __slots__ = ("_keys", "_users")

    def __init__(self, users: Iterable[User]) -> None:
        by_id: dict[str, User] = {}
        for user in users:
            if user.user_id in by_id:
                raise ValueError(f"duplicate user {user.user_id}")
            by_id[user.user_id] = user
        self._users: Mapping[str, User] = MappingProxyType(by_id)
        self._keys: Mapping[str, PublicKey] = MappingProxyType(
            {uid: public_key_from_hex(u.public_key) for uid, u in by_id.items()}
        )

    def get(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def key(self, user_id: str) -> PublicKey:
        """Parsed public key of a registered user (KeyError if unknown)."""
        return self._keys[user_id]

    def with_role(self, role_or_group: str) -> tuple[User, ...]:
        return tuple(u for u in self._users.values() if u.has(role_or_group))

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def __len__(self) -> int:
        return len(self._users)
