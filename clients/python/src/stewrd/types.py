"""Typed shapes of the API's bodies.

Everything from the OpenAPI document is generated into :mod:`stewrd._types`
(TypedDicts; see ``generate.sh``) and re-exported here. A few shapes the
document leaves as free-form objects (``required_action`` and its tool calls)
are written out below from the contract, so that ``run_tools`` and approval
code can be type-checked too.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, TypedDict

from ._types import *  # noqa: F401,F403  (the generated types are the public ones)
from ._types import DecisionIn, SessionOut, ToolOutputIn  # noqa: F401  (named for readers)


class FunctionCall(TypedDict):
    """The function a model asked to call; ``arguments`` is JSON text."""

    name: str
    arguments: str


class ToolCall(TypedDict):
    """One call of a ``submit_tool_outputs`` pause (OpenAI's format)."""

    id: str
    type: Literal["function"]
    function: FunctionCall


class ApprovalToolCall(TypedDict):
    """One call of an ``approve_tool_calls`` pause."""

    id: str
    name: str
    executor: str
    arguments: str
    arguments_sha256: str


class RequiredAction(TypedDict):
    """``SessionOut["required_action"]`` while a run waits for the client.

    ``type`` says what it waits for: tool outputs (``tool_calls`` are
    :class:`ToolCall`) or a person's decision (``tool_calls`` are
    :class:`ApprovalToolCall`).
    """

    type: Literal["submit_tool_outputs", "approve_tool_calls"]
    run_id: str
    expires_at: str
    tool_calls: List[Any]


class DeltaData(TypedDict):
    """The data of a ``run.delta`` event."""

    run_id: str
    step: int
    text: str


class StepEventData(TypedDict):
    """The data of a ``run.step`` event."""

    run_id: str
    step: Dict[str, Any]


class ResetData(TypedDict):
    """The data of a ``run.reset`` event: drop that step's deltas so far."""

    run_id: str
    step: int
