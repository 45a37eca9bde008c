"""Is a modality's synthetic task learnable but not trivial? Train a small CNN and measure.

The benchmark needs room between FL algorithms: if a small CNN trained centrally for a minute
scores 1.0, every algorithm ties; if it scores chance, none can be judged. This module renders a
balanced set over ALL the modality's concepts, spread over a few "sites" that each apply their own
random ``ScannerStyle`` (so a site's look is never a shortcut for the label), trains a 4-block CNN
on CPU and reports balanced accuracy on held-out images. ``DEFAULT_DIFFICULTY`` is calibrated with
it (``benchmarks/learnability.py``).
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from envs.synth import DEFAULT_DIFFICULTY, ScannerStyle, get_renderer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnabilityResult:
    """Outcome of one learnability run (accuracies on held-out images)."""

    balanced_accuracy: float
    accuracy: float
    n_train: int
    n_test: int
    seconds: float


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU-pool blocks, global average pooling and a linear head (~100k weights)."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 24) -> None:
        super().__init__()
        chans = [in_channels, width, width * 2, width * 4, width * 4]
        blocks: list[nn.Module] = []
        for cin, cout in itertools.pairwise(chans):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images (N, C, H, W) scaled to about [-1, 1]."""
        return self.head(self.features(x).mean(dim=(2, 3)))


def render_dataset(
    modality: str,
    n_per_class: int,
    size: int = 64,
    seed: int = 0,
    difficulty: float | None = None,
    n_sites: int = 4,
    render_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a balanced, styled image set.

    Images are drawn at ``render_size`` (default ``2 * size``, as a builder would store them) and
    resized to ``size`` for training. Each image goes to one of ``n_sites`` sites at random; each
    site has its own sampled scanner style.

    Returns:
        (images uint8 N x C x H x W, labels int64 N, site ids int64 N)
    """
    renderer = get_renderer(modality)
    rng = np.random.default_rng(seed)
    styles = [ScannerStyle.sample(modality, rng) for _ in range(n_sites)]
    rs = render_size or 2 * size
    images, labels, sites = [], [], []
    for label, concept in enumerate(renderer.concepts):
        for _ in range(n_per_class):
            site = int(rng.integers(n_sites))
            img = styles[site].apply(renderer.render(concept, rng, rs, difficulty), rng)
            if rs != size:
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(label)
            sites.append(site)
    return np.stack(images), np.asarray(labels, np.int64), np.asarray(sites, np.int64)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean per-class recall over the classes present in ``y_true``."""
    recalls = [float((y_pred[y_true == k] == k).mean()) for k in range(n_classes) if (y_true == k).any()]
    return float(np.mean(recalls))


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """uint8 images N x C x H x W as the float tensor :class:`SmallCNN` is trained on (-1 to 1)."""
    return torch.from_numpy(x).float().div_(127.5).sub_(1.0)


def train_small_cnn(xt: torch.Tensor, yt: torch.Tensor, train_idx: np.ndarray, n_classes: int, *, epochs: int,
                    seed: int = 0, batch_size: int = 64, lr: float = 3e-3,
                    rng: np.random.Generator | None = None) -> SmallCNN:
    """Train a :class:`SmallCNN` on the images ``train_idx`` of ``xt`` (AdamW, one-cycle, random flips)."""
    rng = rng or np.random.default_rng(seed + 1)
    torch.manual_seed(seed)
    model = SmallCNN(xt.shape[1], n_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * int(np.ceil(len(train_idx) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(train_idx)
        for i in range(0, len(order), batch_size):
            b = torch.from_numpy(order[i : i + batch_size])
            xb = xt[b]
            if rng.random() < 0.5:  # flips: anatomy-side is never the label
                xb = xb.flip(3)
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[b])
            loss.backward()
            opt.step()
            sched.step()
        log.debug("epoch %d loss %.3f", epoch, loss.item())
    return model


def learnability(
    modality: str,
    *,
    n_per_class: int,
    size: int = 64,
    epochs: int,
    seed: int = 0,
    difficulty: float | None = None,
    threads: int = 1,
    test_fraction: float = 0.25,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> LearnabilityResult:
    """Render, train a ``SmallCNN`` centrally on CPU and score it on held-out images.

    Args:
        modality: one of ``envs.concepts.MODALITIES``.
        n_per_class: images per concept (train + test).
        size: training resolution in pixels.
        epochs: passes over the training images.
        seed: seeds rendering, the split, initialisation and batching.
        difficulty: renderer difficulty; None uses ``DEFAULT_DIFFICULTY[modality]``.
        threads: torch CPU threads (the shared machine has few cores).
        test_fraction: share of each class held out for evaluation.
    """
    start = time.perf_counter()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        d = DEFAULT_DIFFICULTY[modality] if difficulty is None else difficulty
        x, y, _ = render_dataset(modality, n_per_class, size, seed, d)
        n_classes = int(y.max()) + 1
        rng = np.random.default_rng(seed + 1)
        test = np.zeros(len(y), bool)
        for k in range(n_classes):
            idx = np.flatnonzero(y == k)
            test[rng.choice(idx, max(1, round(len(idx) * test_fraction)), replace=False)] = True
        xt = to_tensor(x)
        model = train_small_cnn(xt, torch.from_numpy(y), np.flatnonzero(~test), n_classes, epochs=epochs, seed=seed,
                                batch_size=batch_size, lr=lr, rng=rng)
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(xt[torch.from_numpy(c)]).argmax(1) for c in np.array_split(np.flatnonzero(test), 8)
                              if len(c)]).numpy()
        y_test = y[test]
        return LearnabilityResult(
            balanced_accuracy=balanced_accuracy(y_test, pred, n_classes),
            accuracy=float((pred == y_test).mean()),
            n_train=int((~test).sum()),
            n_test=int(test.sum()),
            seconds=time.perf_counter() - start,
        )
    finally:
        torch.set_num_threads(old_threads)
