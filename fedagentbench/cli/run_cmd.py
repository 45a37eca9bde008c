"""``fedagentbench run "REQUEST" --env MODALITY``: one sentence in, a finished FL run and a report out."""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

#: Training settings the agents' launch tool starts from: fl_core's small-sites preset (measured on these
#: environments: batch 16, 3 local epochs, Adam 1e-3), five rounds, with local-only and pooled baselines.
DEFAULT_TRAIN = {"rounds": 5, "local_epochs": 3, "baselines": True}


def register(sub: argparse._SubParsersAction) -> None:
    from fedagentbench.cli.exit_codes import EPILOG

    p = sub.add_parser("run", help="run the agents on one request in a hospital environment", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("request", help="the user's request, in one sentence")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", help="modality to build (or reuse) an environment of, or a built folder")
    where.add_argument("--env-dir", help="a folder of sites registered with `fedagentbench envs register` (real "
                       "data, no answer key: roles are reported, not scored)")
    p.add_argument("--model", default="scripted", help="scripted (default), provider:model, openai-compatible:M@URL")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible server for --model")
    p.add_argument("--guidance", choices=["fine-grained", "goal-oriented"], default="fine-grained")
    p.add_argument("--approve", choices=["auto", "ask"], default="auto", help="ask: a human confirms sites, "
                   "label maps and the launch")
    p.add_argument("--out", default="runs/run", help="run folder (report, transcripts, training)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=DEFAULT_TRAIN["rounds"])
    p.add_argument("--local-epochs", type=int, default=DEFAULT_TRAIN["local_epochs"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--thread-id", default=None, help="resume the run with this id from its checkpoint in --out "
                   "(a killed run goes on where it stopped, a training job included; a finished one is reported "
                   "again)")
    p.set_defaults(func=_run)


def _preset() -> dict[str, Any]:
    from fl_core.presets import SMALL_SITES

    return {k: v for k, v in SMALL_SITES.items() if k != "local_epochs"}


def registered_env(env_dir: str) -> Path:
    """A folder of registered sites; its answer key, if it has one (a built env with real sites added), is used."""
    root = Path(env_dir)
    if not (root / "server" / "sites.json").is_file():
        raise FileNotFoundError(f"{root} has no server/sites.json; register a site first: fedagentbench envs register "
                                f"{root} SOURCE --site ID --modality M")
    return root


def prepare_env(env: str, out: Path, seed: int, scale: float, console: Console) -> Path:
    """A built environment folder: the given one, a reused one under ``out``, or a new build."""
    from envs.build import build, load
    from envs.concepts import MODALITIES

    if env not in MODALITIES:
        load(env)  # raises with a clear message if it is not a built environment
        return Path(env)
    target = out / "env"
    if (target / "key" / "answer_key.json").exists():
        key = load(target).key
        if (key.modality, key.seed, key.scale) == (env, seed, scale):
            console.print(f"reusing the {env} environment at {target}")
            return target
    console.print(f"building the {env} environment (seed {seed}, scale {scale}) ...")
    built = build(env, target, seed=seed, scale=scale, force=True)
    console.print(f"built {len(built.key.sites)} sites in {built.seconds:.1f} s")
    return target


def reset_work(env_dir: Path) -> None:
    """A run starts from the raw data: each site's previous work/ folder is cleared."""
    import shutil

    for site in (env_dir / "sites").iterdir():
        shutil.rmtree(site / "work", ignore_errors=True)


def _line(event: dict[str, Any]) -> str | None:
    who = event.get("role", "") + (f"@{event['site']}" if event.get("site") else "")
    if event.get("event") == "start":
        return f"[cyan]{who}[/] started"
    if event.get("event") == "end":
        ok = "[green]done[/]" if event.get("success") else f"[red]failed[/] ({event.get('failure')})"
        return f"[cyan]{who}[/] {ok} in {event.get('seconds', 0):.1f} s"
    if event.get("tool"):
        return f"  [dim]{who} -> {event['tool']}[/]"
    return None


def _ask(console: Console, payload: dict[str, Any]) -> Any:
    console.print(f"[bold yellow]{payload.get('question')}[/]")
    console.print(json.dumps({k: v for k, v in payload.items() if k != "question"}, indent=1, default=str))
    answer = input("yes, or the site ids to keep (space separated), or no: ").strip()
    if answer.lower() in ("y", "yes", ""):
        return True
    return [] if answer.lower() in ("n", "no") else answer.split()


def _check(args: argparse.Namespace) -> None:
    """Refuse bad numbers before anything is built or any model is called."""
    from fedagentbench.cli import UserError

    for name in ("rounds", "local_epochs", "threads"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.scale > 0:
        raise UserError(f"--scale must be > 0, got {args.scale}")
    if not args.request.strip():
        raise UserError("the request is empty: say in one sentence what to train, e.g. "
                        "\"a binary pneumonia detector on chest X-rays\"")


def _run(args: argparse.Namespace) -> int:
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.types import Command

    from envs.build import load
    from evals.run_report import write_run_report
    from evals.scoring import NOT_CALIBRATED
    from fedagentbench.cli.exit_codes import run_exit_code
    from graphs.models import describe, make
    from graphs.server import build_graph

    _check(args)
    model = make(args.model, base_url=args.base_url)  # a missing API key stops here, before any work
    console = Console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.env_dir:
        env_dir = registered_env(args.env_dir)
        key = load(env_dir).key if (env_dir / "key" / "answer_key.json").exists() else None
        if key is None:
            console.print(f"{env_dir}: registered sites without an answer key: roles are reported, not scored")
    else:
        env_dir = prepare_env(args.env, out, args.seed, args.scale, console)
        key = load(env_dir).key
    thread = args.thread_id or uuid.uuid4().hex[:12]
    conn = sqlite3.connect(out / "checkpoints.sqlite", check_same_thread=False)
    graph = build_graph(checkpointer=SqliteSaver(conn))
    config = {"configurable": {"thread_id": thread, "env_dir": str(env_dir), "run_dir": str(out), "model": model,
                               "guidance": args.guidance, "approve": args.approve,
                               "train": {**_preset(), "rounds": args.rounds, "local_epochs": args.local_epochs,
                                         "baselines": True, "num_threads": args.threads}},
              "recursion_limit": 400}
    saved = graph.get_state(config) if args.thread_id else None
    resuming = bool(saved and saved.next)
    finished = bool(saved and saved.values and not saved.next)
    if not (resuming or finished):
        reset_work(env_dir)
    request = (saved.values.get("request") if saved and saved.values else None) or args.request
    task_id = next((t.task_id for t in key.tasks.values() if t.request == request), None) if key else None
    console.print(f"model: {describe(args.model)}; guidance: {args.guidance}; task: {task_id or 'not a suite task'}")
    console.print(f"thread id {thread} (resume with --thread-id {thread})"
                  + ("; it had finished: reporting it again" if finished else "; resuming" if resuming else ""))
    start = time.perf_counter()
    pending: Any = None if resuming else {"request": args.request}
    while not finished:
        interrupted = None
        for _ns, mode, chunk in graph.stream(pending, config, stream_mode=["custom", "updates"], subgraphs=True):
            if mode == "custom" and (line := _line(chunk)):
                console.print(line)
            elif mode == "updates" and "__interrupt__" in chunk:
                interrupted = chunk["__interrupt__"][0].value
        if interrupted is None:
            break
        pending = Command(resume=_ask(console, interrupted))
    state = graph.get_state(config).values
    report = write_run_report(state, out=out, env_dir=env_dir, task_id=task_id, model=args.model,
                              guidance=args.guidance, key=key, train=config["configurable"]["train"])
    conn.close()
    passed = {r: s.get("success") for r, s in report["roles"].items()}
    console.print(f"finished in {time.perf_counter() - start:.1f} s; roles: {passed}")
    uncalibrated = [r for r, s in report["roles"].items() if s.get("failure_category") == NOT_CALIBRATED]
    if uncalibrated:
        console.print(f"{', '.join(uncalibrated)} not scored: {report['roles'][uncalibrated[0]]['explanation']}")
    m = report.get("metrics", {}).get("federated", {})
    if m:
        console.print(f"federated balanced accuracy {m.get('balanced_accuracy'):.3f} "
                      f"(local-only mean {report['metrics'].get('local_only_mean') or float('nan'):.3f}, "
                      f"pooled {report['metrics'].get('pooled') or float('nan'):.3f})")
    console.print(f"report: {out / 'report.md'}")
    code = run_exit_code(report)
    if code:
        console.print(f"[red]exit code {code}[/]: see `fedagentbench run --help` for what it means")
    return code
