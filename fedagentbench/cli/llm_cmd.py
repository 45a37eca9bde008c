"""``fedagentbench llm``: set up, serve and inspect the embedded local LLM (llama.cpp + GGUF weights)."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn


def register(sub: argparse._SubParsersAction) -> None:
    from graphs.local_llm.catalog import DEFAULT_MODEL, MODELS

    llm = sub.add_parser("llm", help="the local LLM: setup (weights + llama-server), serve, status")
    actions = llm.add_subparsers(dest="llm_command", required=True, metavar="ACTION")

    p = actions.add_parser("setup", help="fetch and verify the weights, build llama-server (each once)")
    p.add_argument("--model", choices=list(MODELS), default=DEFAULT_MODEL)
    p.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: cores, at most 4)")
    p.add_argument("--no-build", action="store_true", help="only the weights")
    p.set_defaults(func=_setup)

    p = actions.add_parser("serve", help="run llama-server in the foreground (Ctrl-C stops it)")
    p.add_argument("--model", choices=list(MODELS), default=DEFAULT_MODEL)
    p.add_argument("--port", type=int, default=None, help="default: a free port")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_serve)

    p = actions.add_parser("status", help="what is set up, and where")
    p.set_defaults(func=_status)


def _setup(args: argparse.Namespace) -> int:
    from graphs.local_llm.build import build_server
    from graphs.local_llm.catalog import get_model
    from graphs.local_llm.weights import ensure_weights

    console = Console()
    model = get_model(args.model)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{model.name}: {stage}", total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        start = time.perf_counter()
        path = ensure_weights(model, progress=progress)
        weights_s = time.perf_counter() - start
    console.print(f"weights: {path} (sha256 verified) in {weights_s:.0f} s")
    if args.no_build:
        return 0
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        steps: dict[str, int] = {}

        def build_progress(stage: str, done: int, total: int) -> None:
            if stage not in steps:
                steps[stage] = bar.add_task(f"llama-server: {stage}", total=total)
            bar.update(steps[stage], completed=done, total=total)

        start = time.perf_counter()
        binary = build_server(jobs=args.jobs, progress=build_progress)
    console.print(f"llama-server: {binary} in {time.perf_counter() - start:.0f} s")
    console.print(f"ready: --model local{'' if args.model == 'qwen2.5-coder-0.5b' else ':' + args.model}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from graphs.local_llm.catalog import get_model
    from graphs.local_llm.server import URL_ENV, LocalServer, free_port

    console = Console()
    server = LocalServer(get_model(args.model), port=args.port or free_port(), threads=args.threads)
    console.print(f"starting llama-server with {server.model.name} on {server.url} ...")
    with server:
        console.print(f"ready (pid {server.process.pid if server.process else '?'}, log {server.log_path}).\n"
                      f"Use it from another shell: export {URL_ENV}={server.url}/v1  (then --model local)\n"
                      "Ctrl-C stops it.")
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopping")
    return 0


def _status(args: argparse.Namespace) -> int:
    from graphs.local_llm.catalog import MODELS
    from graphs.local_llm.paths import server_binary
    from graphs.local_llm.weights import is_ready, weights_path

    console = Console()
    binary = server_binary()
    console.print(f"llama-server: {binary} ({'built' if binary.is_file() else 'missing: run fedagentbench llm setup'})")
    for model in MODELS.values():
        state = "ready" if is_ready(model) else "missing"
        console.print(f"{model.name}: {state} ({weights_path(model)})")
    return 0
