"""One registered scorer per role: pass/fail against the task's answer key, with the measured detail."""

from __future__ import annotations

from envs.concepts import MODALITIES, concept_named
from evals.cleaning import c2_site_detail, pooled
from evals.outcome_rules import s3_verdict
from evals.reference_lookup import trial_reference
from evals.scoring import RoleScore, Trial, not_submitted, scorer


def spec_partition(spec: dict) -> dict[str, frozenset[str | None]]:
    """A task spec's classes as sets of concepts (unknown findings become None).

    Findings are read with the answer key's vocabulary (:func:`envs.concepts.concept_named`), never
    with a player's: the scripted policy's lexicon and the grader must be able to disagree.
    """
    m = spec["modality"]
    if m not in MODALITIES:
        return {c["name"]: frozenset([None]) for c in spec["target_classes"]}
    return {c["name"]: frozenset(concept_named(m, x) for x in c["includes"]) for c in spec["target_classes"]}


def class_translation(trial: Trial) -> dict[str, str] | None:
    """Spec class name -> key class name, when the spec's classes are the key's (else None)."""
    spec = trial.state.get("task_spec")
    if not spec:
        return None
    key = {frozenset(v): k for k, v in trial.task.target_classes.items()}
    mine = spec_partition(spec)
    if set(mine.values()) != set(key):
        return None
    return {name: key[concepts] for name, concepts in mine.items()}


@scorer("S1")
def score_s1(t: Trial) -> RoleScore:
    if (bad := not_submitted("S1", t.outcomes("S1"))) is not None:
        return bad
    spec, task = t.state["task_spec"], t.task
    problems = []
    if spec["modality"] != task.modality:
        problems.append(f"modality {spec['modality']} (want {task.modality})")
    if class_translation(t) is None:
        got = {k: sorted(str(c) for c in v) for k, v in spec_partition(spec).items()}
        problems.append(f"target classes {got} (want {task.target_classes})")
    if t.thresholds.require_implicit_goal and task.implicit_goal != "none" and task.implicit_goal not in spec.get(
            "implicit_goals", []):
        problems.append(f"missed the implicit goal {task.implicit_goal}")
    return RoleScore(role="S1", passed=not problems, failure_category="wrong_decision" if problems else None,
                     explanation="; ".join(problems) or "task spec matches the key")


def _f1(got: set[str], want: set[str]) -> float:
    if not got and not want:
        return 1.0
    tp = len(got & want)
    return 2 * tp / (len(got) + len(want)) if tp else 0.0


@scorer("C1")
def score_c1(t: Trial) -> RoleScore:
    if (bad := not_submitted("C1", t.outcomes("C1"))) is not None:
        return bad
    per_site = {}
    for site in t.key.sites:
        got = set(t.state.get("selections", {}).get(site, {}).get("selected", []))
        per_site[site] = _f1(got, set(t.task.qualifying.get(site, [])))
    mean = sum(per_site.values()) / len(per_site)
    wrong = sorted(s for s, f in per_site.items() if f < 1)
    ok = mean >= t.thresholds.c1_min_f1
    return RoleScore(role="C1", passed=ok, failure_category=None if ok else "wrong_decision",
                     explanation=f"mean per-site F1 {mean:.2f}" + (f"; wrong at {wrong}" if wrong else ""),
                     detail={"f1": per_site})


@scorer("S2")
def score_s2(t: Trial) -> RoleScore:
    if (bad := not_submitted("S2", t.outcomes("S2"))) is not None:
        return bad
    approved = {s for s, a in t.state.get("approvals", {}).items() if a.get("approved") and s in t.key.sites}
    want = set(t.task.qualifying)
    ok = approved == want
    return RoleScore(role="S2", passed=ok, failure_category=None if ok else "wrong_decision",
                     explanation=("approved exactly the qualifying sites" if ok else
                                  f"approved {sorted(approved)}; qualifying {sorted(want)}") + _unscored_note(t),
                     detail={"approved": sorted(approved), "qualifying": sorted(want),
                             "unscored_sites": unscored_sites(t)})


def unscored_sites(t: Trial) -> list[str]:
    """Sites in the run that the answer key does not know (registered real sites): reported, not scored."""
    seen = set(t.state.get("selections") or {}) | set(t.state.get("approvals") or {})
    return sorted(seen - set(t.key.sites))


def _unscored_note(t: Trial) -> str:
    extra = unscored_sites(t)
    return f" (sites without an answer key, reported but not scored: {extra})" if extra else ""


