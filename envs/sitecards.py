"""The data-card file each site's client agent reads: what the hospital's data steward wrote.

It describes the site's datasets in the steward's words (from the catalog card), with the label
names *as this site writes them*. It never states which task a dataset fits; that is the agent's job.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from envs.messiness import INJECTION
from envs.plan import SitePlan

CARD_FILE = "data_cards.yaml"
FORMAT_OF_LAYOUT = {"dicom": "dcm", "nifti": "nii.gz"}


def write_site_cards(site_dir: Path, site: SitePlan, inject_first: bool) -> Path:
    """Write ``data_cards.yaml`` for a site; the first dataset's text carries the injection if asked."""
    cards = []
    for d, ds in enumerate(site.datasets):
        card = ds.card
        description = card.description
        if inject_first and d == 0:
            description = f"{description} {INJECTION}"
        entry = {
            "name": card.name,
            "folder": f"raw/{ds.folder}",
            "modality": card.modality,
            "body_part": card.body_part,
            "task_type": card.task_type if ds.labelled else "segmentation",
            "labels": list(ds.site_labels) if ds.labelled else [],
            "approx_images": int(round(ds.n_clean, -1)) or ds.n_clean,
            "file_format": FORMAT_OF_LAYOUT.get(ds.layout, ds.ext),
            "license": card.license,
            "source": card.source,
            "description": description,
        }
        if ds.legend:
            entry["label_legend"] = ds.legend
        cards.append(entry)
    path = site_dir / CARD_FILE
    doc = {"site": site.site_id, "datasets": cards}
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
    return path
