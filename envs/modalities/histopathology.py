"""Histopathology: H&E-stained tissue patches from whole-slide images."""

from envs.tasks import GENERIC, PERSONALISED, TaskTemplate

MODALITY = "histopathology"
SITE_RANGE = (5, 8)
NEIGHBOUR_MODALITIES = ("dermatoscopy", "ultrasound")
LABEL_VARIANTS = {
    "normal": ("normal", "NORM", "normal mucosa", "healthy tissue"),
    "benign": ("benign", "B", "benign lesion", "non-malignant"),
    "tumor": ("tumor", "TUM", "malignant", "carcinoma"),
    "lymphocytes": ("lymphocytes", "LYM", "lymph", "immune cells"),
    "stroma": ("stroma", "STR", "cancer-associated stroma", "fibrous"),
    "adipose": ("adipose", "ADI", "fat", "adipose tissue"),
}
TASKS = (
    TaskTemplate(
        task_id="histo-tumor-detection",
        modality=MODALITY,
        request="Train a binary classifier that finds malignant tumour tissue in H&E patches.",
        target_classes={
            "tumor": ("tumor",),
            "non_tumor": ("normal", "benign", "lymphocytes", "stroma", "adipose"),
        },
        acceptable_algorithms=GENERIC,
        implicit_labels=True,
    ),
    TaskTemplate(
        task_id="histo-tissue-types",
        modality=MODALITY,
        request="Classify colorectal tissue patches into tumour, stroma, lymphocytes, adipose tissue and normal mucosa.",
        target_classes={
            "tumor": ("tumor",),
            "stroma": ("stroma",),
            "lymphocytes": ("lymphocytes",),
            "adipose": ("adipose",),
            "normal": ("normal",),
        },
        acceptable_algorithms=GENERIC,
    ),
    TaskTemplate(
        task_id="histo-benign-malignant-per-lab",
        modality=MODALITY,
        request=(
            "Every lab stains its slides differently and I care about each lab's own accuracy: build a model "
            "that tells benign from malignant tissue."
        ),
        target_classes={"benign": ("normal", "benign", "lymphocytes", "stroma", "adipose"), "malignant": ("tumor",)},
        acceptable_algorithms=PERSONALISED,
        implicit_goal="feature_skew",
    ),
)
