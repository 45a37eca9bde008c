"""Models by name, and the body/head/BatchNorm split that algorithms reason about.

Every model the runtime builds answers the same three timm calls: ``forward_features(x)``,
``forward_head(x, pre_logits=...)`` and ``get_classifier()``. That is what lets one engine compute
features and logits in a single forward pass (MOON needs the features, FedPer/FedRep need to know
which state-dict keys are the head) whether the model is a timm network or the tiny CNN below.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from algorithms.aggregation import clone_state
from algorithms.api import ModelInfo, features
from fl_core.config import GLOBAL_POOLS

__all__ = [
    "GLOBAL_POOLS",
    "GlobalPool",
    "ModelInfo",
    "TinyCNN",
    "clone_state",
    "create_model",
    "features",
    "list_local_models",
    "model_info",
    "split_body_head",
]

_LOCAL_MODELS: dict[str, Callable[..., nn.Module]] = {}


def _register_local(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _LOCAL_MODELS[name] = fn
        return fn

    return deco


class GlobalPool(nn.Module):
    """timm's global pooling choices (``SelectAdaptivePool2d`` with ``flatten=True``) for the tiny CNN.

    Written here rather than imported because importing ``timm`` also imports torchvision: about 1.4 s
    in every training process, and each training job, Flower ServerApp and ClientApp is a fresh
    process. ``timm`` is imported only when a timm model is asked for (:func:`create_model`).
    """

    def __init__(self, pool_type: str = "avg") -> None:
        super().__init__()
        if pool_type not in GLOBAL_POOLS:
            raise ValueError(f"unknown global_pool {pool_type!r}; choose one of {GLOBAL_POOLS}")
        self.pool_type = pool_type

    def feat_mult(self) -> int:
        """How many values per channel the pooling passes on (2 for ``catavgmax``)."""
        return 2 if self.pool_type == "catavgmax" else 1

    def forward(self, x: Tensor) -> Tensor:
        if self.pool_type == "avg":
            return F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.pool_type == "max":
            return F.adaptive_max_pool2d(x, 1).flatten(1)
        avg, mx = F.adaptive_avg_pool2d(x, 1).flatten(1), F.adaptive_max_pool2d(x, 1).flatten(1)
        return 0.5 * (avg + mx) if self.pool_type == "avgmax" else torch.cat((avg, mx), 1)


class TinyCNN(nn.Module):
    """A three-block CNN with BatchNorm for fast CPU runs (about 25k parameters at width 16).

    It has BatchNorm on purpose, so that FedBN has something to keep local, and follows timm's
    ``forward_features`` / ``forward_head`` / ``get_classifier`` protocol. ``global_pool`` is timm's
    choice of pooling (:class:`GlobalPool`): ``"avg"`` suits findings that fill the image; ``"catavgmax"`` also
    passes each channel's maximum, so a lesion of a few pixels is not averaged away over the 8 x 8
    feature map (MRI tumour present: FedAvg 0.61 -> 0.86 in five rounds; fundus, whose signs spread
    over the retina: 0.81 -> 0.69).
    """

    def __init__(self, num_classes: int, in_chans: int = 3, width: int = 16, global_pool: str = "avg") -> None:
        super().__init__()
        chans = [in_chans, width, 2 * width, 4 * width]
        blocks: list[nn.Module] = []
        for cin, cout in itertools.pairwise(chans):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*blocks)
        self.pool = GlobalPool(global_pool)
        self.num_features = chans[-1]
        self.head = nn.Linear(self.num_features * self.pool.feat_mult(), num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.pool(x)
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@_register_local("tiny_cnn")
def _tiny_cnn(num_classes: int, in_chans: int = 3, global_pool: str = "avg") -> nn.Module:
    return TinyCNN(num_classes, in_chans, global_pool=global_pool)


def list_local_models() -> list[str]:
    """Names of the models defined here (every other name goes to ``timm``)."""
    return sorted(_LOCAL_MODELS)


def create_model(name: str, num_classes: int, in_chans: int = 3, global_pool: str = "avg") -> nn.Module:
    """Build a randomly initialised classifier by name.

    Args:
        name: ``"tiny_cnn"`` or any ``timm`` model name (``resnet18``, ``efficientnet_b0``,
            ``mobilenetv3_small_100``, ...). Weights are never downloaded (``pretrained=False``).
        num_classes: size of the label space.
        in_chans: input channels (3 for RGB, 1 for grayscale).
        global_pool: one of :data:`GLOBAL_POOLS` (timm's pooling before the classifier).

    Raises:
        ValueError: the name is neither local nor known to timm, or an unknown ``global_pool``.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}; a classifier needs two classes")
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"unknown global_pool {global_pool!r}; choose one of {GLOBAL_POOLS}")
    if name in _LOCAL_MODELS:
        return _LOCAL_MODELS[name](num_classes=num_classes, in_chans=in_chans, global_pool=global_pool)
    import timm  # only here: its import (with torchvision's) costs every training process ~1.4 s

    if not timm.is_model(name):
        raise ValueError(
            f"unknown model {name!r}: use one of {list_local_models()} or a timm name "
            "(see timm.list_models(), e.g. 'resnet18', 'mobilenetv3_small_100')"
        )
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                             global_pool=global_pool)


def _module_name(model: nn.Module, target: nn.Module) -> str:
    for name, mod in model.named_modules():
        if mod is target:
            return name
    raise ValueError("the model's get_classifier() is not one of its sub-modules")


def split_body_head(model: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """State-dict keys of the body and of the head (the module ``get_classifier()`` returns)."""
    prefix = _module_name(model, model.get_classifier()) + "."
    keys = list(model.state_dict())
    head = tuple(k for k in keys if k.startswith(prefix))
    if not head:
        raise ValueError(f"no state-dict key under the classifier prefix {prefix!r}")
    return tuple(k for k in keys if not k.startswith(prefix)), head


def model_info(model: nn.Module, num_classes: int) -> ModelInfo:
    """Describe ``model``'s state-dict keys by role (see :class:`ModelInfo`)."""
    body, head = split_body_head(model)
    bn_prefixes = [
        n + "." for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    keys = tuple(model.state_dict())
    params = {n for n, _ in model.named_parameters()}
    return ModelInfo(
        state_keys=keys,
        param_keys=tuple(k for k in keys if k in params),
        buffer_keys=tuple(k for k in keys if k not in params),
        body_keys=body,
        head_keys=head,
        bn_keys=tuple(k for k in keys if any(k.startswith(p) for p in bn_prefixes)),
        num_classes=num_classes,
    )


@torch.no_grad()
def load_state(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy ``state`` into ``model`` in place (faster than ``load_state_dict``; keys may be a subset)."""
    own = model.state_dict()
    for k, v in state.items():
        own[k].copy_(v)
