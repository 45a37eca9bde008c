"""The catalog record of one algorithm: data the algorithm-selection agent reads."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CatalogEntry", "Category"]

Category = Literal["generic", "label_skew", "feature_skew", "personalised", "domain_generalisation"]


class CatalogEntry(BaseModel):
    """What an algorithm is, what it suits, and its hyper-parameters with the paper's defaults.

    Attributes:
        name: registry name (``get_algorithm(name)``).
        full_name: the paper's name for the method.
        key_idea: one or two sentences on the mechanism.
        category: the data situation it was designed for.
        choose_when: the situation in which a selector should pick it.
        hyperparameters: name -> default value. Never written by hand: :func:`algorithms.catalog.entries`
            fills it from the class's ``__init__`` signature, so there is one copy.
        paper: authors, year and arXiv id.
        also_fits: further categories the method is a sound choice for (FedProx: designed for label
            skew, also a safe generic choice); task templates build their families from both.
        selectable: ``False`` for a reference point that no task should be solved with (local-only).
        shares: data-derived content beyond weights that leaves a client (``"features"``,
            ``"prototypes"``, ``"statistics"``, ``"logits"``); empty for weights only.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    full_name: str
    key_idea: str
    category: Category
    choose_when: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    paper: str
    also_fits: tuple[Category, ...] = ()
    selectable: bool = True
    shares: tuple[str, ...] = ()

    def fits(self, category: Category) -> bool:
        """Whether the method is a sound choice for ``category`` (its own or one it also fits)."""
        return self.selectable and (self.category == category or category in self.also_fits)
