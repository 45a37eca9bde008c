"""Dermatoscopy: skin-lesion images from dermatoscopes (ISIC-style collections)."""

from envs.tasks import GENERIC, PERSONALISED, TaskTemplate

MODALITY = "dermatoscopy"
SITE_RANGE = (5, 8)
NEIGHBOUR_MODALITIES = ("histopathology", "fundus")
LABEL_VARIANTS = {
    "melanoma": ("melanoma", "malignant melanoma", "Melanoma", "mel"),
    "nevus": ("nevus", "melanocytic nevus", "naevus", "mole"),
    "basal_cell_carcinoma": ("basal cell carcinoma", "bcc", "BCC_lesion", "basalioma"),
    "benign_keratosis": ("benign keratosis", "seborrheic keratosis", "bkl", "solar lentigo"),
    "actinic_keratosis": ("actinic keratosis", "akiec", "Bowen", "AK"),
    "vascular_lesion": ("vascular lesion", "angioma", "vasc", "haemangioma"),
}
TASKS = (
    TaskTemplate(
        task_id="derm-binary-cancer",
        modality=MODALITY,
        request="I want to train a binary skin cancer detection model on dermatology images.",
        target_classes={
            "malignant": ("melanoma", "basal_cell_carcinoma", "actinic_keratosis"),
            "benign": ("nevus", "benign_keratosis", "vascular_lesion"),
        },
        acceptable_algorithms=GENERIC,
        implicit_labels=True,
    ),
    TaskTemplate(
        task_id="derm-melanoma-nevus",
        modality=MODALITY,
        request="Train a classifier that tells melanoma from benign melanocytic nevi in dermoscopic images.",
        target_classes={"melanoma": ("melanoma",), "nevus": ("nevus",)},
        acceptable_algorithms=GENERIC,
    ),
    TaskTemplate(
        task_id="derm-four-class-per-site",
        modality=MODALITY,
        request=(
            "Every clinic uses a different dermatoscope and each clinic must be able to trust the model on "
            "its own patients: sort lesions into melanoma, nevus, basal cell carcinoma and benign keratosis."
        ),
        target_classes={
            "melanoma": ("melanoma",),
            "nevus": ("nevus",),
            "basal_cell_carcinoma": ("basal_cell_carcinoma",),
            "benign_keratosis": ("benign_keratosis",),
        },
        acceptable_algorithms=PERSONALISED,
        implicit_goal="feature_skew",
    ),
)

