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
        hyperparameters: name -> default value (must equal the class's ``get_params()``).
        paper: authors, year and arXiv id.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    full_name: str
    key_idea: str
    category: Category
    choose_when: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    paper: str
