"""MRI: axial brain slices (tumour classification)."""

from envs.tasks import GENERIC, LABEL_SKEW, TaskTemplate

MODALITY = "mri"
SITE_RANGE = (5, 8)
NEIGHBOUR_MODALITIES = ("xray", "ultrasound")
LABEL_VARIANTS = {
    "no_tumor": ("no tumor", "notumor", "healthy", "normal"),
    "glioma": ("glioma", "glioma_tumor", "GBM", "astrocytoma"),
    "meningioma": ("meningioma", "meningioma_tumor", "MEN", "meningeal tumour"),
    "pituitary": ("pituitary", "pituitary_tumor", "pituitary adenoma", "PIT"),
}
TASKS = (
    TaskTemplate(
        task_id="mri-tumor-type",
        modality=MODALITY,
        request="Train a brain tumour classifier on MRI: glioma, meningioma, pituitary tumour or no tumour.",
        target_classes={
            "glioma": ("glioma",),
            "meningioma": ("meningioma",),
            "pituitary": ("pituitary",),
            "no_tumor": ("no_tumor",),
        },
        acceptable_algorithms=GENERIC,
    ),
    TaskTemplate(
        task_id="mri-tumor-present",
        modality=MODALITY,
        request="I want a model that tells whether a brain MRI slice shows a tumour.",
        target_classes={"tumor": ("glioma", "meningioma", "pituitary"), "no_tumor": ("no_tumor",)},
        acceptable_algorithms=GENERIC,
        implicit_labels=True,
    ),
    TaskTemplate(
        task_id="mri-tumor-type-skewed",
        modality=MODALITY,
        request=(
            "Some of our hospitals are referral centres that see almost only gliomas, others mostly healthy "
            "scans: train a brain tumour type classifier (glioma, meningioma, pituitary, none) that copes with that."
        ),
        target_classes={
            "glioma": ("glioma",),
            "meningioma": ("meningioma",),
            "pituitary": ("pituitary",),
            "no_tumor": ("no_tumor",),
        },
        acceptable_algorithms=LABEL_SKEW,
        implicit_goal="label_skew",
    ),
)
