"""Fundus: colour photographs of the retina (diabetic retinopathy, glaucoma, AMD)."""

from envs.tasks import GENERIC, LABEL_SKEW, TaskTemplate

MODALITY = "fundus"
SITE_RANGE = (5, 9)
NEIGHBOUR_MODALITIES = ("dermatoscopy", "mri")
LABEL_VARIANTS = {
    "normal": ("normal", "No DR", "healthy", "grade 0"),
    "dr_mild": ("mild NPDR", "Mild", "grade 1", "mild"),
    "dr_moderate": ("moderate NPDR", "Moderate", "grade 2", "moderate"),
    "dr_severe": ("severe NPDR", "Severe", "grade 3", "severe"),
    "dr_proliferative": ("PDR", "Proliferative DR", "grade 4", "proliferative"),
    "glaucoma": ("glaucoma", "GON", "glaucomatous", "suspect glaucoma"),
    "amd": ("AMD", "macular degeneration", "ARMD", "amd"),
}
TASKS = (
    TaskTemplate(
        task_id="fundus-dr-grading",
        modality=MODALITY,
        request="Train a model that grades diabetic retinopathy severity on the 0-4 scale from fundus photographs.",
        target_classes={
            "grade_0": ("normal",),
            "grade_1": ("dr_mild",),
            "grade_2": ("dr_moderate",),
            "grade_3": ("dr_severe",),
            "grade_4": ("dr_proliferative",),
        },
        acceptable_algorithms=GENERIC,
        task_type="grading",
    ),
    TaskTemplate(
        task_id="fundus-referable-dr",
        modality=MODALITY,
        request="I need a screening model that flags referable diabetic retinopathy in retinal photos.",
        target_classes={
            "non_referable": ("normal", "dr_mild"),
            "referable": ("dr_moderate", "dr_severe", "dr_proliferative"),
        },
        acceptable_algorithms=GENERIC,
        implicit_labels=True,
    ),
    TaskTemplate(
        task_id="fundus-glaucoma-skewed",
        modality=MODALITY,
        request=(
            "Detect glaucoma in colour fundus images; our glaucoma clinics see mostly glaucoma cases while the "
            "screening sites see almost only healthy eyes."
        ),
        target_classes={"normal": ("normal",), "glaucoma": ("glaucoma",)},
        acceptable_algorithms=LABEL_SKEW,
        implicit_goal="label_skew",
    ),
)
