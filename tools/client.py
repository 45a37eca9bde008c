"""The client roles' tools (C1 dataset selector, C2 data preparer, C3 label harmoniser), bound to a site.

Each tool is a plain function ``fn(ws, **args)`` in its concern's module plus a pydantic argument
schema; :func:`bind` closes it over one :class:`~tools.sandbox.Workspace`, so the model never sees or
chooses the workspace. The function's docstring (up to ``Args:``) is the model's manual. Expected
failures are ``ToolException`` s the ToolNode returns as messages; anything unexpected becomes one too,
without the exception text (it may hold a raw path with a patient's record number).
"""

from __future__ import annotations

import importlib
import inspect as pyinspect
import logging
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel

from tools.sandbox import Workspace

log = logging.getLogger(__name__)
ROLES = ("C1", "C2", "C3")
INTERNAL_ERROR = ("the tool failed on an unexpected {kind}; nothing under raw/ was changed. Check the arguments "
                  "(paths as the data cards or earlier tool results give them) or continue with another step.")


def _manual(fn: Callable[..., Any]) -> str:
    doc = pyinspect.getdoc(fn) or fn.__name__
    return doc.split("\nArgs:")[0].strip()


def bind(ws: Workspace, fn: Callable[..., Any], args_schema: type[BaseModel]) -> BaseTool:
    """A LangChain tool calling ``fn(ws, **args)``; errors come back to the model as messages."""

    def call(**kwargs: Any) -> Any:
        try:
            return fn(ws, **kwargs)
        except ToolException:
            raise
        except Exception as exc:  # a tool must never crash the graph
            log.exception("tool %s failed at site %s", fn.__name__, ws.site_id)
            raise ToolException(INTERNAL_ERROR.format(kind=type(exc).__name__)) from None

    return StructuredTool.from_function(func=call, name=fn.__name__, description=_manual(fn),
                                        args_schema=args_schema, handle_tool_error=True,
                                        handle_validation_error=True)


def _bind_all(ws: Workspace, table: list[tuple[Callable[..., Any], type[BaseModel]]]) -> list[BaseTool]:
    return [bind(ws, fn, schema) for fn, schema in table]


def _cleaning_tools(ws: Workspace) -> list[BaseTool]:
    """C2's cleaning tools from tools.clean, when that module exists."""
    try:
        clean = importlib.import_module("tools.clean")
    except ModuleNotFoundError as exc:
        if exc.name != "tools.clean":
            raise
        return []
    return list(clean.make_cleaning_tools(ws))


def make_client_tools(workspace: Workspace) -> dict[str, list[BaseTool]]:
    """Role name ("C1", "C2", "C3") -> the tools that role may call, all bound to ``workspace``."""
    from tools import harmonize, inspect, organize

    return {
        "C1": _bind_all(workspace, inspect.TOOLS),
        "C2": _bind_all(workspace, organize.TOOLS) + _cleaning_tools(workspace),
        # C3 reads the cards too: a card's label_legend decodes numeric label names.
        "C3": _bind_all(workspace, inspect.TOOLS[:1] + harmonize.TOOLS),
    }
