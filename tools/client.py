"""The client roles' tools (C1 dataset selector, C2 data preparer, C3 label harmoniser), bound to a site.

Each tool is a plain function ``fn(ws, **args)`` in its concern's module plus a pydantic argument
schema; :func:`bind` closes it over one :class:`~tools.sandbox.Workspace`, so the model never sees or
chooses the workspace. The function's docstring (up to ``Args:``) is the model's manual.

:func:`bind` is also the one filter on everything a client tool returns: results, refusals and
argument errors all pass the site's :class:`~tools.site_identifiers.SiteRedactor`, which removes
identifier-shaped text and the site's own identifier values before the model reads them. Expected
failures are ``ToolException`` s the ToolNode returns as messages; anything unexpected becomes one too,
without the exception text (it may hold a raw path with a patient's record number).
"""

from __future__ import annotations

import inspect as pyinspect
import logging
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel

from tools.sandbox import Workspace
from tools.site_identifiers import SiteRedactor

log = logging.getLogger(__name__)
ROLES = ("C1", "C2", "C3")
INTERNAL_ERROR = ("the tool failed on an unexpected {kind}; nothing under raw/ was changed. Check the arguments "
                  "(paths as the data cards or earlier tool results give them) or continue with another step.")
Filter = Callable[[Any], Any]


def _manual(fn: Callable[..., Any]) -> str:
    doc = pyinspect.getdoc(fn) or fn.__name__
    return doc.split("\nArgs:")[0].strip()


def _allowed(schema: type[BaseModel], field: str) -> str:
    """What ``field`` accepts, from its schema: type, choices, bounds and description."""
    prop = schema.model_json_schema().get("properties", {}).get(field)
    if prop is None:
        return f"not an argument of this tool; its arguments are {sorted(schema.model_fields)}"
    options = prop.get("anyOf", [prop])
    kinds = []
    for o in options:
        if "enum" in o or "const" in o:
            kinds.append("one of " + ", ".join(repr(v) for v in o.get("enum", [o.get("const")])))
        elif o.get("type"):
            bounds = [f"{w} {o[k]}" for k, w in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                                                 ("exclusiveMaximum", "<"), ("minItems", "at least items:"))
                      if k in o]
            kind = {"object": "object (a mapping)", "array": "array (a list)"}.get(o["type"], o["type"])
            kinds.append(", ".join([kind, *bounds]))
    desc = prop.get("description")
    return " or ".join(kinds) + (f" ({desc})" if desc else "")


def validation_message(name: str, schema: type[BaseModel], exc: Exception) -> str:
    """The model's argument error, naming each wrong field, what was wrong and what it accepts."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    parts = []
    for err in errors[:6]:
        loc = [str(x) for x in err.get("loc", ())]
        field = loc[0] if loc else "arguments"
        where = ".".join(loc) or "arguments"
        parts.append(f"'{where}': {err.get('msg', 'invalid')}; allowed: {_allowed(schema, field)}")
    if not parts:
        parts.append(str(exc).splitlines()[0][:300])
    return f"invalid arguments for {name}: " + " | ".join(parts) + ". Fix these fields and call the tool again."


def bind(ws: Workspace, fn: Callable[..., Any], args_schema: type[BaseModel], redact: Filter | None = None) -> BaseTool:
    """A LangChain tool calling ``fn(ws, **args)``; its output, refusals and errors pass ``redact``.

    Args:
        redact: the output filter; one :class:`SiteRedactor` per site is shared by all its tools.
    """
    redact = redact or SiteRedactor(ws)

    def call(**kwargs: Any) -> Any:
        try:
            return redact(fn(ws, **kwargs))
        except ToolException as exc:
            raise ToolException(redact(str(exc))) from None
        except Exception as exc:  # a tool must never crash the graph
            log.exception("tool %s failed at site %s", fn.__name__, ws.site_id)
            raise ToolException(INTERNAL_ERROR.format(kind=type(exc).__name__)) from None

    def on_bad_arguments(exc: Exception) -> str:
        return redact(validation_message(fn.__name__, args_schema, exc))

    return StructuredTool.from_function(func=call, name=fn.__name__, description=_manual(fn),
                                        args_schema=args_schema, handle_tool_error=True,
                                        handle_validation_error=on_bad_arguments)


def bind_all(ws: Workspace, table: list[tuple[Callable[..., Any], type[BaseModel]]],
             redact: Filter | None = None) -> list[BaseTool]:
    """Every (function, schema) of ``table`` bound to ``ws``, sharing one output filter."""
    redact = redact or SiteRedactor(ws)
    return [bind(ws, fn, schema, redact) for fn, schema in table]


def make_client_tools(workspace: Workspace) -> dict[str, list[BaseTool]]:
    """Role name ("C1", "C2", "C3") -> the tools that role may call, all bound to ``workspace``."""
    from tools import clean, harmonize, inspect, organize

    redact = SiteRedactor(workspace)
    return {
        "C1": bind_all(workspace, inspect.TOOLS, redact),
        "C2": bind_all(workspace, organize.TOOLS + clean.TOOLS, redact),
        # C3 reads the cards too: a card's label_legend decodes numeric label names.
        "C3": bind_all(workspace, inspect.TOOLS[:1] + harmonize.TOOLS, redact),
    }
