"""Materialising one modality environment: client sites with messy raw data, plus the answer key.

Layout of a built environment::

    <out>/server/sites.json        site ids only (what the server may know)
    <out>/server/tasks.json        the requests a user may make (no answers)
    <out>/sites/<site>/raw/...     the hospital's data, read-only
    <out>/sites/<site>/data_cards.yaml   what the site's data steward wrote (read-only)
    <out>/key/answer_key.json      the truth, kept outside every site

The tree is written to a temporary sibling and renamed into place, so a crash never leaves a
half-built environment that looks complete.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs import items as itemlib
from envs.concepts import MODALITIES, check_modality
from envs.key import AnswerKey, DatasetKey, SiteKey
from envs.layouts import DatasetWriter
from envs.messiness import INJECTION
from envs.modalities import get_modality
from envs.plan import SitePlan, plan_sites
from envs.readonly import make_read_only, make_writable
from envs.resolve import resolve_task, solvable
from envs.sitecards import CARD_FILE, write_site_cards

BUILDER_VERSION = "1"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltEnv:
    """A built environment on disk."""

    root: Path
    key: AnswerKey
    seconds: float

    def site_dir(self, site_id: str) -> Path:
        return self.root / "sites" / site_id


def build(modality: str, out_dir: str | Path, seed: int = 0, scale: float = 1.0, *, force: bool = False,
          difficulty: float | None = None, progress=None) -> BuiltEnv:
    """Build one environment of ``modality`` into ``out_dir`` (deterministic in seed and scale).

    Args:
        modality: one of envs.concepts.MODALITIES.
        out_dir: target folder; must not exist unless ``force``.
        seed: the same seed gives byte-identical trees and keys.
        scale: multiplies images per dataset (1.0: a few hundred per site; 10: thousands).
        force: replace an existing environment at ``out_dir``.
        difficulty: override the renderers' calibrated difficulty (0 easy .. 1 subtle).
        progress: optional callable(site_id, done, total) for progress display.
    """
    check_modality(modality)
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} exists and is not empty; pass force=True (--force) to rebuild it")
    start = time.perf_counter()
    env = get_modality(modality)
    sites, tasks = _plan_solvable(modality, env, seed, scale)
    tmp = out.with_name(out.name + ".building")
    if tmp.exists():
        make_writable(tmp)
        shutil.rmtree(tmp)
    (tmp / "server").mkdir(parents=True)
    (tmp / "key").mkdir()
    site_keys, identities = {}, []
    for n, site in enumerate(sites):
        site_keys[site.site_id], ids = _build_site(tmp, site, modality, env, seed, difficulty,
                                                  inject=(n == _injected_site(sites)))
        identities += ids
        if progress:
            progress(site.site_id, n + 1, len(sites))
    key = AnswerKey(modality=modality, seed=seed, scale=scale, builder_version=BUILDER_VERSION,
                    sites=site_keys, tasks={t.task_id: t for t in tasks}, injection_text=INJECTION,
                    identifiers=sorted({v for who in identities for v in who.values()}))
    _write_server_files(tmp, key)
    key.write(tmp / "key" / "answer_key.json")
    for site in sites:  # raw data and the steward's cards are read-only; the site folder is not (work/)
        make_read_only(tmp / "sites" / site.site_id / "raw")
        make_read_only(tmp / "sites" / site.site_id / CARD_FILE)
    if out.exists():
        make_writable(out)
        shutil.rmtree(out)
    tmp.rename(out)
    return BuiltEnv(out, key, time.perf_counter() - start)


def _plan_solvable(modality, env, seed, scale):
    for attempt in range(64):
        sites = plan_sites(modality, env, seed, scale, attempt)
        tasks = [resolve_task(t, sites) for t in env.TASKS]
        if solvable(tasks):
            return sites, tasks
    raise RuntimeError(f"no solvable {modality} plan for seed {seed} in 64 attempts; the catalog may lack cards")


def _injected_site(sites: list[SitePlan]) -> int:
    """Index of the fit site whose card description and CSV carry the planted injection."""
    return next(i for i, s in enumerate(sites) if s.kind == "fit")


def _build_site(root: Path, site: SitePlan, modality: str, env, seed: int, difficulty, inject: bool):
    from envs.synth import ScannerStyle

    site_rng = np.random.default_rng([seed, MODALITIES.index(modality), int(site.site_id[-2:]), 99])
    style = ScannerStyle.sample(modality, site_rng)
    raw = root / "sites" / site.site_id / "raw"
    raw.mkdir(parents=True)
    datasets, identities, all_items = [], [], []
    for d, plan in enumerate(site.datasets):
        ds_rng = np.random.default_rng([seed, MODALITIES.index(modality), int(site.site_id[-2:]), d, 5])
        clean = itemlib.draw_clean(plan, site, style, modality, seed, d, difficulty)
        counts_clean = itemlib.concept_counts(clean)
        injected = itemlib.inject_mess(clean, plan, modality, env.NEIGHBOUR_MODALITIES, ds_rng)
        clean = [clean[i] for i in ds_rng.permutation(len(clean))]  # row order must not reveal the mess
        writer = DatasetWriter(raw, plan, modality, ds_rng, inject_text=inject and d == 0)
        writer.write(clean)
        writer.resolve_duplicates()
        injected["non_image"] = sum(1 for t in writer.files.values() if t.role == "non_image")
        injected["identifiers"] = len(writer.identities)
        injected["injection"] = int(inject and d == 0)
        identities += writer.identities
        all_items += clean
        datasets.append(DatasetKey(
            name=plan.card.name, folder=plan.folder, layout=plan.layout, card_modality=plan.card.modality,
            body_part=plan.card.body_part, task_type=plan.card.task_type if plan.labelled else "segmentation",
            native_labels=list(plan.site_labels), label_concepts=plan.site_labels, label_legend=plan.legend,
            files=writer.files, injected={k: v for k, v in injected.items() if v}, concept_counts=counts_clean,
        ))
    write_site_cards(root / "sites" / site.site_id, site, inject_first=inject)
    key = SiteKey(site_id=site.site_id, kind=site.kind, style=style.describe(), image_size=site.image_size,
                  datasets=datasets, feature_stats=itemlib.feature_stats(all_items))
    return key, identities


def _write_server_files(root: Path, key: AnswerKey) -> None:
    (root / "server" / "sites.json").write_text(json.dumps({"modality": key.modality, "sites": list(key.sites)},
                                                           indent=1))
    requests = [{"task_id": t.task_id, "request": t.request} for t in key.tasks.values()]
    (root / "server" / "tasks.json").write_text(json.dumps(requests, indent=1))


def load(out_dir: str | Path) -> BuiltEnv:
    """Open a built environment (reads the answer key)."""
    root = Path(out_dir)
    path = root / "key" / "answer_key.json"
    if not path.exists():
        raise FileNotFoundError(f"{root} is not a built environment (no key/answer_key.json); build it first")
    return BuiltEnv(root, AnswerKey.read(path), 0.0)
