"""The project documents itself: the README links a design document that a clone has, and that
document names only modules, roles and gates that exist."""

from __future__ import annotations

import re
from pathlib import Path

from graphs.roles import ROLES
from graphs.server import build_graph

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"


def test_the_readme_links_the_design_document_inside_the_project():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in readme, "the README points outside the project, where a clone has nothing"
    assert "(docs/design.md)" in readme and DESIGN.is_file()


def test_every_path_the_design_names_exists():
    text = DESIGN.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:graphs|tools|fl_core|algorithms|envs|evals)/[\w./]*)`", text))
    named |= {f"graphs/{m}" for m in re.findall(r"\(`(\w+\.py)`", text) if (ROOT / "graphs" / m).exists()}
    assert len(named) >= 15, f"the design names too few modules to be checked: {sorted(named)}"
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, f"docs/design.md names paths that do not exist: {missing}"


def test_the_design_describes_every_role_and_every_node_of_the_server_graph():
    text = DESIGN.read_text(encoding="utf-8")
    assert all(f"{code} " in text for code in ROLES)
    nodes = [n for n in build_graph().get_graph().nodes if not n.startswith("__")]
    assert len(nodes) == 10 and not [n for n in nodes if f"`{n}`" not in text], nodes
