"""Planning an environment: which hospital holds which data, how much, named how, stored how.

Planning is separated from writing so that every random decision is made up front from one seeded
generator (the same seed always gives the same plan), and so the answer key can be derived from the
plan before a single pixel is drawn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from envs.cards import DatasetCard, cards_for
from envs.concepts import CHANNELS, MODALITIES
from envs.tasks import TaskTemplate

#: Images per labelled dataset at scale 1 (median) and its bounds; sites range from tens to hundreds.
MEDIAN_IMAGES = 110
MIN_IMAGES, MAX_IMAGES = 24, 420
#: Fewest clean images a present class gets, so a site that lists a label really has examples of it.
MIN_PER_LABEL = 4
#: Dirichlet concentration of per-site label proportions (lower = stronger label skew).
DIRICHLET_ALPHA = 0.9
#: Stored image sides a site's scanner produces.
IMAGE_SIZES = (96, 112, 128, 144)
LAYOUTS_ANY = ("class_folders", "flat_csv", "flat_json", "nested_patient")
LAYOUTS_GRAY = ("dicom",)
LAYOUTS_MRI = ("nifti",)


@dataclass
class DatasetPlan:
    """One dataset at one site, before it is drawn."""

    card: DatasetCard
    folder: str
    layout: str
    ext: str  # image file extension for plain-image layouts
    render: str  # "concept" | "other_anatomy" | "other_modality" | "segmentation"
    labelled: bool
    site_labels: dict[str, str | None] = field(default_factory=dict)  # site label -> concept
    legend: dict[str, str] = field(default_factory=dict)  # code -> name, when labels are coded
    counts: dict[str, int] = field(default_factory=dict)  # site label -> clean images
    n_unlabelled: int = 0  # images of a segmentation-only set

    @property
    def n_clean(self) -> int:
        return sum(self.counts.values()) + self.n_unlabelled


@dataclass
class SitePlan:
    site_id: str
    kind: str  # envs.key.SiteKind
    image_size: int
    datasets: list[DatasetPlan]


def slug(name: str) -> str:
    """A folder name a data steward would use for a dataset."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "dataset"


def fit_cards(modality: str) -> list[DatasetCard]:
    """Cards that can serve the modality's tasks: labelled, primary body part, >= 2 concepts."""
    return [
        c
        for c in cards_for(modality)
        if c.task_type in ("classification", "grading")
        and c.fits_primary_body_part
        and len({v for v in c.concepts.values() if v}) >= 2
    ]


def dataset_fits(plan: DatasetPlan, task: TaskTemplate) -> bool:
    """A dataset fits a task when its labelled images cover at least two of the task's classes."""
    if plan.render != "concept" or not plan.labelled:
        return False
    classes = {task.class_of(plan.site_labels[label]) for label, n in plan.counts.items() if n > 0}
    classes.discard(None)
    return len(classes) >= 2


def _rename_labels(card: DatasetCard, variants: dict[str, tuple[str, ...]], rng: np.random.Generator):
    """Site label names for a card's native labels: as published, renamed, or numerically coded."""
    natives = list(card.native_labels)
    style = rng.choice(["native", "variant", "coded"], p=[0.45, 0.4, 0.15])
    if style == "coded" and not all(n.isdigit() for n in natives):
        codes = [str(i) for i in range(len(natives))]
        return {code: card.concepts[n] for code, n in zip(codes, natives)}, dict(zip(codes, natives))
    if style == "variant":
        renamed = {}
        for n in natives:
            concept = card.concepts[n]
            options = variants.get(concept or "", ())
            renamed[n] = str(rng.choice(options)) if options else n
        if len(set(renamed.values())) == len(natives):
            return {renamed[n]: card.concepts[n] for n in natives}, {}
    return {n: card.concepts[n] for n in natives}, {}


def _label_counts(labels: list[str], total: int, rng: np.random.Generator, concept_of) -> dict[str, int]:
    """Dirichlet label proportions; some labels vanish (label skew) but >= 2 concepts stay present."""
    props = rng.dirichlet([DIRICHLET_ALPHA] * len(labels))
    counts = {lab: int(round(p * total)) for lab, p in zip(labels, props)}  # noqa: RUF046  numpy<2 scalars
    present = [lab for lab in labels if counts[lab] >= MIN_PER_LABEL]
    concepts = {concept_of(lab) for lab in present} - {None}
    if len(concepts) < 2:  # keep the two largest concept-bearing labels so the set stays usable
        ranked = sorted((lab for lab in labels if concept_of(lab)), key=lambda lab: -counts[lab])
        present = list(dict.fromkeys(present + ranked[:2]))
    return {lab: (max(counts[lab], MIN_PER_LABEL) if lab in present else 0) for lab in labels}


def _n_images(scale: float, rng: np.random.Generator) -> int:
    n = rng.lognormal(np.log(MEDIAN_IMAGES), 0.6)
    return int(np.clip(n, MIN_IMAGES, MAX_IMAGES) * scale)


def _layouts_for(modality: str) -> tuple[str, ...]:
    extra = LAYOUTS_GRAY if CHANNELS[modality] == 1 else ()
    return LAYOUTS_ANY + extra + (LAYOUTS_MRI if modality == "mri" else ())


