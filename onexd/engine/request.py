"""Job requests as callers send them (API bodies, explain files, `onexd run`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from onexd.policy.models import Model, Name


class JobRequest(Model):
    """`{node, input}` or ad-hoc `{profile, command}`, with an optional tighter timeout."""

    node: Name | SkipJsonSchema[None] = Field(default=None, description="Node to run.")
    input: Any = Field(default=None, description="JSON input, validated against the node's inputSchema.")
    profile: Name | SkipJsonSchema[None] = Field(default=None, description="Ad-hoc: the profile to use.")
    # Constraints sit on the non-null type: on the union, an explicit null would meet `ge`/`min_length` (a
    # TypeError inside pydantic, once a 500).
    command: Annotated[tuple[Annotated[str, StringConstraints(min_length=1, max_length=4096)], ...],
                       Field(min_length=1, max_length=256)] | SkipJsonSchema[None] = Field(
        default=None, description="Ad-hoc: argv list.")
    timeoutSeconds: Annotated[int, Field(ge=1, le=86400)] | SkipJsonSchema[None] = Field(
        default=None, description="Tighter timeout (never above policy).")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        """A field is given or left out; an explicit null (which the schema does not allow) is refused."""
        if isinstance(data, dict):
            for key in ("node", "profile", "command", "timeoutSeconds"):
                if key in data and data[key] is None:
                    raise ValueError(f"`{key}` may be left out, but not null")
        return data

    @model_validator(mode="after")
    def _one_shape(self) -> JobRequest:
        if self.node is not None:
            if self.profile is not None or self.command is not None:
                raise ValueError("give either `node` (with `input`) or `profile` and `command`, not both")
        elif self.profile is None or self.command is None:
            raise ValueError("give `node`, or both `profile` and `command` for an ad-hoc job")
        elif self.input is not None:
            raise ValueError("`input` goes with `node`; ad-hoc jobs take no input")
        return self

    @property
    def target(self) -> str:
        return f"node {self.node}" if self.node else f"ad-hoc command with profile {self.profile}"
