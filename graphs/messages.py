"""The typed messages that cross between server and clients: the whole privacy boundary.

Only these models travel between the server graph and the client subgraphs. They hold names,
counts, label names, histograms, algorithm names, metrics and short reasons: never paths, pixels,
file bytes or patient identifiers. Each role finishes by submitting one of them; the schema is what
the model is asked to fill, so field descriptions are written for the model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Modality = Literal["dermatoscopy", "fundus", "histopathology", "mri", "ultrasound", "xray"]
ImplicitGoal = Literal["feature_skew", "label_skew"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetClass(_Message):
    name: str = Field(description="short class name, e.g. 'malignant'")
    includes: list[str] = Field(description="the clinical findings this class gathers, e.g. ['melanoma', 'basal cell carcinoma']")


class TaskSpec(_Message):
    """S1's reading of the user's request, broadcast to every client."""

    modality: Modality = Field(description="imaging modality the request is about")
    task_type: Literal["classification", "grading"] = "classification"
    body_part: str = Field(description="e.g. skin, retina, chest, brain, breast, tissue")
    target_classes: list[TargetClass] = Field(min_length=2, description="the classes the model must output")
    implicit_goals: list[ImplicitGoal] = Field(
        default_factory=list,
        description="what the request implies without naming it: 'feature_skew' when sites' scanners/stains "
        "differ and per-site accuracy matters, 'label_skew' when sites see very different case mixes",
    )
    constraints: list[str] = Field(default_factory=list, description="any other requirement stated by the user")


class SelectionReply(_Message):
    """C1's answer: which of the site's datasets fit the task."""

    site_id: str
    selected: list[str] = Field(description="names of the site's datasets that fit the task; empty if none")
    reason: str = Field(description="one or two sentences: why these, or why none")


class Approval(_Message):
    """S2's verdict for one site."""

    site_id: str
    approved: bool
    reason: str


class Approvals(_Message):
    """S2's verdicts for every site that replied."""

    approvals: list[Approval]


class PreprocessReport(_Message):
    """C2's counts after organising and cleaning the selected datasets."""

    site_id: str
    datasets: list[str]
    organized_images: int = Field(ge=0, description="images organised into label folders")
    removed: dict[str, int] = Field(
        default_factory=dict,
        description="files removed or skipped by reason: non_image, unreadable, duplicate, offtopic, label_error, ...",
    )
    final_images: int = Field(ge=0)
    label_counts: dict[str, int] = Field(default_factory=dict, description="local label name -> images after cleaning")


class HarmonizationReport(_Message):
    """C3's label map and the resulting class counts plus aggregate image statistics."""

    site_id: str
    label_map: dict[str, str | None] = Field(description="local label name -> target class name, or null to drop")
    class_counts: dict[str, int]
    statistics: dict[str, float] = Field(
        default_factory=dict, description="aggregates only: n_images, intensity_mean, intensity_std, mean_side"
    )


class AlgorithmChoice(_Message):
    """S3's pick from the algorithm catalog."""

    algorithm: str = Field(description="registry name from the catalog, e.g. 'fedavg'")
    reason: str
    hyperparameters: dict[str, float | int | str | bool] = Field(default_factory=dict)


class TrainingReport(_Message):
    """S4's account of the training run."""

    job_id: str
    algorithm: str
    sites: list[str]
    status: Literal["finished", "stopped", "failed"]
    rounds_completed: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict, description="final metrics, e.g. balanced_accuracy")
    notes: str = ""
    shares: list[str] = Field(default_factory=list, description=(
        "what the algorithm's clients uploaded beyond model weights (training_report's 'shares'); "
        "empty when only weights left the sites"))


OUTPUT_OF_ROLE: dict[str, type[BaseModel]] = {
    "S1": TaskSpec,
    "C1": SelectionReply,
    "S2": Approvals,
    "C2": PreprocessReport,
    "C3": HarmonizationReport,
    "S3": AlgorithmChoice,
    "S4": TrainingReport,
}
