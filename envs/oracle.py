"""Oracle preparation: what a perfect preprocessing + harmonisation pass would produce.

It reads the answer key, keeps only clean images of the datasets that qualify for a task, maps
their *true* concepts to the task's classes and writes one class-folder tree per qualifying site.
Tests and benchmarks use it to train on an environment without the agents, and it is the
reference the preprocessing agent's output is compared with.
"""

from __future__ import annotations

from pathlib import Path

from envs.build import BuiltEnv
from tools.imageio import read_image


def prepare_task(env: BuiltEnv, task_id: str, out_dir: str | Path, *, size: int | None = None) -> list[Path]:
    """Write ``<out>/<site>/<class>/<file>.png`` for every qualifying site; return the site folders.

    Args:
        env: a built environment.
        task_id: one of ``env.key.tasks``.
        out_dir: where to write (created).
        size: resize to ``size`` x ``size`` (None keeps each image's size).
    """
    if task_id not in env.key.tasks:
        raise ValueError(f"unknown task {task_id!r}; this environment has: {', '.join(env.key.tasks)}")
    task = env.key.tasks[task_id]
    out = Path(out_dir)
    folders = []
    for site_id, names in sorted(task.qualifying.items()):
        site = env.key.sites[site_id]
        for ds in site.datasets:
            if ds.name not in names:
                continue
            for rel, truth in ds.files.items():
                cls = _class_of(task.target_classes, truth.concept) if truth.role == "image" else None
                if cls is None:
                    continue
                img = read_image(env.site_dir(site_id) / "raw" / rel)
                if size:
                    img = img.resize((size, size))
                dest = out / site_id / cls / (rel.replace("/", "__").split(".")[0] + ".png")
                dest.parent.mkdir(parents=True, exist_ok=True)
                img.save(dest)
        folders.append(out / site_id)
    return folders


def _class_of(target_classes: dict[str, list[str]], concept: str | None) -> str | None:
    return next((cls for cls, concepts in target_classes.items() if concept in concepts), None)


def main(argv: list[str] | None = None) -> int:
    """``python -m envs.oracle ENV TASK OUT [--size N]``: oracle-prepare a task (used by ``make demo``)."""
    import argparse
    import shutil

    from envs.build import load

    p = argparse.ArgumentParser(prog="python -m envs.oracle", description=main.__doc__)
    p.add_argument("env")
    p.add_argument("task")
    p.add_argument("out")
    p.add_argument("--size", type=int, default=None)
    args = p.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    folders = prepare_task(load(args.env), args.task, args.out, size=args.size)
    print(f"prepared {len(folders)} sites for {args.task} under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
