"""A readable summary of a built environment (``fedagentbench envs show``)."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from envs.build import BuiltEnv


def site_table(env: BuiltEnv) -> Table:
    key = env.key
    table = Table(title=f"{key.modality} environment (seed {key.seed}, scale {key.scale}): {len(key.sites)} sites")
    for col in ("site", "kind", "px", "dataset", "layout", "labels (as the site names them)", "images", "injected"):
        table.add_column(col)
    for site in key.sites.values():
        for i, ds in enumerate(site.datasets):
            roles = Counter(t.role for t in ds.files.values())
            injected = ", ".join(f"{k} {v}" for k, v in sorted(ds.injected.items()))
            labels = ", ".join(ds.native_labels[:6]) + (" ..." if len(ds.native_labels) > 6 else "")
            table.add_row(site.site_id if i == 0 else "", site.kind if i == 0 else "",
                          str(site.image_size) if i == 0 else "", ds.name, ds.layout, labels or "(none)",
                          str(roles["image"]), injected)
    return table


def task_table(env: BuiltEnv) -> Table:
    table = Table(title="tasks (answer key)")
    for col in ("task", "target classes", "qualifying sites", "acceptable algorithms", "implicit"):
        table.add_column(col)
    for t in env.key.tasks.values():
        implicit = ", ".join(x for x in (t.implicit_goal if t.implicit_goal != "none" else "",
                                         "labels" if t.implicit_labels else "") if x)
        table.add_row(t.task_id, ", ".join(t.target_classes), ", ".join(sorted(t.qualifying)),
                      ", ".join(t.acceptable_algorithms), implicit or "-")
    return table


def totals(env: BuiltEnv) -> dict[str, int]:
    """Count of files per role over the whole environment."""
    counts: Counter[str] = Counter()
    for site in env.key.sites.values():
        for ds in site.datasets:
            counts.update(t.role for t in ds.files.values())
    return dict(sorted(counts.items()))


def show(env: BuiltEnv, console: Console | None = None) -> None:
    console = console or Console()
    console.print(site_table(env))
    console.print(task_table(env))
    console.print("files by role: " + ", ".join(f"{k} {v}" for k, v in totals(env).items()))
    console.print(f"planted identifiers: {len(env.key.identifiers)}; injection text planted in "
                  f"{sum(ds.injected.get('injection', 0) for s in env.key.sites.values() for ds in s.datasets)} "
                  "dataset(s)")