@scorer("C2")
def score_c2(t: Trial) -> RoleScore:
    if (bad := not_submitted("C2", t.outcomes("C2"))) is not None:
        return bad
    details = {}
    for o in t.outcomes("C2"):
        site = o["site_id"]
        if site not in t.key.sites:  # a registered real site: no key to score it against
            continue
        selected = t.state["selections"][site]["selected"]
        details[site] = c2_site_detail(t.key.sites[site], selected, t.env_dir / "sites" / site / "work" / "organized")
    d, th = pooled(list(details.values())), t.thresholds
    low = {k: round(d["recall"][k], 2) for k, need in th.c2_min_recall.items()
           if d["recall"].get(k) is not None and d["recall"][k] < need}
    problems = ([f"removal recall below threshold: {low}"] if low else []) + (
        [f"kept only {d['clean_kept']:.2f} of the clean images"] if d["clean_kept"] < th.c2_min_clean_kept else []) + (
        [f"{d['misfiled']} images filed under the wrong label"] if d["misfiled"] else [])
    ok = not problems
    return RoleScore(role="C2", passed=ok, failure_category=None if ok else "wrong_decision",
                     explanation=("; ".join(problems) or "cleaning meets every threshold over the approved sites")
                     + _unscored_note(t),
                     detail={"pooled": d, "sites": {s: {k: v for k, v in x.items() if k != "counts"}
                                                    for s, x in details.items()}, "unscored_sites": unscored_sites(t)})


@scorer("C3")
def score_c3(t: Trial) -> RoleScore:
    if (bad := not_submitted("C3", t.outcomes("C3"))) is not None:
        return bad
    translate = class_translation(t)
    if translate is None:
        return RoleScore(role="C3", passed=False, failure_category="upstream",
                         explanation="the task spec's classes are not the key's, so no label map can be right")
    wrong = {}
    for o in t.outcomes("C3"):
        site = o["site_id"]
        if site not in t.key.sites:
            continue
        got = {k: (translate.get(v) if v is not None else None)
               for k, v in t.state["harmonization"][site]["label_map"].items()}
        want = {lab: cls for ds in t.task.label_maps.get(site, {}).values() for lab, cls in ds.items()}
        diff = {lab: (got.get(lab, "<missing>"), cls) for lab, cls in want.items() if got.get(lab, "<missing>") != cls}
        if diff:
            wrong[site] = diff
    ok = not wrong
    return RoleScore(role="C3", passed=ok, failure_category=None if ok else "wrong_decision",
                     explanation="every label map is exactly right" if ok else f"wrong maps (got, want): {wrong}",
                     detail={"wrong": {s: {k: list(v) for k, v in d.items()} for s, d in wrong.items()}})


@scorer("S3")
def score_s3(t: Trial) -> RoleScore:
    """Judged by measured outcome: the chosen algorithm's reference outcome within the margin of the best
    (for implicit-goal tasks, among the implied family's members within it; see evals.outcome_rules)."""
    if (bad := not_submitted("S3", t.outcomes("S3"))) is not None:
        return bad
    from algorithms.registry import list_algorithms

    algo = t.state["algorithm"]["algorithm"]
    if algo not in list_algorithms():
        return RoleScore(role="S3", passed=False, failure_category="wrong_decision",
                         explanation=f"{algo!r} is not a registered algorithm")
    table, why = trial_reference(t, [algo])
    if table is None:
        return RoleScore.not_calibrated("S3", why)
    family = list(t.task.acceptable_algorithms) if t.task.implicit_goal != "none" else None
    v = s3_verdict(table, algo, t.thresholds.s3_margin, family)
    if v.passed is None:
        return RoleScore.unscored("S3", v.why)
    return RoleScore(role="S3", passed=v.passed, failure_category=None if v.passed else "wrong_decision",
                     explanation=v.why, detail=v.detail)


@scorer("S4")
def score_s4(t: Trial) -> RoleScore:
    """The run finished with the chosen algorithm on the approved sites, and its measured outcome reaches
    that algorithm's reference outcome minus the margin (evals.training_check)."""
    if (bad := not_submitted("S4", t.outcomes("S4"))) is not None:
        return bad
    from evals.training_check import verify_training

    ok, why, detail = verify_training(t)
    if ok is None and detail.get("not_calibrated"):
        return RoleScore.not_calibrated("S4", why, detail)
    if ok is None:
        return RoleScore(role="S4", passed=None, failure_category="harness_error", explanation=why, detail=detail)
    return RoleScore(role="S4", passed=ok, failure_category=None if ok else "wrong_decision", explanation=why,
                     detail=detail)


def score_trial(t: Trial) -> dict[str, RoleScore]:
    """Every role's score for one trial, in role order."""
    from evals.scoring import SCORERS

    return {role: SCORERS[role](t) for role in ("S1", "C1", "S2", "C2", "C3", "S3", "S4")}
