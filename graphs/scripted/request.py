"""S1's rules: turn a user's sentence into a task spec (modality, classes, implicit goals)."""

from __future__ import annotations

import re

from envs.concepts import CONCEPTS, MODALITIES
from graphs.scripted.lexicon import BENIGN, MALIGNANT, REFERENCE, body_part, mentioned, norm
from graphs.scripted.model import Unanswerable

NO_MODALITY = ("I could not tell which imaging modality the request is about ({request!r}). Name one of: {modalities}; "
               "for example 'skin cancer on dermatoscopy images' or 'pneumonia on chest X-rays'.")
NO_CLASSES = ("I read a {modality} request about the {body_part}, but it names no classes I can recognise. Name the "
              "findings the model must tell apart: two or more (e.g. '{a} versus {b}'), one to detect against "
              "{reference} (e.g. 'detect {b}'), or a binary benign-versus-malignant task. Findings I know for "
              "{modality}: {known}.")

MODALITY_WORDS = {
    "dermatoscopy": ("dermat", "skin", "dermoscop", "mole", "melanoma", "lesions into"),
    "fundus": ("fundus", "retina", "retinal", "retinopathy", "glaucoma", "eye"),
    "histopathology": ("h&e", "histo", "patch", "tissue", "slide", "stain", "lab "),
    "mri": ("mri", "brain", "magnetic"),
    "ultrasound": ("ultrasound", "sonograph", "sonogram"),
    "xray": ("x-ray", "x ray", "xray", "radiograph", "chest"),
}
FEATURE_SKEW = re.compile(r"differ.*(accuracy|trust|own)", re.DOTALL)
LABEL_SKEW = re.compile(r"\bsee (mostly|almost only|far more|many more)\b|referral cent|case mix")


def modality_of(request: str) -> str:
    text = request.lower()
    scores = {m: sum(text.count(w) for w in words) for m, words in MODALITY_WORDS.items()}
    best = max(scores, key=scores.get)
    if scores[best] == 0:
        raise Unanswerable(NO_MODALITY.format(request=request[:200], modalities=", ".join(MODALITIES)))
    return best


def _cls(name: str, concepts: tuple[str, ...] | list[str]) -> dict:
    return {"name": name, "includes": [c.replace("_", " ") for c in concepts]}


def target_classes(modality: str, request: str) -> list[dict]:
    """The classes a request asks for, by the rules the module docstring lists."""
    text = norm(request)
    named = mentioned(modality, request)
    if modality == "fundus" and "referable" in text:
        return [_cls("non_referable", ("normal", "dr_mild")),
                _cls("referable", ("dr_moderate", "dr_severe", "dr_proliferative"))]
    if modality == "fundus" and ("grade" in text or "severity" in text):
        return [_cls(f"grade_{i}", (c,)) for i, c in enumerate(CONCEPTS["fundus"][:5])]
    if len(named) >= 3:
        return [_cls(c, (c,)) for c in named]
    if modality in MALIGNANT and ("malignan" in text and ("binary" in text or "benign" in text or "malignancy" in text)
                                  or "cancer" in text and "binary" in text):
        return [_cls("benign", BENIGN[modality]), _cls("malignant", MALIGNANT[modality])]
    if modality == "mri" and "tumor" in text and len(named) < 2:
        return [_cls("tumor", ("glioma", "meningioma", "pituitary")), _cls("no_tumor", ("no_tumor",))]
    if len(named) == 2:
        return [_cls(c, (c,)) for c in named]
    if len(named) == 1:
        ref = REFERENCE[modality]
        return [_cls(ref, (ref,)), _cls(named[0], (named[0],))]
    known = [c.replace("_", " ") for c in CONCEPTS[modality]]
    reference = REFERENCE[modality].replace("_", " ")
    others = [c for c in known if c != reference]
    raise Unanswerable(NO_CLASSES.format(modality=modality, body_part=body_part(modality), a=others[0],
                                         b=others[-1], reference=reference, known=", ".join(known)))


def task_spec(request: str) -> dict:
    modality = modality_of(request)
    text = request.lower()
    goals = []
    if FEATURE_SKEW.search(text):
        goals.append("feature_skew")
    if LABEL_SKEW.search(text):
        goals.append("label_skew")
    grading = modality == "fundus" and ("grade" in text or "severity" in text) and "referable" not in text
    return {"modality": modality, "task_type": "grading" if grading else "classification",
            "body_part": body_part(modality), "target_classes": target_classes(modality, request),
            "implicit_goals": goals, "constraints": []}
