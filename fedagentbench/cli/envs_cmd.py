"""``fedagentbench envs``: list modalities, build an environment, summarise one, register a real folder."""

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
