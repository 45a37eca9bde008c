"""Drawing one dataset's images and mess as in-memory items, before any layout is chosen.

Each clean image gets its own generator derived from (seed, site, dataset, index), so the picture of
image *i* does not depend on how many images came before it or on the order of rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from envs import messiness
from envs.concepts import CHANNELS, MODALITIES
from envs.key import FileTruth
from envs.plan import DatasetPlan, SitePlan


@dataclass
class Item:
    """One file-to-be: a picture (or raw bytes) plus the truth the answer key records."""

    stem: str
    truth: FileTruth
    image: Image.Image | None = None  # None when ``raw`` holds undecodable bytes
    raw: bytes | None = None
    label: str | None = None  # the label the dataset's metadata gives (None: unlabelled)
    extras: dict = field(default_factory=dict)


def _mode(modality: str) -> str:
    return "L" if CHANNELS[modality] == 1 else "RGB"


def _rng(seed: int, site: SitePlan, ds_index: int, *path: int) -> np.random.Generator:
    return np.random.default_rng([seed, int(site.site_id[-2:]), ds_index, *path])


def _stems(prefix: str, n: int, rng: np.random.Generator, taken: set[str] = frozenset()) -> list[str]:
    """``n`` unique file stems, none in ``taken``; mess and clean files share one naming scheme."""
    out: list[str] = []
    while len(out) < n:
        for k in rng.choice(9_000_000, size=n - len(out), replace=False) + 1_000_000:
            stem = f"{prefix}_{int(k)}"
            if stem not in taken and stem not in out:
                out.append(stem)
    return out


def stem_prefix(plan: DatasetPlan) -> str:
    """The dataset's file-name prefix, as its original export names files."""
    return plan.folder.split("_")[0][:8].upper() or "IMG"


def draw_clean(plan: DatasetPlan, site: SitePlan, style, modality: str, seed: int, ds_index: int,
               difficulty: float | None) -> list[Item]:
    """The dataset's clean images, styled by the site's scanner."""
    from envs.synth import get_renderer

    source = plan.card.modality if plan.render == "other_modality" else modality
    renderer = get_renderer(source)
    mode = _mode(modality)
    jobs: list[tuple[str | None, str | None]] = []
    for label, n in plan.counts.items():
        jobs += [(label, plan.site_labels[label])] * n
    jobs += [(None, None)] * plan.n_unlabelled
    stems = _stems(stem_prefix(plan), len(jobs), _rng(seed, site, ds_index, 0))
    items = []
    for i, (label, concept) in enumerate(jobs):
        rng = _rng(seed, site, ds_index, 1, i)
        if plan.render == "other_anatomy":
            img = renderer.render_other_anatomy(rng, site.image_size)
        elif plan.render == "segmentation":
            img = renderer.render(str(rng.choice(renderer.concepts)), rng, site.image_size, difficulty)
        else:
            img = renderer.render(concept, rng, site.image_size, difficulty if source == modality else None)
        img = style.apply(img, rng).convert(mode)
        truth = FileTruth(role="image", concept=concept if plan.render == "concept" else None, given_label=label)
        items.append(Item(stems[i], truth, image=img, label=label))
    return items


def inject_label_noise(items: list[Item], plan: DatasetPlan, rng: np.random.Generator) -> int:
    """Give some clean images the label of another concept present in the dataset."""
    present = [lab for lab, n in plan.counts.items() if n > 0 and plan.site_labels[lab]]
    candidates = [it for it in items if it.label in present]
    if len({plan.site_labels[lab] for lab in present}) < 2 or not candidates:
        return 0  # noise needs a label of another concept to swap in
    k = min(len(candidates), messiness.how_many("label_noise", len(items)))
    for idx in rng.choice(len(candidates), size=k, replace=False):
        item = candidates[int(idx)]
        others = [lab for lab in present if plan.site_labels[lab] != plan.site_labels[item.label]]
        item.label = str(rng.choice(others))
        item.truth.given_label, item.truth.noisy = item.label, True
    return k


