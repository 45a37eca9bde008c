"""Server-side tools for S3 (algorithm selection) and S4 (training operation).

They see only what clients reported (aggregate statistics) and what the runtime knows (where each
approved client's prepared folder is). The model names sites by id, an algorithm by catalog name,
and hyper-parameters; it never sees a path, a pixel or a weight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from fedagentbench.training import check_algorithm, declare
from fl_core.config import RunConfig
from fl_core.result import privacy_note
from tools.training_jobs import JobManager

ClientStats = dict[str, dict[str, Any]]
#: A federation of one site is not a federation: launch_training refuses below this (README, "one site").
MIN_SITES = 2
METRIC_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "loss", "n")


# ----------------------------------------------------------------------------------- statistics
def _js_divergence(p: list[float], q: list[float]) -> float:
    """Jensen-Shannon divergence (base 2, so in [0, 1]) of two distributions."""
    def kl(a: list[float], b: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, b) if x > 0)
    m = [(x + y) / 2 for x, y in zip(p, q)]
    return max(0.0, (kl(p, m) + kl(q, m)) / 2)


def label_skew(stats: ClientStats) -> dict[str, Any]:
    """Per-client JS divergence of its label distribution to the pooled one, and their mean."""
    classes = sorted({c for s in stats.values() for c in s.get("class_counts", {})})
    pooled = [sum(s.get("class_counts", {}).get(c, 0) for s in stats.values()) for c in classes]
    total = sum(pooled)
    if not classes or total == 0:
        return {"classes": classes, "per_client": {}, "mean_js": 0.0}
    pooled_p = [v / total for v in pooled]
    per = {}
    for site, s in stats.items():
        counts = [s.get("class_counts", {}).get(c, 0) for c in classes]
        n = sum(counts)
        per[site] = round(_js_divergence([v / n for v in counts], pooled_p), 4) if n else None
    vals = [v for v in per.values() if v is not None]
    return {"classes": classes, "per_client": per, "mean_js": round(sum(vals) / len(vals), 4) if vals else 0.0}


def feature_skew(stats: ClientStats) -> dict[str, Any]:
    """How far each client's mean intensity lies from the others', in units of within-client spread.

    ``score`` = mean over clients of |client mean - pooled mean| / mean within-client std; 0 when
    clients look alike, above ~0.5 when scanners differ visibly.
    """
    rows = {k: s for k, s in stats.items() if s.get("intensity_mean") is not None}
    if not rows:
        return {"per_client": {}, "score": 0.0}
    weights = {k: max(1, int(s.get("n_images", 1))) for k, s in rows.items()}
    total = sum(weights.values())
    mu = sum(weights[k] * float(s["intensity_mean"]) for k, s in rows.items()) / total
    spread = sum(float(s.get("intensity_std", 0.0)) for s in rows.values()) / len(rows) or 1e-6
    per = {k: round(abs(float(s["intensity_mean"]) - mu) / spread, 4) for k, s in rows.items()}
    sides = [float(s.get("mean_image_side") or s.get("mean_side")) for s in rows.values()
             if s.get("mean_image_side") or s.get("mean_side")]
    return {"per_client": per, "score": round(sum(per.values()) / len(per), 4),
            "image_side_range": [min(sides), max(sides)] if sides else None}


def federation_summary(stats: ClientStats) -> dict[str, Any]:
    """Sizes, label histograms, label skew and feature skew of the reported client statistics."""
    if not stats:
        raise ToolException("no client has reported statistics yet; approve clients and finish preprocessing first")
    ls, fs = label_skew(stats), feature_skew(stats)
    sizes = {k: int(s.get("n_images", 0)) for k, s in stats.items()}
    present = {k: sorted(c for c, n in s.get("class_counts", {}).items() if n > 0) for k, s in stats.items()}
    return {
        "clients": len(stats), "sizes": sizes, "total_images": sum(sizes.values()),
        "size_ratio_max_min": round(max(sizes.values()) / max(1, min(sizes.values())), 2),
        "class_counts": {k: dict(s.get("class_counts", {})) for k, s in stats.items()},
        "clients_missing_a_class": sorted(k for k, p in present.items() if len(p) < len(ls["classes"])),
        "label_skew": {"measure": "Jensen-Shannon divergence to the pooled label distribution (0 none, 1 disjoint)",
                       **ls},
        "feature_skew": {"measure": "|client mean intensity - pooled| / mean within-client std (0 none)", **fs},
    }


def make_selection_tools(get_client_stats: Callable[[], ClientStats]) -> list[BaseTool]:
    """S3's tools: the algorithm catalog and the federation's aggregate statistics."""

    def read_algorithm_catalog() -> list[dict[str, Any]]:
        """List every FL algorithm you can choose: name, full name, key idea, category, when to choose it,
        its hyper-parameters with their defaults, and 'shares': what data-derived content beyond model
        weights its clients upload (e.g. 'statistics', 'features'; empty = weights only). A non-empty
        'shares' is a privacy cost: prefer a weights-only method unless the task needs that one, and
        say why in your reason. Pass the 'name' to the training tool."""
        from algorithms.catalog import as_records

        return as_records()

    def federation_statistics() -> dict[str, Any]:
        """Aggregate statistics of the approved clients: image counts, label histograms, label skew
        (mean Jensen-Shannon divergence of client label distributions to the pooled one) and feature
        skew (spread of the clients' mean intensities). Use them to pick an algorithm for the data."""
        return federation_summary(get_client_stats())

    return [StructuredTool.from_function(f, handle_tool_error=True)
            for f in (read_algorithm_catalog, federation_statistics)]


# ----------------------------------------------------------------------------------- training
class LaunchArgs(BaseModel):
    algorithm: str = Field(description="catalog name of the FL algorithm, e.g. 'fedavg'")
    sites: list[str] | None = Field(default=None, description="approved site ids to train on (default: all)")
    rounds: int = Field(default=5, ge=1, le=200, description="communication rounds")
    local_epochs: int = Field(default=1, ge=1, le=20, description="local epochs per round")
    lr: float | None = Field(default=None, gt=0, le=10, description="client learning rate; leave unset for the "
                              "consortium's setting, which launch_training's answer shows with its optimizer")
    batch_size: int | None = Field(default=None, ge=1, le=1024, description="local mini-batch; leave unset for the "
                                   "consortium's setting")
    algorithm_params: dict[str, float | int | str | bool] = Field(
        default_factory=dict, description="hyper-parameters of the algorithm (see the catalog), e.g. {'mu': 0.01}")
    baselines: bool = Field(default=False, description="also train local-only and pooled baselines (slower)")
    bn_calibration: Literal["none", "local"] = Field(
        default="none", description="'local': each site re-estimates the model's BatchNorm statistics on its own "
        "images before evaluating it; helps when the sites' scanners differ (feature skew)")
    global_pool: Literal["avg", "catavgmax"] = Field(
        default="avg", description="pooling before the classifier: 'catavgmax' also keeps each feature's maximum, "
        "for findings of a few pixels (small tumours, lesions); 'avg' for findings spread over the image")
    engine: Literal["inprocess", "flower-simulation", "flower-deployment"] = Field(
        default="inprocess", description="where training runs: 'inprocess' (all sites in one process, fastest), "
        "'flower-simulation' (Flower's simulation runtime) or 'flower-deployment' (a Flower SuperLink and one "
        "SuperNode process per site, as a real consortium runs)")


class JobArgs(BaseModel):
    job_id: str = Field(description="the id launch_training returned")


class StatusArgs(JobArgs):
    wait_seconds: int = Field(default=30, ge=0, le=120,
                              description="while the job runs, wait up to this long for the next round or the end")


def make_training_tools(client_dirs: dict[str, Path], out_dir: Path, defaults: dict[str, Any] | None = None,
                        manager: JobManager | None = None) -> list[BaseTool]:
    """S4's tools, bound to the runtime's client folders (site id -> prepared folder) and a run folder.

    Args:
        client_dirs: site id -> ``<class>/<image>`` folder of each approved client.
        out_dir: where jobs write their reports (one sub-folder per job).
        defaults: RunConfig fields the model cannot change (model, image_size, device, seed, ...).
        manager: share one :class:`JobManager` across tool sets (tests use it to clean up).
    """
    jobs = manager or JobManager(out_dir)
    fixed = dict(defaults or {})

    def launch_training(algorithm: str, sites: list[str] | None = None, rounds: int = 5, local_epochs: int = 1,
                        lr: float | None = None, batch_size: int | None = None,
                        algorithm_params: dict | None = None, baselines: bool = False,
                        bn_calibration: str = "none", global_pool: str = "avg",
                        engine: str = "inprocess") -> dict[str, Any]:
        """Start federated training in the background and return its job id; poll it with training_status.

        Give the algorithm's catalog name, the approved site ids (default: all), rounds, local epochs
        and, if needed, the algorithm's hyper-parameters. baselines=True also trains local-only and
        pooled reference models for the final report. engine picks where it runs (in this process,
        Flower's simulation, or Flower processes per site).
        """
        from algorithms.registry import list_algorithms

        names = list_algorithms()
        if algorithm not in names:
            raise ToolException(f"unknown algorithm {algorithm!r}; choose one of: {', '.join(names)}")
        chosen = list(sites) if sites else sorted(client_dirs)
        unknown = [s for s in chosen if s not in client_dirs]
        if unknown:
            raise ToolException(f"unknown or unapproved site(s) {unknown}; approved sites: {', '.join(sorted(client_dirs))}")
        if len(set(chosen)) != len(chosen):
            raise ToolException("a site is listed twice; list each approved site once")
        if len(chosen) < MIN_SITES:
            raise ToolException(f"a federation needs at least {MIN_SITES} sites; with {len(chosen)} ({', '.join(chosen)}) "
                                "this would be local training, not federated learning. Launch with two or more "
                                "approved sites, or submit your report with status 'failed' saying the federation "
                                "has too few sites.")
        try:
            check_algorithm(algorithm, dict(algorithm_params or {}))
        except ValueError as exc:
            raise ToolException(f"{str(exc)[:300]}; read the catalog entry's hyper-parameters") from None
        params = {**fixed, "data_dirs": tuple(str(client_dirs[s]) for s in chosen), "algorithm": algorithm,
                  "algorithm_params": dict(algorithm_params or {}), "rounds": rounds, "local_epochs": local_epochs,
                  "bn_calibration": bn_calibration, "global_pool": global_pool, "engine": engine}
        if lr is not None:
            params["lr"] = lr
        if batch_size is not None:
            params["batch_size"] = batch_size
        try:
            cfg = declare(RunConfig(**{**params, "out_dir": str(out_dir)}))
        except (TypeError, ValueError) as exc:
            raise ToolException(f"cannot configure the run: {str(exc)[:300]}") from None
        job = jobs.launch(cfg, chosen, baselines)
        return {"job_id": job.job_id, "state": job.state, "algorithm": algorithm, "sites": chosen,
                "rounds": rounds, "local_epochs": local_epochs, "optimizer": cfg.optimizer, "lr": cfg.lr,
                "batch_size": cfg.batch_size, "baselines": baselines,
                "bn_calibration": bn_calibration, "global_pool": global_pool, "engine": engine,
                "shares": list(cfg.shares), "privacy_note": privacy_note(cfg.shares)}

    def _job(job_id: str):
        job = jobs.get(job_id)
        if job is None:
            raise ToolException(f"no job {job_id!r}; known jobs: {', '.join(jobs.known()) or 'none (launch one first)'}")
        return job

    def training_status(job_id: str, wait_seconds: int = 30) -> dict[str, Any]:
        """Progress of a training job: state (running/finished/stopped/failed), rounds done, and per-round
        validation metric, training loss and pooled test balanced accuracy so far. While the job runs, the
        call waits up to wait_seconds for the next round or the end, so poll it again without pausing."""
        job = _job(job_id)
        _wait_for_progress(job, wait_seconds)
        hist = job.history()
        out: dict[str, Any] = {"job_id": job_id, "state": job.state, "rounds_done": len(hist),
                               "rounds_planned": job.rounds,
                               # a Flower job spends its first minute starting processes before round 1
                               "elapsed_seconds": int(time.time() - job.record.started) if job.record.started else None,
                               "recent_rounds": [{"round": h["round"], "val_metric": _r(h.get("val_metric")),
                                                  "train_loss": _r(h.get("train_loss")),
                                                  "test_balanced_accuracy": _r(h["global"]["overall"].get(
                                                      "balanced_accuracy"))} for h in hist[-5:]]}
        if out["state"] == "failed":
            out["error"] = _last_error(job.log_tail())
        return out

    def stop_training(job_id: str) -> dict[str, Any]:
        """Stop a running training job; rounds already finished stay recorded."""
        job = _job(job_id)
        jobs.stop(job)
        return {"job_id": job_id, "state": job.state, "rounds_done": len(job.history())}

    def training_report(job_id: str) -> dict[str, Any]:
        """Final report of a finished job: test metrics of the trained model (pooled over clients and per
        site), rounds completed, and the local-only and pooled baselines if they were requested."""
        job = _job(job_id)
        summary = job.summary()
        if summary is None:
            raise ToolException(f"job {job_id} is {job.state} and has no final report yet; "
                                + ("poll training_status until it is finished" if job.state == "running"
                                   else "launch a new run"))
        return _report(job_id, job.sites, summary)

    fns = [(launch_training, LaunchArgs), (training_status, StatusArgs), (stop_training, JobArgs),
           (training_report, JobArgs)]
    return [StructuredTool.from_function(f, args_schema=s, handle_tool_error=True,
                                         handle_validation_error=_invalid) for f, s in fns]


def _wait_for_progress(job: Any, wait_seconds: float, poll: float = 0.25) -> None:
    """Block until the job finishes a round, ends, or ``wait_seconds`` pass (a long poll: fewer calls)."""
    deadline = time.monotonic() + max(0.0, wait_seconds)
    rounds = len(job.history())
    while job.state == "running" and len(job.history()) == rounds and time.monotonic() < deadline:
        time.sleep(poll)


def _invalid(exc: Exception) -> str:
    return f"invalid arguments: {str(exc)[:300]}; fix them as the tool's argument descriptions say"


def _r(x: Any) -> Any:
    return round(x, 4) if isinstance(x, float) else x


def _metrics(m: dict[str, Any]) -> dict[str, Any]:
    return {k: _r(m.get(k)) for k in METRIC_KEYS if k in m}


def _report(job_id: str, sites: list[str], s: dict[str, Any]) -> dict[str, Any]:
    """The summary without paths: client folders are replaced by site ids."""
    primary = s["personal"] if s["primary_model"] == "personal" else s["global"]
    out = {"job_id": job_id, "algorithm": s["config"]["algorithm"], "engine": s.get("engine", "inprocess"),
           "classes": s["classes"],
           "rounds_completed": s["rounds_completed"], "stopped_early": s["stopped_early"],
           "best_round": s["best_round"], "primary_model": s["primary_model"],
           "final_test": _metrics(s["final"]),
           "per_site": {site: _metrics(m) for site, m in zip(sites, primary["clients"])},
           "train_seconds": _r(s["train_seconds"])}
    shares = s.get("shares", s["config"].get("shares", []))
    out["shares"], out["privacy_note"] = list(shares), privacy_note(shares)
    skipped = {sites[e["client_id"]]: e["count"] for e in s.get("skipped_images") or []
               if e.get("client_id") is not None and e["client_id"] < len(sites)}
    if skipped:  # counts only: file names stay with the sites
        out["unreadable_images_skipped"] = skipped
    base = s.get("baselines")
    if base:
        out["baselines"] = {"local_only_mean": _metrics(base["local"]["client_mean"]),
                            "local_only_overall": _metrics(base["local"]["overall"]),
                            "pooled": _metrics(base["pooled"]["overall"])}
    return out


def _last_error(log_tail: str) -> str:
    lines = [ln for ln in log_tail.splitlines() if ln.strip()]
    return (lines[-1] if lines else "the training process ended without a report")[:300]
