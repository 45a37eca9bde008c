"""``fedagentbench envs``: list modalities, build an environment, summarise one, register a real folder."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def register(sub: argparse._SubParsersAction) -> None:
    envs = sub.add_parser("envs", help="hospital environments: list, build, show, register, calibrate")
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

    p = actions.add_parser("register", help="add a hospital's own folder as a site (copied, made read-only)")
    p.add_argument("env_dir", metavar="ENV_DIR", help="environment folder (created if missing; may be a built one)")
    p.add_argument("source", metavar="SOURCE", help="the folder with the site's images (never modified)")
    p.add_argument("--site", required=True, help="new site id: letters, digits, underscores")
    p.add_argument("--modality", required=True, help="what the images are: " + ", ".join(_modalities()))
    p.add_argument("--body-part", default=None, help="body part (default: the modality's usual one, marked derived)")
    card = p.add_mutually_exclusive_group()
    card.add_argument("--description", default="", help="free text for the data card")
    card.add_argument("--cards", default=None, help="your own data_cards.yaml to use instead of a derived one")
    p.set_defaults(func=_register)

    p = actions.add_parser("calibrate", help="train every algorithm on a task's clean data: its reference table")
    p.add_argument("dir", help="a built environment")
    p.add_argument("--task", required=True, help="one of the environment's tasks (`envs show DIR` lists them)")
    p.add_argument("--suite", default=None,
                   help="train with this suite's train: settings (e.g. full), so eval finds the table; "
                        "the flags below override single settings")
    p.add_argument("--rounds", type=int, default=None, help="federated rounds (default 5, as launch_training)")
    p.add_argument("--local-epochs", type=int, default=None, help="local epochs per round (default 1)")
    p.add_argument("--image-size", type=int, default=None, help="image side in pixels (default 64)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None, help="client optimizer (default sgd)")
    p.add_argument("--lr", type=float, default=None, help="client learning rate (default 0.05)")
    p.add_argument("--batch-size", type=int, default=None, help="local mini-batch (default 32)")
    p.add_argument("--seed", type=int, default=None, help="training seed: splits and initialisation (default 0)")
    p.add_argument("--algorithms", nargs="+", help="default: every registered algorithm")
    p.set_defaults(func=_calibrate)


def _modalities() -> tuple[str, ...]:
    from envs.concepts import MODALITIES

    return tuple(MODALITIES)


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


def _register(args: argparse.Namespace) -> int:
    import yaml

    from envs.register import register_site
    from envs.sitecards import CARD_FILE

    if args.modality not in _modalities():
        raise ValueError(f"unknown modality {args.modality!r}; choose one of {', '.join(_modalities())}")
    site = register_site(args.env_dir, args.source, args.site, modality=args.modality, description=args.description,
                         cards_file=args.cards, body_part=args.body_part)
    doc = yaml.safe_load((site / CARD_FILE).read_text(encoding="utf-8"))
    table = Table(title=f"site {args.site}: {site}")
    for col in ("dataset", "folder", "images", "task", "labels (count)", "label source", "open choices"):
        table.add_column(col)
    for d in doc.get("datasets", []):
        derived = d.get("derived") or {}
        counts = d.get("label_counts") or {}
        table.add_row(str(d.get("name")), str(d.get("folder")), str(d.get("approx_images", "?")),
                      str(d.get("task_type", "?")), ", ".join(f"{k} ({v})" for k, v in counts.items()) or "-",
                      str(derived.get("label_source", "from your card")), "; ".join(derived.get("open_choices", []))
                      or "-")
    console = Console()
    console.print(table)
    console.print(f"data card: {site / CARD_FILE} (derived fields are marked; edit it to correct them)")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from envs.calibrate import calibrate
    from evals.reference import reference_path, reference_settings
    from evals.suite import load_suite

    try:
        base = load_suite(args.suite).train.model_dump() if args.suite else {}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    flags = {"rounds": args.rounds, "local_epochs": args.local_epochs, "image_size": args.image_size,
             "optimizer": args.optimizer, "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed}
    settings = reference_settings({**base, **{k: v for k, v in flags.items() if v is not None}})
    console = Console()
    with Progress(TextColumn("calibrating {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        job = bar.add_task(args.task, total=None)

        def progress(event: str, name: str, done: int, total: int) -> None:
            if event == "start":
                bar.update(job, completed=done - 1, total=total, description=f"{args.task}: {name}")
            else:
                bar.update(job, completed=done, total=total)
                bar.console.print(f"[{done}/{total}] {name}: {event}")

        table = calibrate(args.dir, args.task, settings, args.algorithms, progress=progress)
    _print_reference(console, table)
    console.print(f"table: {reference_path(args.dir, args.task, settings)}")
    return 0


def _print_reference(console: Console, table) -> None:
    """Best algorithm, baselines and every row, best first."""
    out = Table(title=f"{table.task_id}: {table.settings.rounds} rounds x {table.settings.local_epochs} epoch(s), "
                      f"{table.settings.image_size} px, {table.settings.optimizer} lr {table.settings.lr:g} "
                      f"batch {table.settings.batch_size}, seed {table.settings.seed}")
    for col in ("algorithm", "model", "outcome", "global", "personal", "seconds"):
        out.add_column(col)
    rows = sorted(table.rows.values(), key=lambda r: (-(r.outcome if r.outcome is not None else -1), r.algorithm))
    for r in rows:
        fmt = lambda x: "-" if x is None else f"{x:.3f}"
        out.add_row(r.algorithm, r.primary_model, fmt(r.outcome) if r.error is None else f"failed: {r.error[:60]}",
                    fmt(r.global_bacc), fmt(r.personal_bacc), f"{r.seconds:.1f}")
    console.print(out)
    b = table.baselines
    if b is not None:
        console.print(f"baselines: local-only mean {b.local_mean:.3f}, best site {b.local_best_site} "
                      f"{b.local_best:.3f}, pooled {b.pooled:.3f}")
    try:
        name, best = table.best()
        console.print(f"best: {name} {best:.3f}")
    except ValueError as exc:
        console.print(f"best: none ({exc})")
