"""The seven roles: who they are, what they submit, and their prompts in two styles.

One table instead of seven near-identical modules: a role differs from another only in its prompt
files, its output schema and its side; its tools are chosen by the graph that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel

from graphs.agent import build_role_agent
from graphs.messages import OUTPUT_OF_ROLE

PROMPTS = Path(__file__).parent / "prompts"
Guidance = Literal["fine-grained", "goal-oriented"]
GUIDANCE: tuple[Guidance, ...] = ("fine-grained", "goal-oriented")


@dataclass(frozen=True)
class Role:
    code: str
    title: str
    side: Literal["server", "client"]
    phase: int
    max_steps: int

    @property
    def output(self) -> type[BaseModel]:
        return OUTPUT_OF_ROLE[self.code]


ROLES: dict[str, Role] = {r.code: r for r in (
    Role("S1", "task planner", "server", 1, 8),
    Role("C1", "dataset selector", "client", 1, 12),
    Role("S2", "coordinator", "server", 1, 8),
    Role("C2", "data preparer", "client", 2, 40),
    Role("C3", "label harmonizer", "client", 3, 24),
    Role("S3", "algorithm selector", "server", 4, 10),
    Role("S4", "training operator", "server", 4, 80),
)}


@cache
def prompt(code: str, guidance: Guidance) -> str:
    """The role's system prompt in one style (text files under graphs/prompts/)."""
    if guidance not in GUIDANCE:
        raise ValueError(f"guidance must be one of {GUIDANCE}, got {guidance!r}")
    return (PROMPTS / f"{code}.{guidance}.txt").read_text(encoding="utf-8").strip()


def build_agent(code: str, model: BaseChatModel | None, tools: list[BaseTool], guidance: Guidance,
                site_id: str | None = None) -> CompiledStateGraph:
    """The tool-calling loop of one role, ready to invoke with its input message (``model`` None: each
    run binds its own, see :mod:`graphs.binding`)."""
    role = ROLES[code]
    return build_role_agent(model, tools, role=code, system_prompt=prompt(code, guidance), output=role.output,
                            max_steps=role.max_steps, site_id=site_id)
