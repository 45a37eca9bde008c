"""X-ray: chest radiographs (pneumonia, COVID-19, tuberculosis, effusion)."""

from envs.tasks import GENERIC, LABEL_SKEW, TaskTemplate

MODALITY = "xray"
SITE_RANGE = (5, 9)
NEIGHBOUR_MODALITIES = ("mri", "ultrasound")
LABEL_VARIANTS = {
    "normal": ("normal", "NORMAL", "no finding", "healthy"),
    "pneumonia": ("pneumonia", "PNEUMONIA", "bacterial pneumonia", "consolidation"),
    "covid19": ("COVID-19", "covid", "SARS-CoV-2", "covid19"),
    "tuberculosis": ("tuberculosis", "TB", "Tuberculosis", "tb positive"),
    "effusion": ("effusion", "pleural effusion", "Effusion", "PE"),
}
TASKS = (
    TaskTemplate(
        task_id="xray-pneumonia",
        modality=MODALITY,
        request="I want to train a binary pneumonia detection model on chest X-rays.",
        target_classes={"normal": ("normal",), "pneumonia": ("pneumonia",)},
        acceptable_algorithms=GENERIC,
    ),
    TaskTemplate(
        task_id="xray-covid-three-class",
        modality=MODALITY,
        request="Detect COVID-19 on chest radiographs, distinguishing it from other pneumonia and from normal scans.",
        target_classes={"normal": ("normal",), "pneumonia": ("pneumonia",), "covid19": ("covid19",)},
        acceptable_algorithms=GENERIC,
        implicit_labels=True,
    ),
    TaskTemplate(
        task_id="xray-tb-skewed",
        modality=MODALITY,
        request=(
            "Build a tuberculosis screening model from chest X-rays; hospitals in high-burden regions see far "
            "more TB than the others."
        ),
        target_classes={"normal": ("normal",), "tuberculosis": ("tuberculosis",)},
        acceptable_algorithms=LABEL_SKEW,
        implicit_goal="label_skew",
    ),
)
