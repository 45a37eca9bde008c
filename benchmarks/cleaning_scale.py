"""Cleaning at hospital scale: throughput and peak memory of the three C2 cleaning tools.

Real hospitals hold 10k-100k images per site. This writes one organised folder of ``N`` synthetic
images (``work/organized/scale/<class>/<name>.png``) drawn by the ``envs.synth`` renderers at the
size the tools see (a site's stored side, 96-144 px), with planted near-duplicates, off-topic images
and wrong labels so the detectors have real work, then runs ``find_duplicates``, ``find_offtopic``
and ``find_label_errors`` (flag mode, through their LangChain tools) each in its own subprocess, so
that one tool's peak resident memory does not mix with another's. Printed per size and tool:
wall seconds and images/s, CPU seconds (user + system, all threads) and images per CPU-second,
peak RSS, the RSS before the call (imports), flagged against planted, and precision and recall
against the planted kind: a flagged copy is right when it and the image kept for it are renders of
the same original; an off-topic or label-error flag when the file was planted as one (re-derived
from the seeded renderer, see :func:`planted`). ``--markdown`` also writes the table as Markdown.

Generated folders are kept under ``--work`` and reused (rendering 50k images takes minutes).
The figures are wall-clock on a shared machine: say what else was running when quoting them.

Usage:
    python benchmarks/cleaning_scale.py [--sizes 10000 50000] [--tools find_duplicates ...]
        [--modality xray] [--side 128] [--work DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

TOOLS = ("find_duplicates", "find_offtopic", "find_label_errors")
#: find_label_errors measured right after find_offtopic in the same process, as the C2 steps run: it
#: reuses the features find_offtopic computed (tools.clean.FEATURES). Opt-in with --tools.
AFTER_OFFTOPIC = "find_label_errors_after_offtopic"
FOLDER = "work/organized/scale"
#: Shares of the folder that are planted copies, off-topic images and wrong labels (as the environments plant).
DUPLICATE_SHARE, OFFTOPIC_SHARE, NOISE_SHARE = 0.02, 0.01, 0.03
#: Modalities whose images are drawn as off-topic in a folder of another modality.
OTHER = {"xray": "mri", "mri": "ultrasound", "ultrasound": "xray", "dermatoscopy": "fundus",
         "fundus": "dermatoscopy", "histopathology": "dermatoscopy"}

log = logging.getLogger("cleaning_scale")


def _render_chunk(args: tuple[Path, str, int, int, int, int]) -> list[tuple[str, str]]:
    """Render images ``start..stop`` of the folder; return ``(file name, kind)`` for each file written."""
    from envs.concepts import CHANNELS
    from envs.messiness import near_duplicate
    from envs.synth import get_renderer, render_document

    folder, modality, side, seed, start, stop = args
    renderer = get_renderer(modality)
    mode = "L" if CHANNELS[modality] == 1 else "RGB"
    written = []
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        concept = str(renderer.concepts[i % len(renderer.concepts)])
        label, kind = concept, "image"
        u = rng.random()
        if u < OFFTOPIC_SHARE:
            kind = "offtopic"
            img = (render_document(rng, side) if rng.random() < 0.35
                   else get_renderer(OTHER[modality]).render(None, rng, side))
        else:
            img = renderer.render(concept, rng, side)
            if u < OFFTOPIC_SHARE + NOISE_SHARE:
                kind = "label_noise"
                label = str(rng.choice([c for c in renderer.concepts if c != concept]))
        img = img.convert(mode)
        (folder / label).mkdir(parents=True, exist_ok=True)
        name = f"img_{i:06d}.png"
        img.save(folder / label / name)
        written.append((f"{label}/{name}", kind))
        if kind == "image" and rng.random() < DUPLICATE_SHARE:
            copy, _ = near_duplicate(img, rng)
            copy.save(folder / label / f"dup_{i:06d}.png")
            written.append((f"{label}/dup_{i:06d}.png", "duplicate"))
    return written


def generate(site: Path, n: int, modality: str, side: int, seed: int, workers: int) -> dict[str, int]:
    """Write (or reuse) a site whose organised folder holds about ``n`` images; return counts per kind."""
    summary = site / "generated.json"
    if summary.exists():
        return json.loads(summary.read_text())["counts"]
    folder = site / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (site / "raw").mkdir(exist_ok=True)
    n_originals = round(n / (1 + DUPLICATE_SHARE))
    step = 500
    jobs = [(folder, modality, side, seed, s, min(s + step, n_originals)) for s in range(0, n_originals, step)]
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, chunk in enumerate(pool.map(_render_chunk, jobs), 1):
            for _, kind in chunk:
                counts[kind] = counts.get(kind, 0) + 1
            log.info("rendered %d / %d chunks (%.0f s)", done, len(jobs), time.perf_counter() - t0)
    summary.write_text(json.dumps({"modality": modality, "side": side, "seed": seed, "counts": counts}))
    return counts


def _rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory so far (Linux reports KiB): this process's, or its largest finished child's."""
    return resource.getrusage(who).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process, its threads and its finished children (the decoding
    processes of a large folder): less swayed by other load than wall time."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _warm_imports() -> float:
    """Import what the tools import lazily (SciPy, scikit-learn, faiss); return the seconds it took.

    An agent's process pays them once for all its tool calls, so they are reported apart from
    the tool's own time."""
    t0 = time.perf_counter()
    import faiss  # noqa: F401
    import scipy.linalg  # noqa: F401
    import sklearn.utils.extmath  # noqa: F401
    return time.perf_counter() - t0