def _labelled_plan(card, render, layout, scale, variants, rng) -> DatasetPlan:
    labels, legend = _rename_labels(card, variants, rng)
    plan = DatasetPlan(card, slug(card.name), layout, _ext(card, rng), render, True, labels, legend)
    plan.counts = _label_counts(list(labels), _n_images(scale, rng), rng, labels.get)
    _drop_absent_labels(plan)
    return plan


def _drop_absent_labels(plan: DatasetPlan) -> None:
    """A site describes the labels it has: labels with no images leave the plan (and its card)."""
    present = {lab for lab, n in plan.counts.items() if n > 0}
    plan.counts = {lab: n for lab, n in plan.counts.items() if lab in present}
    plan.site_labels = {lab: c for lab, c in plan.site_labels.items() if lab in present}
    plan.legend = {code: name for code, name in plan.legend.items() if code in present}


def _ext(card: DatasetCard, rng: np.random.Generator) -> str:
    return "jpg" if card.file_format == "jpg" or (card.file_format == "mixed" and rng.random() < 0.5) else "png"


def plan_sites(modality: str, env, seed: int, scale: float, attempt: int = 0) -> list[SitePlan]:
    """Plan every client site of one environment (deterministic in ``seed``)."""
    rng = np.random.default_rng([seed, MODALITIES.index(modality), 7, attempt])
    fits = fit_cards(modality)
    if len(fits) < 2:
        raise ValueError(f"the {modality} catalog has {len(fits)} usable cards; the builder needs at least 2")
    n_sites = int(rng.integers(env.SITE_RANGE[0], env.SITE_RANGE[1] + 1))
    unfit_kinds = list(rng.permutation(["wrong_body_part", "segmentation_only", "other_modality"]))
    n_unfit = 2 if n_sites >= 6 else 1
    layouts = list(rng.permutation(_layouts_for(modality)))
    k = layouts.index("flat_csv")  # every environment has a CSV (it carries identifiers and injections)
    if k >= 3:
        j = int(rng.integers(3))
        layouts[j], layouts[k] = layouts[k], layouts[j]
    chosen = [fits[i] for i in rng.permutation(len(fits))]
    sites: list[SitePlan] = []
    for i in range(n_sites - n_unfit):
        datasets = [_labelled_plan(chosen[i % len(chosen)], "concept", layouts[i % len(layouts)], scale,
                                   env.LABEL_VARIANTS, rng)]
        if rng.random() < 0.3:
            extra = chosen[(i + n_sites) % len(chosen)]
            if extra.name != datasets[0].card.name:
                layout = layouts[(i + n_sites) % len(layouts)]
                datasets.append(_labelled_plan(extra, "concept", layout, scale, env.LABEL_VARIANTS, rng))
        if i == 0 or rng.random() < 0.2:  # a usable site that also keeps data no task can use
            kinds = list(rng.permutation(["segmentation_only", "wrong_body_part"]))
            unfit = _unfit_dataset(modality, kinds[0], env, scale, rng) or _unfit_dataset(
                modality, kinds[1], env, scale, rng)
            if unfit is not None:
                datasets.append(unfit)
        sites.append(SitePlan("", "fit", int(rng.choice(IMAGE_SIZES)), datasets))
    made = 0
    for kind in unfit_kinds:  # a kind the catalog cannot supply falls through to the next one
        dataset = _unfit_dataset(modality, kind, env, scale, rng) if made < n_unfit else None
        if dataset is not None:
            sites.append(SitePlan("", kind, int(rng.choice(IMAGE_SIZES)), [dataset]))
            made += 1
    order = rng.permutation(len(sites))  # site numbers must not reveal which sites fit
    sites = [sites[j] for j in order]
    for k, site in enumerate(sites, start=1):
        site.site_id = f"site_{k:02d}"
    return sites


def _unfit_dataset(modality: str, kind: str, env, scale: float, rng) -> DatasetPlan | None:
    """A dataset no task of this modality can use, of the given kind (None if the catalog has none)."""
    cards = cards_for(modality)
    if kind == "wrong_body_part":
        pool = [c for c in cards if not c.fits_primary_body_part and c.native_labels]
        render, layout = "other_anatomy", "class_folders"
    elif kind == "segmentation_only":
        pool = [c for c in cards if c.task_type == "segmentation"]
        render, layout = "segmentation", "masks"
    else:
        neighbour = str(rng.choice(env.NEIGHBOUR_MODALITIES))
        pool = fit_cards(neighbour)
        render, layout = "other_modality", "class_folders"
    if not pool:
        return None
    card = pool[int(rng.integers(len(pool)))]
    if render == "segmentation":
        plan = DatasetPlan(card, slug(card.name), layout, "png", render, False)
        plan.n_unlabelled = _n_images(scale * 0.5, rng)
        return plan
    labels = {n: card.concepts.get(n) for n in card.native_labels}
    plan = DatasetPlan(card, slug(card.name), layout, _ext(card, rng), render, True, labels)
    plan.counts = _label_counts(list(labels), _n_images(scale * 0.6, rng), rng, lambda lab: lab)
    _drop_absent_labels(plan)
    return plan
