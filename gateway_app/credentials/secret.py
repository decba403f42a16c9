"""`Secret`: a key held in memory that does not leak through the usual ways values get printed.

`repr`, `str`, `format` (f-strings, `%s` logging), `json.dumps(..., default=str)` and pydantic
serialisation all show `**********` (repr: `Secret(**********, fp=<fingerprint>)`); pickling and
copying to another process are refused. Only `.reveal()` returns the value, at the point of use.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, NoReturn

from pydantic_core import core_schema

MASK = "**********"


def fingerprint(value: str | bytes) -> str:
    """The first 12 hex characters of the SHA-256 of `value`.

    Safe to log: SHA-256 is one-way and 48 bits say nothing useful about a high-entropy key, yet they
    are enough to tell two keys apart ("the agent's key changed", "this DLQ record held that key").
    """
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()[:12]


class Secret:
    """A key value; `.reveal()` it only where it is handed to a provider SDK."""

    __slots__ = ("_value", "_fp")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_fp", fingerprint(value))

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        return self._fp

    def __repr__(self) -> str:
        return f"Secret({MASK}, fp={self._fp})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._fp))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    # Never leaves the process: no pickling (multiprocessing, caches on disk), copies are the same object.
    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        """A pydantic field typed `Secret` accepts a str or a Secret and always serialises masked."""

        def validate(value: Any) -> Secret:
            if isinstance(value, Secret):
                return value
            if isinstance(value, str):
                return Secret(value)
            raise TypeError("expected a str or a Secret")

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda value: str(value)),
            json_schema_input_schema=core_schema.str_schema(),
        )
