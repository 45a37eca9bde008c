"""The scripted policy of each role: read the transcript, return the next tool call.

Each function gets a :class:`~graphs.scripted.model.Transcript` and returns ``(tool, args)``; the last
call of a role is its ``submit_*`` tool. They use the role's real tools and read only what those
tools return, as an LLM would.
"""

from __future__ import annotations

import statistics
from typing import Any

from graphs.scripted.lexicon import DATA_TAG, concept_of, norm
from graphs.scripted.model import Transcript, Unanswerable, policy
from graphs.scripted.request import task_spec

Call = tuple[str, dict[str, Any]]
REFUSED = "{tool} refused ({text}); I cannot {need} without it, so I stop here without submitting"


def plain(text: Any) -> str:
    return DATA_TAG.sub("", str(text))


def needed(tool: str, result: Any, need: str) -> dict:
    """A tool result the policy must read as a dict; a refusal (the tool's error text) stops the role."""
    if isinstance(result, dict):
        return result
    raise Unanswerable(REFUSED.format(tool=tool, text=plain(result)[:300], need=need))


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
    cards = needed("read_data_cards", cards, "choose datasets")
    spec = t.input["task_spec"]
    chosen = [plain(d["name"]) for d in cards.get("datasets", []) if dataset_fits(spec, d)]
    reason = (f"{len(chosen)} dataset(s) show {spec['modality']} images of the {spec['body_part']} with labels "
              "covering at least two target classes" if chosen else
              "no dataset here shows the requested modality and body part with labels for the target classes")
    return "submit_SelectionReply", {"site_id": t.input["site_id"], "selected": chosen, "reason": reason}


#: Fewer sites with fitting data than this is not a federation (see README, "A federation of one site").
MIN_FEDERATION = 2


@policy("Approvals")
def s2(t: Transcript) -> Call:
    verdicts = []
    fitting = [s for s, reply in t.input["selections"].items() if reply.get("selected")]
    for site_id, reply in sorted(t.input["selections"].items()):
        ok = bool(reply.get("selected"))
        reason = "has datasets that fit the task" if ok else "no dataset fits the task"
        if ok and len(fitting) < MIN_FEDERATION:
            ok, reason = False, (f"only {len(fitting)} site has data that fits the task: a federation of one site is "
                                 "not a federation (it would be local training); not approved, nothing is trained")
        verdicts.append({"site_id": site_id, "approved": ok, "reason": reason})
    return "submit_Approvals", {"approvals": verdicts}