def planted(site: Path) -> dict[str, set[str]]:
    """The folder's planted files by kind (``duplicate``, ``offtopic``, ``label_noise``), re-derived
    as :func:`_render_chunk` drew them: the first random number of image ``i``'s generator decides
    off-topic, and a file in another class folder than its concept is a wrong label."""
    from envs.synth import get_renderer

    meta = json.loads((site / "generated.json").read_text())
    concepts = [str(c) for c in get_renderer(meta["modality"]).concepts]
    out: dict[str, set[str]] = {"duplicate": set(), "offtopic": set(), "label_noise": set()}
    for p in (site / FOLDER).glob("*/*.png"):
        name = f"{p.parent.name}/{p.name}"
        i = int(p.stem.split("_")[-1])
        if p.name.startswith("dup_"):
            out["duplicate"].add(name)
        elif np.random.default_rng([meta["seed"], i]).random() < OFFTOPIC_SHARE:
            out["offtopic"].add(name)
        elif p.parent.name != concepts[i % len(concepts)]:
            out["label_noise"].add(name)
    return out


KIND = {"find_duplicates": "duplicate", "find_offtopic": "offtopic", "find_label_errors": "label_noise",
        AFTER_OFFTOPIC: "label_noise"}


def _score(tool_name: str, site: Path, hits: list[str], reasons: dict[str, str]) -> dict[str, float | int]:
    """Right flags, precision and recall of one tool's flags against the planted files."""
    truth = planted(site)[KIND[tool_name]]
    if tool_name == "find_duplicates":  # right when the kept image is a render of the same original
        def index(name: str) -> str:
            return name.rsplit("_", 1)[-1]
        right = sum(index(h) == index(reasons[h].rsplit(" ", 1)[-1]) for h in hits)
    else:
        right = len(set(hits) & truth)
    return {"right": right, "precision": right / max(1, len(hits)), "recall": right / max(1, len(truth))}


def run_one(tool_name: str, site: Path) -> dict:
    """In a fresh process: invoke one cleaning tool on the site's folder and measure it.

    The tools report a few example names only; every flagged file is read from what the tool passes
    to ``tools.clean._report`` (wrapped here), so the flags can be scored.
    """
    from tools import clean
    from tools.clean import make_cleaning_tools
    from tools.sandbox import Workspace

    flagged: dict[str, object] = {}
    report = clean._report

    def spy(ws, step, mode, root, data, hits, reasons, seconds, extra):
        flagged["hits"] = [p.relative_to(root).as_posix() for p in hits]
        flagged["reasons"] = {p.relative_to(root).as_posix(): r for p, r in reasons.items()}
        return report(ws, step, mode, root, data, hits, reasons, seconds, extra)

    clean._report = spy
    tools = {t.name: t for t in make_cleaning_tools(Workspace.open(site))}
    if tool_name == AFTER_OFFTOPIC:
        tools["find_offtopic"].invoke({"folder": FOLDER, "mode": "flag"})
    tool = tools[tool_name.removesuffix("_after_offtopic")]
    import_s = _warm_imports()
    before = _rss_mib()
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    res = tool.invoke({"folder": FOLDER, "mode": "flag"})
    seconds = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    if not isinstance(res, dict):
        raise TypeError(f"{tool_name} failed: {res}")
    keys = ("groups", "similarity_threshold", "model_balanced_accuracy", "model_fit_images")
    return {"tool": tool_name, "seconds": seconds, "cpu_s": cpu, "images": res["images_checked"], "flagged": res["flagged"],
            "rss_before_mib": before, "peak_rss_mib": _rss_mib(), "import_s": import_s,
            "worker_peak_rss_mib": _rss_mib(resource.RUSAGE_CHILDREN),
            **_score(tool_name, site, flagged["hits"], flagged["reasons"]),
            "extra": {k: res[k] for k in keys if k in res}}