def inject_mess(items: list[Item], plan: DatasetPlan, modality: str, neighbours, rng) -> dict[str, int]:
    """Add duplicates, off-topic and corrupt files, mixed channel modes and masks; return counts."""
    from envs.synth import get_renderer, render_document

    clean = [it for it in items if it.truth.role == "image"]
    n, mode, size = len(clean), _mode(modality), clean[0].image.size[0]
    labels = [lab for lab, c in plan.counts.items() if c > 0] or [None]
    counts = {"label_noise": inject_label_noise(clean, plan, rng) if plan.labelled else 0}
    new_stems = iter(_stems(stem_prefix(plan), 4 * n + 16, rng, taken={it.stem for it in items}))

    dup_sources = rng.choice(n, size=min(n, messiness.how_many("duplicate", n)), replace=False)
    for idx in dup_sources:
        src = clean[int(idx)]
        img, how = messiness.near_duplicate(src.image, rng)
        truth = FileTruth(role="duplicate", concept=src.truth.concept, given_label=src.label,
                          duplicate_of=src.stem, note=how)
        items.append(Item(next(new_stems), truth, image=img, label=src.label))
    counts["duplicate"] = len(dup_sources)

    k = messiness.how_many("offtopic", n)
    for _ in range(k):
        if rng.random() < 0.35:
            img, note = render_document(rng, size), "a photo of a paper form"
        else:
            other = str(rng.choice(neighbours))
            img, note = get_renderer(other).render(None if rng.random() < 0.3 else
                                                   str(rng.choice(get_renderer(other).concepts)),
                                                   rng, size), f"a {other} image"
        label = rng.choice(labels)
        items.append(Item(next(new_stems), FileTruth(role="offtopic", given_label=label, note=note),
                          image=img.convert(mode), label=label))
    counts["offtopic"] = k

    k = messiness.how_many("corrupt", n)
    for _ in range(k):
        src = clean[int(rng.integers(n))]
        label = rng.choice(labels)
        items.append(Item(next(new_stems), FileTruth(role="corrupt", given_label=label), label=label,
                          extras={"corrupt_from": src.image}))
    counts["corrupt"] = k

    k = messiness.how_many("mixed_modes", n)
    for idx in rng.choice(n, size=min(n, k), replace=False):
        item = clean[int(idx)]
        item.image = item.image.convert("RGB" if mode == "L" else "L")
        item.truth.note = f"stored as {item.image.mode} although the set is {mode}"
    counts["mixed_modes"] = min(n, k)

    if plan.layout in ("class_folders", "flat_csv", "flat_json"):
        k = messiness.how_many("mask", n)
        for idx in rng.choice(n, size=min(n, k), replace=False):
            item = clean[int(idx)]
            item.extras["mask"] = messiness.mask_for(item.image.size, rng)
        counts["mask"] = min(n, k)
    return counts


def concept_counts(items: list[Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        if it.truth.role == "image" and it.truth.concept:
            out[it.truth.concept] = out.get(it.truth.concept, 0) + 1
    return dict(sorted(out.items()))


def feature_stats(items: list[Item]) -> dict[str, float]:
    """Mean/std of intensity and image side over clean images: the site's feature fingerprint."""
    arrs = [np.asarray(it.image.convert("L"), dtype=np.float32) / 255 for it in items
            if it.truth.role == "image" and it.image is not None][:64]
    if not arrs:
        return {}
    means = [a.mean() for a in arrs]
    stds = [a.std() for a in arrs]
    return {"intensity_mean": float(np.mean(means)), "intensity_std": float(np.mean(stds)),
            "side_px": float(np.mean([a.shape[0] for a in arrs]))}


__all__ = ["MODALITIES", "Item", "concept_counts", "draw_clean", "feature_stats", "inject_mess"]
