"""Registering a real folder (a user's own images) as a client site of an environment.

The folder is copied into ``sites/<id>/raw`` and made read-only, exactly like a synthetic site
(a copy, not hard links: links share permissions, so making them read-only would change the
user's own files), so every tool treats real and synthetic data the same.
Registered sites have no answer key: they can be run, not scored.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from envs.readonly import make_read_only
from envs.sitecards import CARD_FILE

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".gz"}


def register_site(env_root: str | Path, source: str | Path, site_id: str, *, modality: str,
                  description: str = "", cards_file: str | Path | None = None) -> Path:
    """Add ``source`` as site ``site_id``; returns the new site folder.

    Args:
        env_root: a built (or empty) environment folder.
        source: the folder with the hospital's data; it is never modified.
        site_id: new id, letters/digits/underscore.
        modality: the modality the steward says the data is.
        description: the steward's free text, used when no ``cards_file`` is given.
        cards_file: an existing data-card YAML (same shape as a synthetic site's) to use instead.
    """
    root, src = Path(env_root), Path(source)
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a folder; pass the folder that holds the site's images")
    if not site_id.replace("_", "").isalnum():
        raise ValueError(f"site id {site_id!r} must be letters, digits and underscores")
    site = root / "sites" / site_id
    if site.exists():
        raise FileExistsError(f"{site} already exists; choose another site id")
    shutil.copytree(src, site / "raw", symlinks=True)
    if cards_file:
        shutil.copyfile(cards_file, site / CARD_FILE)
    else:
        datasets = [d for d in sorted((site / "raw").iterdir()) if d.is_dir()] or [site / "raw"]
        doc = {"site": site_id, "datasets": [
            {"name": d.name, "folder": str(d.relative_to(site)), "modality": modality,
             "approx_images": sum(1 for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
             "description": description or "registered by the user; no steward description"}
            for d in datasets]}
        (site / CARD_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))
    make_read_only(site / "raw")
    make_read_only(site / CARD_FILE)
    sites_json = root / "server" / "sites.json"
    listing = json.loads(sites_json.read_text()) if sites_json.exists() else {"modality": modality, "sites": []}
    listing["sites"] = sorted({*listing["sites"], site_id})
    sites_json.parent.mkdir(parents=True, exist_ok=True)
    sites_json.write_text(json.dumps(listing, indent=1))
    return site
