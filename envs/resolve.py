"""Resolving task templates against a planned environment: the task half of the answer key."""

from __future__ import annotations

from envs.key import TaskKey
from envs.plan import SitePlan, dataset_fits
from envs.tasks import TaskTemplate

#: A task is only posed if at least this many sites can train on it (otherwise it is not federated).
MIN_QUALIFYING_SITES = 2


def resolve_task(task: TaskTemplate, sites: list[SitePlan]) -> TaskKey:
    """Which sites and datasets qualify for ``task``, their label maps, and per-class clean counts."""
    qualifying: dict[str, list[str]] = {}
    label_maps: dict[str, dict[str, dict[str, str | None]]] = {}
    class_counts: dict[str, dict[str, int]] = {}
    for site in sites:
        for ds in site.datasets:
            if not dataset_fits(ds, task):
                continue
            qualifying.setdefault(site.site_id, []).append(ds.card.name)
            label_maps.setdefault(site.site_id, {})[ds.card.name] = {
                label: task.class_of(concept) for label, concept in ds.site_labels.items()
            }
            counts = class_counts.setdefault(site.site_id, {c: 0 for c in task.target_classes})
            for label, n in ds.counts.items():
                cls = task.class_of(ds.site_labels[label])
                if cls is not None:
                    counts[cls] += n
    return TaskKey(
        task_id=task.task_id,
        request=task.request,
        modality=task.modality,
        target_classes={k: list(v) for k, v in task.target_classes.items()},
        acceptable_algorithms=list(task.acceptable_algorithms),
        implicit_goal=task.implicit_goal,
        implicit_labels=task.implicit_labels,
        task_type=task.task_type,
        qualifying=qualifying,
        label_maps=label_maps,
        class_counts=class_counts,
    )


def solvable(keys: list[TaskKey]) -> bool:
    """Every task has enough qualifying sites to be a federated task."""
    return all(len(k.qualifying) >= MIN_QUALIFYING_SITES for k in keys)
