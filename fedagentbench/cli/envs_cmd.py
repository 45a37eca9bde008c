"""``fedagentbench envs``: list modalities, build an environment, summarise one."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def register(sub: argparse._SubParsersAction) -> None:
    envs = sub.add_parser("envs", help="hospital environments: list, build, show")
    actions = envs.add_subparsers(dest="envs_command", required=True, metavar="ACTION")

    p = actions.add_parser("list", help="the six modalities with their catalog size and tasks")
    p.set_defaults(func=_list)

    p = actions.add_parser("build", help="materialise one modality's client sites and answer key")
    p.add_argument("modality")
    p.add_argument("--out", required=True, help="folder to create")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=1.0, help="images per site multiplier (default 1)")
    p.add_argument("--difficulty", type=float, default=None, help="0 easy .. 1 subtle (default: calibrated)")
    p.add_argument("--force", action="store_true", help="replace an existing environment")
    p.set_defaults(func=_build)

    p = actions.add_parser("show", help="readable summary of a built environment")
    p.add_argument("dir")
    p.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    from envs.cards import cards_for
    from envs.concepts import MODALITIES
    from envs.modalities import get_modality
    from envs.plan import fit_cards

    table = Table(title="modalities")
    for col in ("modality", "cards", "usable for tasks", "tasks"):
        table.add_column(col)
    for m in MODALITIES:
        env = get_modality(m)
        table.add_row(m, str(len(cards_for(m))), str(len(fit_cards(m))), ", ".join(t.task_id for t in env.TASKS))
    Console().print(table)
    return 0


def _build(args: argparse.Namespace) -> int:
    from envs.build import build
    from envs.summary import totals

    console = Console()
    with Progress(TextColumn("building {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(args.modality, total=None)

        def progress(site_id: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{args.modality}: {site_id}")

        env = build(args.modality, args.out, seed=args.seed, scale=args.scale, force=args.force,
                    difficulty=args.difficulty, progress=progress)
    roles = totals(env)
    console.print(f"built {args.modality} at {env.root} in {env.seconds:.1f} s: {len(env.key.sites)} sites, "
                  f"{roles.get('image', 0)} clean images, {sum(roles.values())} files; "
                  f"answer key at {env.root / 'key' / 'answer_key.json'}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from envs.build import load
    from envs.summary import show

    show(load(args.dir))
    return 0
