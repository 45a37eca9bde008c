"""Cleaning quality: the C2 cleaning tools against the answer key, per modality.

For every labelled dataset of a built environment this writes the folder the organiser would
produce (``work/organized/<dataset>/<given label>/<stem>.png``: every decodable image, duplicates,
off-topic and noisy-label images included; corrupt files, stray files and masks left out), runs the
three detectors in ``remove`` mode through their LangChain tools, and scores what they moved against
the key: precision and recall per detector, summed over the modality's datasets, plus seconds.
It also counts what the off-topic finder flags in copies of the folders with their off-topic images
left out (its false alarms where there is nothing to find).
A second measurement times the duplicate finder on 10,000 small synthetic images.

Usage:
    python benchmarks/cleaning_quality.py [--modality M ...] [--scale S] [--seed N] [--throughput-only]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envs.build import BuiltEnv, build
from envs.concepts import MODALITIES
from tools.imageio import UnreadableImage, read_image

#: Which answer-key condition each detector should find.
DETECTORS = ("duplicates", "offtopic", "label_errors")
TOOL_OF = {"duplicates": "find_duplicates", "offtopic": "find_offtopic", "label_errors": "find_label_errors"}
TARGETS = {"duplicates": (0.95, 0.95), "offtopic": (0.9, 0.9), "label_errors": (0.7, 0.5)}


@dataclass
class PreparedFolder:
    """One organised dataset folder inside a site workspace, and the truth about each file name."""

    site_dir: Path
    rel: str  # site-relative folder, e.g. "work/organized/isic_2017"
    truth: dict[str, set[str]] = field(default_factory=dict)  # detector -> file names it should move
    n_files: int = 0


def prepare_folders(env: BuiltEnv, sites_root: Path | None = None, min_images: int = 8) -> list[PreparedFolder]:
    """Write each labelled dataset as an organised class-folder tree into a copy of its site.

    Args:
        env: a built environment (its raw trees are only read).
        sites_root: where the site copies go (each gets ``work/organized/<dataset>``); default: the
            environment's own site folders (their ``work/`` is writable).
        min_images: skip datasets with fewer decodable, labelled images.
    """
    out = []
    for site_id, site in env.key.sites.items():
        src_site = env.site_dir(site_id)
        site_dir = src_site if sites_root is None else Path(sites_root) / site_id
        (site_dir / "raw").mkdir(parents=True, exist_ok=True)
        for ds in site.datasets:
            labelled = [(rel, t) for rel, t in ds.files.items()
                        if t.role in ("image", "duplicate", "offtopic") and t.given_label is not None]
            if len(labelled) < min_images:
                continue
            rel_folder = f"work/organized/{ds.folder.replace('/', '_')}"
            prepared = PreparedFolder(site_dir, rel_folder, {d: set() for d in DETECTORS})
            for rel, truth in labelled:
                try:
                    img = read_image(src_site / "raw" / rel)
                except UnreadableImage:
                    continue
                name = rel.rsplit("/", 1)[-1].split(".")[0] + ".png"
                dest = site_dir / rel_folder / str(truth.given_label) / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                img.save(dest)
                prepared.n_files += 1
                kind = {"duplicate": "duplicates", "offtopic": "offtopic"}.get(truth.role)
                if kind:
                    prepared.truth[kind].add(name)
                elif truth.noisy:
                    prepared.truth["label_errors"].add(name)
            out.append(prepared)
    return out


def moved_names(site_dir: Path, result: dict) -> set[str]:
    """File names a detector moved, read from its manifest (the tool's output names the manifest)."""
    manifest = Path(site_dir) / result["manifest"]
    return {Path(rec["from"]).name for rec in json.loads(manifest.read_text())["moved"]}


def score(found: set[str], truth: set[str]) -> tuple[int, int, int]:
    """True positives, false positives, false negatives."""
    return len(found & truth), len(found - truth), len(truth - found)


def prf(tp: int, fp: int, fn: int) -> tuple[float, float]:
    """Precision and recall (1.0 where nothing was to be found and nothing was flagged)."""
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)


def evaluate_folders(folders: list[PreparedFolder], params: dict[str, dict] | None = None) -> dict[str, dict]:
    """Run the three tools in remove mode on each folder (duplicates first); sum the scores."""
    from tools.clean import make_cleaning_tools
    from tools.sandbox import Workspace

    params = params or {}
    totals = {d: {"tp": 0, "fp": 0, "fn": 0, "seconds": 0.0} for d in DETECTORS}
    for f in folders:
        tools = {t.name: t for t in make_cleaning_tools(Workspace.open(f.site_dir))}
        removed: set[str] = set()
        for det in DETECTORS:
            t0 = time.perf_counter()
            res = tools[TOOL_OF[det]].invoke({"folder": f.rel, "mode": "remove", **params.get(det, {})})
            totals[det]["seconds"] += time.perf_counter() - t0
            if not isinstance(res, dict):
                raise TypeError(f"{TOOL_OF[det]} failed on {f.rel}: {res}")
            found = moved_names(f.site_dir, res) if res.get("moved") else set()
            # a file an earlier step removed cannot be found by a later one: score against what is left
            tp, fp, fn = score(found, f.truth[det] - removed)
            for k, v in zip(("tp", "fp", "fn"), (tp, fp, fn)):
                totals[det][k] += v
            removed |= found
    for t in totals.values():
        t["precision"], t["recall"] = prf(t["tp"], t["fp"], t["fn"])
    return totals