def measure(tool_name: str, site: Path, timeout: float) -> dict:
    """Run :func:`run_one` in a subprocess (its own peak RSS); stderr (progress) passes through."""
    cmd = [sys.executable, __file__, "--child", tool_name, "--child-site", str(site)]
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"tool": tool_name, "error": f"over the {timeout:.0f} s timeout"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode or not lines:
        return {"tool": tool_name, "error": f"exit {done.returncode}"}
    return json.loads(lines[-1])


def _planted(tool_name: str, counts: dict[str, int]) -> int:
    return counts.get(KIND[tool_name], 0)


def markdown(results: list[dict], load_start: float) -> str:
    """The results as a Markdown table, with the machine and its load."""
    head = ("| images | tool | seconds | images/s | CPU s | images/CPU-s | peak RSS MiB | worker peak MiB "
            "| flagged | planted | precision | recall | load (1 min) |")
    imports = max((r.get("import_s", 0.0) for r in results), default=0.0)
    lines = [(f"Measured on {os.cpu_count()} cores; load average {load_start:.1f} at start. Seconds exclude the one-time "
             f"imports of SciPy, scikit-learn and faiss ({imports:.1f} s at most), which an agent's process pays once; "
             "CPU s include the decoding worker processes."), "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['size']} | {r['tool']} | {r['error']} |")
            continue
        lines.append(f"| {r['images']} | {r['tool']} | {r['seconds']:.1f} | {r['images'] / r['seconds']:.0f} "
                     f"| {r['cpu_s']:.1f} | {r['images'] / r['cpu_s']:.0f} | {r['peak_rss_mib']:.0f} "
                     f"| {r.get('worker_peak_rss_mib', 0):.0f} | {r['flagged']} "
                     f"| {r['planted']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['load']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Generate the folders, time each tool on each, print one table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--tools", nargs="+", choices=(*TOOLS, AFTER_OFFTOPIC), default=list(TOOLS))
    ap.add_argument("--modality", default="xray", choices=sorted(OTHER))
    ap.add_argument("--side", type=int, default=128, help="stored image side (sites store 96-144 px)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cleaning_scale"), help="generated sites (reused)")
    ap.add_argument("--workers", type=int, default=2, help="processes that render the images")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds one tool may run")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here as Markdown")
    ap.add_argument("--child", choices=(*TOOLS, AFTER_OFFTOPIC), help=argparse.SUPPRESS)
    ap.add_argument("--child-site", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs each CPU variant it tries
    if args.child:
        print(json.dumps(run_one(args.child, args.child_site)), flush=True)
        return
    results = []
    load_start = os.getloadavg()[0]
    print(f"load (1 min avg) at start: {load_start:.1f} on {os.cpu_count()} cores", flush=True)
    print(f"{'images':>7} {'tool':<18}{'seconds':>9}{'img/s':>8}{'cpu s':>8}{'img/cpu-s':>10}{'peak MiB':>10}{'base MiB':>10}"
          f"{'flagged':>9}{'planted':>9}{'prec':>7}{'recall':>7}  load", flush=True)
    for n in args.sizes:
        site = args.work / f"{args.modality}_{args.side}px_n{n}_seed{args.seed}"
        counts = generate(site, n, args.modality, args.side, args.seed, args.workers)
        for tool_name in args.tools:
            r = measure(tool_name, site, args.timeout)
            r.update(size=n, load=os.getloadavg()[0], planted=_planted(tool_name, counts))
            results.append(r)
            if "error" in r:
                print(f"{n:>7} {tool_name:<18}{r['error']}", flush=True)
                continue
            print(f"{r['images']:>7} {tool_name:<18}{r['seconds']:>9.1f}{r['images'] / r['seconds']:>8.0f}"
                  f"{r['cpu_s']:>8.1f}{r['images'] / r['cpu_s']:>10.0f}"
                  f"{r['peak_rss_mib']:>10.0f}{r['rss_before_mib']:>10.0f}{r['flagged']:>9}{r['planted']:>9}"
                  f"{r['precision']:>7.3f}{r['recall']:>7.3f}  {r['load']:.1f} {r['extra'] or ''}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(results, load_start))


if __name__ == "__main__":
    main()
