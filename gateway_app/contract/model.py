"""The two kinds of contract model: inputs (lenient about case and unknown fields) and outputs (strict)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

CONTRACT_VERSION = 1


class _Input(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True, strict=False
    )


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