def offtopic_flags_when_none_planted(folders: list[PreparedFolder], root: Path) -> dict[str, int]:
    """How many images ``find_offtopic`` flags in copies of the folders with their off-topic images left out.

    The precision above is measured on folders that all hold off-topic images; this is the false-alarm
    rate of a folder that holds none (the copies are flagged, never changed). The planted duplicate
    copies are left out too: the duplicate step runs first (here in :func:`evaluate_folders`, in the
    C2 prompt and in the scripted C2), and a re-encoded or altered copy in a very uniform folder is
    itself unusual (fundus, seed 1, read at 64 px: 34 images flagged with the copies in, 1 without).
    """
    from tools.clean import make_cleaning_tools
    from tools.sandbox import Workspace

    out = {"flagged": 0, "images": 0, "folders_flagged": 0, "folders": 0}
    for i, f in enumerate(folders):
        site = Path(root) / f"clean_{i}"
        (site / "raw").mkdir(parents=True, exist_ok=True)
        src = f.site_dir / f.rel
        for p in src.rglob("*"):
            if p.is_file() and p.name not in f.truth["offtopic"] | f.truth["duplicates"]:
                dest = site / f.rel / p.relative_to(src)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, dest)
                out["images"] += 1
        tool = {t.name: t for t in make_cleaning_tools(Workspace.open(site))}["find_offtopic"]
        res = tool.invoke({"folder": f.rel, "mode": "flag"})
        if not isinstance(res, dict):
            raise TypeError(f"find_offtopic failed on a copy of {f.rel}: {res}")
        out["flagged"] += res["flagged"]
        out["folders_flagged"] += res["flagged"] > 0
        out["folders"] += 1
        shutil.rmtree(site, ignore_errors=True)
    return out


def duplicate_throughput(n: int = 10_000, side: int = 64, seed: int = 0) -> dict[str, float]:
    """Images/s of ``find_duplicates`` (flag mode) on ``n`` synthetic images with 5% near-duplicates."""
    from envs.messiness import near_duplicate
    from envs.synth import get_renderer
    from tools.clean import make_cleaning_tools
    from tools.sandbox import Workspace

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site_tp"
        (site / "raw").mkdir(parents=True)
        folder = site / "work" / "organized" / "synthetic"
        bases = []
        n_base = 200  # render a few hundred, then derive the rest by cheap flips/shifts/noise
        for i, m in enumerate(MODALITIES * (n_base // len(MODALITIES) + 1)):
            if i == n_base:
                break
            r = get_renderer(m)
            bases.append(np.asarray(r.render(str(rng.choice(r.concepts)), rng, side).convert("L"), dtype=np.int16))
        n_dup = n // 20
        for i in range(n - n_dup):
            b = bases[i % n_base]
            arr = np.roll(np.rot90(b, k=(i // n_base) % 4), shift=(i // (4 * n_base)) * 3, axis=1)
            arr = np.clip(arr + rng.integers(-40, 41, size=(8, 8)).repeat(side // 8, 0).repeat(side // 8, 1), 0, 255)
            d = folder / f"c{i % 3}"
            d.mkdir(parents=True, exist_ok=True)
            from PIL import Image

            img = Image.fromarray(arr.astype(np.uint8))
            img.save(d / f"img_{i:05d}.png")
            if i < n_dup:
                near_duplicate(img, rng)[0].save(d / f"dup_{i:05d}.png")
        tool = {t.name: t for t in make_cleaning_tools(Workspace.open(site))}["find_duplicates"]
        t0 = time.perf_counter()
        res = tool.invoke({"folder": "work/organized/synthetic", "mode": "flag"})
        seconds = time.perf_counter() - t0
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds, "flagged": res["flagged"],
            "planted": n_dup}


def main() -> None:
    """Print the cleaning-quality table per modality and the duplicate finder's throughput."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modality", action="append", choices=MODALITIES)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--env-root", type=Path, default=None, help="reuse/keep built environments here")
    ap.add_argument("--throughput-only", action="store_true")
    ap.add_argument("--no-throughput", action="store_true", help="print the quality table only")
    ap.add_argument("--throughput-n", type=int, default=10_000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)
    if not args.throughput_only:
        print(f"{'modality':<16}{'detector':<14}{'found':>6}{'truth':>6}{'prec':>7}{'recall':>7}{'target':>14}"
              f"{'seconds':>9}")
        for m in args.modality or MODALITIES:
            with tempfile.TemporaryDirectory() as tmp:
                root = (args.env_root or Path(tmp)) / f"{m}_s{args.scale}_seed{args.seed}"
                env = build(m, root, seed=args.seed, scale=args.scale, force=True)
                sites = Path(tmp) / "sites"
                folders = prepare_folders(env, sites)
                none_planted = offtopic_flags_when_none_planted(folders, Path(tmp) / "clean")
                res = evaluate_folders(folders)
                for det, r in res.items():
                    tp, fp, fn = r["tp"], r["fp"], r["fn"]
                    tgt = " P>={:.2f} R>={:.2f}".format(*TARGETS[det])
                    print(f"{m:<16}{det:<14}{tp + fp:>6}{tp + fn:>6}{r['precision']:>7.3f}{r['recall']:>7.3f}"
                          f"{tgt:>14}{r['seconds']:>9.1f}", flush=True)
                c = none_planted
                print(f"{m:<16}{'offtopic, none planted':<30}flagged {c['flagged']} of {c['images']} images "
                      f"({c['flagged'] / max(1, c['images']):.1%}), {c['folders_flagged']} of {c['folders']} folders",
                      flush=True)
                shutil.rmtree(sites, ignore_errors=True)
    if args.no_throughput:
        return
    t = duplicate_throughput(args.throughput_n)
    print(f"find_duplicates: {t['images']} images in {t['seconds']:.1f} s = {t['images_per_s']:.0f} images/s "
          f"(flagged {t['flagged']}, planted {t['planted']})")


if __name__ == "__main__":
    main()
