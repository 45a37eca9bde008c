"""Each role's tool set: declared once when the graph is built, bound to a site or a run when it runs.

The same factories build both. Declared sets are built over a workspace, statistics and training
folders that do not exist: they give the role agents compiled at build time the names, manuals and
schemas the model is offered, and are never run (:mod:`graphs.binding` swaps in the bound tool).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool

from graphs.roles import ROLES

#: A folder that never exists: declared tools are bound to it, so running one by mistake finds nothing.
NOWHERE = Path("/nonexistent/fedagentbench-declared-tools")


def client_role_tools(by_role: dict[str, list[BaseTool]], code: str) -> list[BaseTool]:
    """One client role's tools from a site's tool sets (C2 also reads the cards and lists labels)."""
    if code != "C2":
        return list(by_role[code])
    pick = [t for role in by_role.values() for t in role]

    def one(name: str) -> list[BaseTool]:
        return [t for t in pick if t.name == name][:1]

    return one("read_data_cards") + list(by_role["C2"]) + one("list_labels")


def site_tools(site_dir: Path, code: str) -> list[BaseTool]:
    """Client role ``code``'s tools bound to the site folder ``site_dir``."""
    from tools.client import make_client_tools
    from tools.sandbox import Workspace

    return client_role_tools(make_client_tools(Workspace.open(site_dir)), code)


def selection_tools(stats: Callable[[], dict[str, dict[str, Any]]]) -> list[BaseTool]:
    """S3's tools over the clients' reported statistics."""
    from tools.federate import make_selection_tools

    return make_selection_tools(stats)


def training_tools(client_dirs: dict[str, Path], out_dir: Path, fixed: dict[str, Any]) -> list[BaseTool]:
    """S4's tools over the approved clients' prepared folders and the run's training folder."""
    from tools.federate import make_training_tools

    return make_training_tools(client_dirs, out_dir, fixed)


def declared_tools(code: str) -> list[BaseTool]:
    """The tools role ``code`` is compiled with: real names, manuals and schemas, bound to nothing.

    Raises:
        KeyError: ``code`` is not a role.
    """
    side = ROLES[code].side
    if side == "client":
        from tools.client import make_client_tools
        from tools.sandbox import Workspace

        return client_role_tools(make_client_tools(Workspace(NOWHERE, "declared")), code)
    if code == "S3":
        return selection_tools(dict)
    if code == "S4":
        return training_tools({}, NOWHERE, {})
    return []
