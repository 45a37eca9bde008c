"""Local-Global Federated Averaging (LG-FedAvg) [Liang et al., 2020].

Paper: P. P. Liang, T. Liu, L. Ziyin, N. B. Allen, R. P. Auerbach, D. Brent, R. Salakhutdinov,
L.-P. Morency, "Think Locally, Act Globally: Federated Learning with Local and Global
Representations", NeurIPS 2019 Workshop on Federated Learning, arXiv:2001.01523.

Key idea: the mirror image of FedPer. Each client learns its own *local representation* (the whole
feature extractor, BatchNorm included) that never leaves it, and only the small *global* model on
top (the classifier) is sent to the server and averaged. A site's idiosyncratic image appearance
(scanner, staining, acquisition protocol) is absorbed by its own extractor, while the decision
layer is learnt from every site; and only the head's few parameters cross the network. Clients
train the whole network every round (the paper's joint local update). As in FL-bench and PFLlib the
global part is the classifier; the paper's optional warm start (a few rounds of FedAvg on the whole
network before the split) is left out, so each extractor starts from the common initial weights.
"""

from __future__ import annotations

from algorithms.api import FLAlgorithm, ModelInfo
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="lgfedavg",
        full_name="Local-Global Federated Averaging (LG-FedAvg)",
        key_idea="Each client keeps its own feature extractor (local representation); only the classifier "
        "head is averaged across clients.",
        category="personalised",
        also_fits=("feature_skew",),
        choose_when="Sites' images look different (scanner, staining, protocol) but the classes mean the "
        "same everywhere, each site is evaluated on its own data, and communication is tight (only the "
        "head is sent); each site needs enough images to train its own extractor.",
        paper="Liang et al., 2020, arXiv:2001.01523",
    ),
)


@register("lgfedavg")
class LGFedAvg(FLAlgorithm):
    """FedAvg on the classifier head; every other key (the representation) stays on its client."""

    primary_model = "personal"

    def __init__(self) -> None:
        pass

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        head = set(info.head_keys)
        return frozenset(k for k in info.state_keys if k not in head)