@policy("HarmonizationReport")
def c3(t: Transcript) -> Call:
    spec, selected = t.input["task_spec"], t.input["selection"]["selected"]
    cards = t.last("read_data_cards")
    if cards is None:
        return "read_data_cards", {}
    cards = needed("read_data_cards", cards, "find the selected datasets")
    datasets = [d for d in cards.get("datasets", []) if plain(d["name"]) in selected]
    folders = [f"work/organized/{plain(d['folder']).split('/', 1)[1]}" for d in datasets]
    listed = [needed("list_labels", r, "map the labels of a dataset") for r in t.all("list_labels")]
    if len(listed) < len(folders):
        return "list_labels", {"folder": folders[len(listed)]}
    applied = [needed("apply_label_map", r, "report harmonised counts") for r in t.all("apply_label_map")]
    targets = [c["name"] for c in spec["target_classes"]]
    if len(applied) < len(folders):
        i = len(applied)
        labels = list(listed[i].get("labels") or [])
        return "apply_label_map", {"folder": folders[i], "mapping": label_targets(spec, datasets[i], labels),
                                   "target_classes": targets}
    stats = t.last("client_statistics")
    if stats is None:
        return "client_statistics", {"folder": "work/harmonized"}
    stats = needed("client_statistics", stats, "report the site's statistics")
    label_map = {}
    for d, lst in zip(datasets, listed):
        label_map.update(label_targets(spec, d, list(lst.get("labels") or [])))
    return "submit_HarmonizationReport", {
        "site_id": t.input["site_id"], "label_map": label_map,
        "class_counts": {k: int(v) for k, v in (stats.get("class_counts") or {}).items()},
        "statistics": {k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
    }


CLEANING = ("find_duplicates", "find_offtopic", "find_label_errors")


def _selected_folders(t: Transcript, cards: dict) -> list[tuple[str, str, dict]]:
    """(raw folder, organised folder, card) of each selected dataset, from the data cards."""
    selected = t.input["selection"]["selected"]
    out = []
    for d in cards.get("datasets", []):
        if plain(d["name"]) in selected:
            raw = plain(d["folder"])
            out.append((raw, "work/organized/" + raw.split("/", 1)[1], d))
    return out


def _overlap(option: dict, card_labels: set[str]) -> float:
    names = {norm(plain(k)) for k in option.get("labels", {})}
    return len(names & card_labels) / len(names) if names else 0.0


def organise_args(detected: Any, card: dict) -> dict[str, Any]:
    """The choices that settle detect_layout's ambiguities: per ambiguity, the option whose label names
    best match the labels the data card lists (the first option on a tie); multi-label rows are skipped."""
    args: dict[str, Any] = {}
    if not isinstance(detected, dict):
        return args
    card_labels = {norm(plain(x)) for x in card.get("labels") or []}
    for amb in detected.get("ambiguities") or []:
        if amb.get("kind") == "multi_label":
            args["skip_multi_label"] = True
            continue
        options = amb.get("options") or []
        if options:
            best = max(options, key=lambda o: _overlap(o, card_labels))  # max keeps the first of equals
            args.update({k: (plain(v) if isinstance(v, str) else [plain(x) for x in v] if isinstance(v, list) else v)
                         for k, v in best["arguments"].items()})
    return args


@policy("PreprocessReport")
def c2(t: Transcript) -> Call:
    cards = t.last("read_data_cards")
    if cards is None:
        return "read_data_cards", {}
    folders = _selected_folders(t, needed("read_data_cards", cards, "find the selected datasets"))
    detected = t.all("detect_layout")
    plan: list[Call] = []
    for i, (raw, organized, card) in enumerate(folders):
        plan.append(("detect_layout", {"folder": raw}))
        if i >= len(detected):
            break
        plan.append(("organize_dataset", {"folder": raw, **organise_args(detected[i], card)}))
        plan += [(tool, {"folder": organized, "mode": "remove"}) for tool in CLEANING]
        plan.append(("list_labels", {"folder": organized}))
    done = len(t.results) - 1  # results after read_data_cards, one per planned call
    if done < len(plan):
        return plan[done]
    removed: dict[str, int] = {}
    organized_n = final_n = 0
    labels: dict[str, int] = {}
    for name, result in t.results[1:]:
        if not isinstance(result, dict):
            continue
        if name == "organize_dataset":
            organized_n += int(result.get("written", 0))
            for bucket, info in (result.get("skipped") or {}).items():
                if isinstance(info, dict) and info.get("count"):
                    removed[bucket] = removed.get(bucket, 0) + int(info["count"])
        elif name in CLEANING:
            step = str(result.get("step", name))
            removed[step] = removed.get(step, 0) + int(result.get("moved", 0))
        elif name == "list_labels":
            final_n += int(result.get("n_images", 0))
            for lab, n in (result.get("labels") or {}).items():
                labels[plain(lab)] = labels.get(plain(lab), 0) + int(n)
    return "submit_PreprocessReport", {
        "site_id": t.input["site_id"], "datasets": list(t.input["selection"]["selected"]),
        "organized_images": organized_n, "removed": removed, "final_images": final_n, "label_counts": labels}


#: Catalog categories that answer each implicit goal, in order of preference.
GOAL_CATEGORIES = {"feature_skew": ("feature_skew", "personalised"), "label_skew": ("label_skew",)}
#: A feature-skew goal where some sites lack whole classes: keeping only BatchNorm local (FedBN)
#: leaves one shared classifier for sites that never see some of its classes, so a personalised
#: method with a per-site head answers both skews. Preferred members, in order.
MISSING_CLASS_PICKS = ("fedrep", "fedper", "ditto")
#: Above this mean Jensen-Shannon label skew a generic task gets a drift-robust algorithm.
HIGH_LABEL_SKEW = 0.2
#: Sites this small (median images per approved site) are the regime the suites measure: each site is
#: judged on its own test split, a global model of a few rounds often stays near the class prior
#: there, and a method that adapts the federation's model to each site's own labels and scanner
#: does not. Above it the goal and skew rules below apply (not measured at that size).
SMALL_SITE_MEDIAN = 500
#: For small sites: personalised methods that fit label and feature skew and upload nothing but
#: weights, in order of preference.
SMALL_SITE_PICKS = ("knnper", "fedala")


@policy("AlgorithmChoice")
def s3(t: Transcript) -> Call:
    catalog = t.last("read_algorithm_catalog")
    if catalog is None:
        return "read_algorithm_catalog", {}
    stats = t.last("federation_statistics")
    if stats is None:
        return "federation_statistics", {}
    entries = catalog if isinstance(catalog, list) else needed("read_algorithm_catalog", catalog,
                                                                "choose an algorithm").get("algorithms", [])
    goals = t.input["task_spec"].get("implicit_goals", [])
    median = _median_site(stats)
    if median is not None and median < SMALL_SITE_MEDIAN:
        pick = _first_weights_only(entries, SMALL_SITE_PICKS)
        if pick:
            return "submit_AlgorithmChoice", {
                "algorithm": pick["name"],
                "reason": f"the sites are small (median {median:g} images) and each is judged on its own data; "
                          f"{pick['name']} adapts the federation's model to each site"
                          + (f" and answers the implied {', '.join(goals).replace('_', ' ')}" if goals else "")
                          + f": {pick['key_idea']}"}
    missing = stats.get("clients_missing_a_class") if isinstance(stats, dict) else None
    if "feature_skew" in goals and missing:
        pick = _first_weights_only(entries, MISSING_CLASS_PICKS)
        if pick:
            return "submit_AlgorithmChoice", {
                "algorithm": pick["name"],
                "reason": f"the task implies feature skew and {len(missing)} site(s) lack a class; {pick['name']} "
                          f"keeps a per-site head: {pick['key_idea']}"}
    for goal in goals:
        for cat in GOAL_CATEGORIES.get(goal, ()):
            # prefer methods that send nothing but weights off a site (catalog "shares" empty)
            pick = next((e for e in entries if e["category"] == cat and not e.get("shares")), None)
            if pick:
                return "submit_AlgorithmChoice", {"algorithm": pick["name"],
                                                  "reason": f"the task implies {goal}; {pick['name']} is a "
                                                            f"{cat.replace('_', ' ')} method: {pick['key_idea']}"}
    skew = _number(stats, "label_skew")
    if skew is not None and skew > HIGH_LABEL_SKEW and any(e["name"] == "fedprox" for e in entries):
        return "submit_AlgorithmChoice", {"algorithm": "fedprox",
                                          "reason": f"label skew {skew:.2f} across sites; FedProx limits client drift"}
    return "submit_AlgorithmChoice", {"algorithm": "fedavg", "reason": "no implicit goal and moderate skew: FedAvg"}


def _first_weights_only(entries: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any] | None:
    """The catalog entry of the first of ``names`` that uploads nothing but weights (None: none is listed)."""
    return next((e for n in names for e in entries if e["name"] == n and not e.get("shares")), None)


def _median_site(stats: Any) -> float | None:
    """The median image count of the approved sites in federation_statistics' output (None: not shown)."""
    sizes = stats.get("sizes") if isinstance(stats, dict) else None
    if not isinstance(sizes, dict):
        return None
    counts = [float(v) for v in sizes.values() if isinstance(v, (int, float))]
    return statistics.median(counts) if counts else None


def _number(stats: Any, name: str) -> float | None:
    """The headline value of a skew measure in federation_statistics' output."""
    v = stats.get(name) if isinstance(stats, dict) else None
    if isinstance(v, dict):
        v = next((x for k, x in v.items() if isinstance(x, (int, float)) and "mean" in k), None) or next(
            (x for x in v.values() if isinstance(x, (int, float))), None)
    return float(v) if isinstance(v, (int, float)) else None


@policy("TrainingReport")
def s4(t: Transcript) -> Call:
    algo, sites = t.input["algorithm"], t.input["sites"]
    settings = t.input.get("settings", {})
    launched = t.last("launch_training")
    if launched is None:
        return "launch_training", {"algorithm": algo["algorithm"], "sites": sites,
                                   "algorithm_params": algo.get("hyperparameters") or {}, **settings}
    if not isinstance(launched, dict) or "job_id" not in launched:
        return "submit_TrainingReport", {"job_id": "none", "algorithm": algo["algorithm"], "sites": sites,
                                         "status": "failed", "rounds_completed": 0, "notes": str(launched)[:300]}
    job = launched["job_id"]
    status = t.last("training_status")
    if status is None or (isinstance(status, dict) and status.get("state") == "running"):
        return "training_status", {"job_id": job}
    failed = {"job_id": job, "algorithm": algo["algorithm"], "sites": sites, "status": "failed", "rounds_completed": 0}
    if not isinstance(status, dict):  # the status tool refused: report that, never guess a state
        return "submit_TrainingReport", {**failed, "notes": f"training_status refused: {plain(status)[:280]}"}
    state = str(status.get("state", "failed"))
    report = t.last("training_report")
    if report is None and state == "finished":
        return "training_report", {"job_id": job}
    rounds = int(status.get("rounds_done", 0))
    if state == "finished" and not isinstance(report, dict):
        return "submit_TrainingReport", {**failed, "status": "finished", "rounds_completed": rounds,
                                         "notes": f"training_report refused: {plain(report)[:280]}"}
    metrics = (report or {}).get("final_test", {}) if isinstance(report, dict) else {}
    return "submit_TrainingReport", {
        **failed, "status": state if state in ("finished", "stopped", "failed") else "failed",
        "rounds_completed": int(report.get("rounds_completed", rounds)) if isinstance(report, dict) else rounds,
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        "shares": [str(x) for x in report.get("shares", [])] if isinstance(report, dict) else [],
        "notes": "" if state == "finished" else str(status.get("error", ""))[:300]}
