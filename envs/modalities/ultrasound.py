"""Ultrasound: breast ultrasound B-mode images."""

from envs.tasks import GENERIC, PERSONALISED, TaskTemplate

MODALITY = "ultrasound"
SITE_RANGE = (4, 7)
NEIGHBOUR_MODALITIES = ("mri", "xray")
LABEL_VARIANTS = {
    "normal": ("normal", "no lesion", "BI-RADS 1", "negative"),
    "benign": ("benign", "fibroadenoma", "BI-RADS 2", "benign mass"),
    "malignant": ("malignant", "carcinoma", "BI-RADS 5", "cancer"),
}
TASKS = (
    TaskTemplate(
        task_id="us-benign-malignant",
        modality=MODALITY,
        request="Train a model to tell benign from malignant breast masses on ultrasound images.",
        target_classes={"benign": ("benign",), "malignant": ("malignant",)},
        acceptable_algorithms=GENERIC,
    ),
    TaskTemplate(
        task_id="us-three-class",
        modality=MODALITY,
        request="Classify breast ultrasound images as normal, benign or malignant.",
        target_classes={"normal": ("normal",), "benign": ("benign",), "malignant": ("malignant",)},
        acceptable_algorithms=GENERIC,
    ),
    TaskTemplate(
        task_id="us-malignancy-per-site",
        modality=MODALITY,
        request=(
            "Every hospital uses a different ultrasound machine and I care about each site's accuracy: build a "
            "breast lesion malignancy classifier."
        ),
        target_classes={"benign": ("benign",), "malignant": ("malignant",)},
        acceptable_algorithms=PERSONALISED,
        implicit_goal="feature_skew",
    ),
)
