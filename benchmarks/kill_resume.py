"""Kill ``fedagentbench run`` in each phase and resume it (a benchmark, not a test).

For every role (S1, C1, S2, C2, C3, S3, S4) one scripted run is SIGKILLed while that role works and
then resumed with ``--thread-id`` on the same checkpoint database. The killed run's role is slowed
by a few seconds (the scripted policy answers in milliseconds) so that the kill lands inside it; S4
is killed once its training job has checkpointed a round. For each kill the table shows whether a
training process outlived the killed run, the resumed run's exit code, whether every role passed,
how many roles ran again, whether the training job was restarted from its checkpoint, the final
federated test metrics compared with an uninterrupted reference run's, and the resume's wall time.

Usage::

    python benchmarks/kill_resume.py                    # xray, scale 0.3, 3 rounds
    python benchmarks/kill_resume.py --phases S4 C2 --rounds 4 --json kill_resume.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.job_process import pid_runs
from tools.training_jobs import JOB_FILE

log = logging.getLogger("kill_resume")
REQUEST = "I want to train a binary pneumonia detection model on chest X-rays."
#: The scripted policy (by the schema its role submits) each phase's kill slows down.
SCHEMAS = {"S1": "TaskSpec", "C1": "SelectionReply", "S2": "Approvals", "C2": "PreprocessReport",
           "C3": "HarmonizationReport", "S3": "AlgorithmChoice", "S4": "TrainingReport"}
#: Runs the CLI with one role's policy slowed, so that a kill can land inside that role.
SLOWED_RUN = textwrap.dedent("""
    import sys, time
    from graphs.scripted.model import POLICIES
    schema, delay = sys.argv[1], float(sys.argv[2])
    if schema in POLICIES:
        fast = POLICIES[schema]
        def slow(t):
            time.sleep(delay)
            return fast(t)
        POLICIES[schema] = slow
    from fedagentbench.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def _cli_args(env: Path, out: Path, rounds: int) -> list[str]:
    return ["run", REQUEST, "--env", str(env), "--out", str(out), "--rounds", str(rounds), "--local-epochs", "1",
            "--thread-id", "bench"]


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _job_records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "training").glob(f"job_*/{JOB_FILE}"))]


def _collect(proc: subprocess.Popen, lines: list[str]) -> None:
    """Gather the child's output lines as they come (the kill waits for a role's start line)."""
    for line in proc.stdout or []:
        lines.append(line)  # noqa: PERF402  one by one: the caller reads the list meanwhile


def _kill_in(phase: str, env: Path, out: Path, rounds: int, delay: float, timeout: float) -> dict[str, Any]:
    """Start a slowed run, SIGKILL it inside ``phase``; return what was seen at the kill."""
    cmd = [sys.executable, "-c", SLOWED_RUN, SCHEMAS[phase] if phase != "S4" else "-", str(delay),
           *_cli_args(env, out, rounds)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: list[str] = []
    threading.Thread(target=_collect, args=(proc, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if phase == "S4":
            if list((out / "training").glob("job_*/checkpoint.pt")):
                break
        elif any(line.startswith(phase) and line.rstrip().endswith("started") for line in list(lines)):
            time.sleep(min(1.0, delay / 3))  # inside the slowed role's first model call
            break
        time.sleep(0.05)
    landed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    job_at_kill = ("finished" if list((out / "training").glob("job_*/summary.json")) else "checkpointed"
                   if list((out / "training").glob("job_*/checkpoint.pt")) else "none")
    pids = [r["pid"] for r in _job_records(out)]
    end = time.monotonic() + 10
    while any(pid_runs(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.1)
    return {"kill_landed": landed, "job_at_kill": job_at_kill, "orphans_after_kill": sum(pid_runs(p) for p in pids)}


def _resume(env: Path, out: Path, rounds: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fedagentbench.cli", *_cli_args(env, out, rounds)], cwd=REPO,
                          env=_child_env(), capture_output=True, text=True, check=False, timeout=900)
    wall = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    runs: dict[str, int] = {}
    for o in report.get("outcomes", []):
        key = o["role"] + (f"@{o['site_id']}" if o.get("site_id") else "")
        runs[key] = runs.get(key, 0) + 1
    records = _job_records(out)
    return {"exit_code": done.returncode, "resume_seconds": round(wall, 1),
            "all_roles_passed": bool(report.get("roles")) and all(r.get("success") for r in report["roles"].values()),
            "roles_rerun": sum(n - 1 for n in runs.values()), "training": (report.get("training") or {}).get("status"),
            "metrics": {k: round(v, 4) for k, v in ((report.get("metrics") or {}).get("federated") or {}).items()
                        if isinstance(v, float)},
            "jobs": len(records), "job_restarts": sum(r.get("restarts", 0) for r in records),
            "orphans_after_resume": sum(pid_runs(r["pid"]) for r in records),
            "error_tail": "" if done.returncode == 0 else (done.stdout + done.stderr)[-300:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phases", nargs="+", default=list(SCHEMAS), choices=list(SCHEMAS))
    ap.add_argument("--modality", default="xray")
    ap.add_argument("--scale", type=float, default=0.3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--delay", type=float, default=3.0, help="seconds the killed role's policy is slowed by")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the phase to start")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from envs.build import build
    from envs.readonly import make_writable

    root = Path(tempfile.mkdtemp(prefix="kill_resume_"))
    try:
        base = build(args.modality, root / "env", seed=0, scale=args.scale).root
        ref_env, ref_out = root / "ref_env", root / "ref"
        shutil.copytree(base, ref_env, symlinks=True)
        reference = _resume(ref_env, ref_out, args.rounds)  # an uninterrupted run
        log.info("reference run: %s", reference)
        rows = []
        for phase in args.phases:
            env, out = root / f"env_{phase}", root / f"run_{phase}"
            shutil.copytree(base, env, symlinks=True)
            row = {"phase": phase, **_kill_in(phase, env, out, args.rounds, args.delay, args.timeout),
                   **_resume(env, out, args.rounds)}
            row["same_metrics_as_uninterrupted"] = bool(row["metrics"]) and row["metrics"] == reference["metrics"]
            log.info("%s", row)
            rows.append(row)
    finally:
        make_writable(root)
        shutil.rmtree(root, ignore_errors=True)
    cols = ["phase", "kill_landed", "job_at_kill", "orphans_after_kill", "exit_code", "all_roles_passed", "roles_rerun",
            "training", "job_restarts", "orphans_after_resume", "same_metrics_as_uninterrupted", "resume_seconds"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c)) for c in cols) + " |" for r in rows]
    lines.append(f"\nuninterrupted reference: exit {reference['exit_code']}, federated test metrics "
                 f"{reference['metrics']}, {reference['resume_seconds']} s")
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"reference": reference, "rows": rows}, indent=1))
    return 0 if all(r["exit_code"] == 0 and not r["orphans_after_kill"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
