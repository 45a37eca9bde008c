"""The scripted policy of each role: read the transcript, return the next tool call.

Each function gets a :class:`~graphs.scripted.model.Transcript` and returns ``(tool, args)``; the last
call of a role is its ``submit_*`` tool. They use the role's real tools and read only what those
tools return, as an LLM would.
"""

from __future__ import annotations

from typing import Any

from graphs.scripted.lexicon import DATA_TAG, concept_of, norm
from graphs.scripted.model import Transcript, policy
from graphs.scripted.request import task_spec

Call = tuple[str, dict[str, Any]]


def plain(text: Any) -> str:
    return DATA_TAG.sub("", str(text))


def class_of(spec: dict, concept: str | None) -> str | None:
    """The target class whose findings include ``concept``."""
    if concept is None:
        return None
    for cls in spec["target_classes"]:
        if norm(concept) in {norm(x) for x in cls["includes"]}:
            return cls["name"]
    return None


def label_targets(spec: dict, dataset: dict, labels: list[str]) -> dict[str, str | None]:
    """Site label -> target class (None: drop) for one dataset of a site's data cards."""
    legend = {plain(k): plain(v) for k, v in (dataset.get("label_legend") or {}).items()}
    name = plain(dataset["name"])
    return {plain(lab): class_of(spec, concept_of(spec["modality"], plain(lab), name, legend)) for lab in labels}


def dataset_fits(spec: dict, dataset: dict) -> bool:
    """A dataset fits when it shows the task's modality and body part and covers >= 2 target classes."""
    if plain(dataset.get("modality")) != spec["modality"] or plain(dataset.get("body_part")) != spec["body_part"]:
        return False
    if plain(dataset.get("task_type")) not in ("classification", "grading"):
        return False
    classes = {c for c in label_targets(spec, dataset, dataset.get("labels") or []).values() if c}
    return len(classes) >= 2


@policy("TaskSpec")
def s1(t: Transcript) -> Call:
    return "submit_TaskSpec", task_spec(t.input["request"])


@policy("SelectionReply")
def c1(t: Transcript) -> Call:
    cards = t.last("read_data_cards")
    if cards is None:
        return "read_data_cards", {}
    spec = t.input["task_spec"]
    chosen = [plain(d["name"]) for d in cards.get("datasets", []) if dataset_fits(spec, d)]
    reason = (f"{len(chosen)} dataset(s) show {spec['modality']} images of the {spec['body_part']} with labels "
              "covering at least two target classes" if chosen else
              "no dataset here shows the requested modality and body part with labels for the target classes")
    return "submit_SelectionReply", {"site_id": t.input["site_id"], "selected": chosen, "reason": reason}


@policy("Approvals")
def s2(t: Transcript) -> Call:
    verdicts = []
    for site_id, reply in sorted(t.input["selections"].items()):
        ok = bool(reply.get("selected"))
        verdicts.append({"site_id": site_id, "approved": ok,
                         "reason": "has datasets that fit the task" if ok else "no dataset fits the task"})
    return "submit_Approvals", {"approvals": verdicts}


@policy("HarmonizationReport")
def c3(t: Transcript) -> Call:
    spec, selected = t.input["task_spec"], t.input["selection"]["selected"]
    cards = t.last("read_data_cards")
    if cards is None:
        return "read_data_cards", {}
    datasets = [d for d in cards["datasets"] if plain(d["name"]) in selected]
    folders = [f"work/organized/{plain(d['folder']).split('/', 1)[1]}" for d in datasets]
    listed = t.all("list_labels")
    if len(listed) < len(folders):
        return "list_labels", {"folder": folders[len(listed)]}
    applied = t.all("apply_label_map")
    targets = [c["name"] for c in spec["target_classes"]]
    if len(applied) < len(folders):
        i = len(applied)
        labels = list(listed[i]["labels"])
        return "apply_label_map", {"folder": folders[i], "mapping": label_targets(spec, datasets[i], labels),
                                   "target_classes": targets}
    stats = t.last("client_statistics")
    if stats is None:
        return "client_statistics", {"folder": "work/harmonized"}
    label_map = {}
    for d, lst in zip(datasets, listed):
        label_map.update(label_targets(spec, d, list(lst["labels"])))
    return "submit_HarmonizationReport", {
        "site_id": t.input["site_id"], "label_map": label_map,
        "class_counts": {k: int(v) for k, v in (stats.get("class_counts") or {}).items()},
        "statistics": {k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
    }
