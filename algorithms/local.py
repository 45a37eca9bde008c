"""Local-only training: every client trains alone (the no-federation reference point).

Not a federated algorithm but the baseline every FL paper reports (e.g. McMahan et al., 2017,
arXiv:1602.05629, and the personalisation literature such as Ditto, Li et al., 2021,
arXiv:2012.04221): each client trains its own model on its own data for the same number of rounds and epochs,
and nothing is ever averaged. If federation does not beat it, federation is not paying off.
"""

from __future__ import annotations

from collections.abc import Sequence

from algorithms.aggregation import StateDict
from algorithms.api import ClientUpdate, FLAlgorithm, ModelInfo, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="local",
        full_name="Local-only training",
        key_idea="Each client trains its own model on its own data; no weights are shared.",
        category="personalised",
        selectable=False,
        choose_when="Reference point only, or when every site has plenty of data and distributions "
        "are so different that sharing hurts; never when sites are small.",
        paper="McMahan et al., 2017, arXiv:1602.05629 (local baseline)",
    ),
)


@register("local")
class LocalOnly(FLAlgorithm):
    """All state-dict keys are local, so updates carry no weights and the server keeps its own."""

    primary_model = "personal"

    def __init__(self) -> None:
        pass

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        return frozenset(info.state_keys)

    def aggregate(
        self, global_state: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        return dict(global_state)
