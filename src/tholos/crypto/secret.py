"""Types for secret values: redacted in repr/str, not comparable with ==, not picklable.

Python cannot promise constant-time arithmetic or reliable wiping of memory: ints are immutable and
may be copied by the interpreter. `wipe()` drops our reference, which is the best we can do; the real
protection is the node boundary (shares never leave a node process) and sealed storage at rest.
"""

from __future__ import annotations

from typing import Any, NoReturn


class SecretScalar:
    """A secret scalar mod a group order (a key share, a nonce). Use `.expose()` at the point of use."""

    __slots__ = ("_value",)

    def __init__(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError("SecretScalar takes an int")
        self._value: int | None = value

    def expose(self) -> int:
        """Return the secret value; raise if it was wiped."""
        if self._value is None:
            from tholos.crypto.errors import StateError

            raise StateError("secret was wiped")
        return self._value

    @property
    def wiped(self) -> bool:
        return self._value is None

    def wipe(self) -> None:
        """Drop the reference to the value (best effort, see module docstring)."""
        self._value = None

    def __repr__(self) -> str:
        return "SecretScalar(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> NoReturn:
        raise TypeError("secret values are not compared with ==")

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> NoReturn:
        raise TypeError("secret values have no truth value")

    def __reduce__(self) -> NoReturn:
        raise TypeError("secret values are not pickled; seal them instead")

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretScalar:
        return SecretScalar(self.expose())
