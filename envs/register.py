"""Registering a real folder (a user's own images) as a client site of an environment.

``SOURCE`` is one dataset when it holds a label table at its top, class folders, or nothing that
is a dataset on its own below it; it is several datasets only when at least two of its sub-folders
are datasets in their own right (each with its own label table or class folders). Split folders
(train/val/test) and OS litter (``__MACOSX``) are never datasets of their own.

The folder is copied into ``sites/<id>/raw`` and made read-only, exactly like a synthetic site
(a copy, not hard links: links share permissions, so making them read-only would change the
user's own files), so every tool treats real and synthetic data the same. The data card is derived
from the files (see :mod:`envs.derive_card`) unless the user gives one, and stays editable.
Registered sites have no answer key: they can be run, not scored.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path, PurePosixPath

import yaml

from envs.derive_card import derive_card, is_dataset, walk
from envs.readonly import make_read_only
from envs.sitecards import CARD_FILE
from tools.folder_levels import split_of
from tools.layout_junk import litter_reason
from tools.layout_readers import TABLE_SUFFIXES

log = logging.getLogger(__name__)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "dataset"


def _image_count(root: Path) -> int:
    from tools.imageio import is_image_name

    return sum(1 for f in walk(root) if is_image_name(f.name)
               and litter_reason(PurePosixPath(f.relative_to(root).as_posix())) is None)


def dataset_folders(source: Path) -> list[str]:
    """The sub-folders of ``source`` that are its datasets, or ``[]`` when ``source`` is one dataset.

    One dataset: a label table at the top, or images that no dataset sub-folder holds (class folders,
    split folders, an image folder beside its label folder). Several: two or more sub-folders that
    are datasets in their own right, or one such sub-folder holding every image (the usual
    ``download/<dataset>/`` wrapper, next to ``__MACOSX``).
    """
    entries = sorted(source.iterdir())
    if any(p.is_file() and p.name.lower().endswith(TABLE_SUFFIXES) and litter_reason(PurePosixPath(p.name)) is None
           for p in entries):
        return []
    subs = [d for d in entries if d.is_dir() and not d.is_symlink()
            and litter_reason(PurePosixPath(d.name, "x")) is None and split_of(d.name) is None]
    own = [d for d in subs if is_dataset(d)]
    if len(own) >= 2:
        return [d.name for d in own]
    if len(own) == 1 and _image_count(own[0]) == _image_count(source):
        return [own[0].name]
    return []


def register_site(env_root: str | Path, source: str | Path, site_id: str, *, modality: str,
                  description: str = "", cards_file: str | Path | None = None,
                  body_part: str | None = None) -> Path:
    """Add ``source`` as site ``site_id``; returns the new site folder.

    Args:
        env_root: a built (or empty) environment folder.
        source: the folder with the hospital's data; it is never modified.
        site_id: new id, letters/digits/underscore.
        modality: the modality the steward says the data is.
        description: the steward's free text, used when no ``cards_file`` is given.
        cards_file: an existing data-card YAML (same shape as a synthetic site's) to use instead.
        body_part: the body part shown (default: the modality's usual one, marked as derived).
    """
    root, src = Path(env_root), Path(source)
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a folder; pass the folder that holds the site's images")
    if not site_id.replace("_", "").isalnum():
        raise ValueError(f"site id {site_id!r} must be letters, digits and underscores")
    if cards_file is not None and not Path(cards_file).is_file():
        raise FileNotFoundError(f"{cards_file} is not a file; pass a data-card YAML or use --description")
    site = root / "sites" / site_id
    if site.exists():
        raise FileExistsError(f"{site} already exists; choose another site id")
    subs = dataset_folders(src)
    if subs:
        shutil.copytree(src, site / "raw", symlinks=True)
        folders = {name: f"raw/{name}" for name in subs}
    else:
        name = _slug(src.resolve().name)
        (site / "raw").mkdir(parents=True)
        shutil.copytree(src, site / "raw" / name, symlinks=True)
        folders = {name: f"raw/{name}"}
    if cards_file:
        shutil.copyfile(cards_file, site / CARD_FILE)
    else:
        cards = [derive_card(site / folder, name, folder, modality, body_part, description)
                 for name, folder in folders.items()]
        doc = {"site": site_id, "registered_from": str(src.resolve()), "datasets": cards}
        (site / CARD_FILE).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100),
                                      encoding="utf-8")
    make_read_only(site / "raw")
    sites_json = root / "server" / "sites.json"
    listing = json.loads(sites_json.read_text()) if sites_json.exists() else {"modality": modality, "sites": []}
    listing["sites"] = sorted({*listing["sites"], site_id})
    sites_json.parent.mkdir(parents=True, exist_ok=True)
    sites_json.write_text(json.dumps(listing, indent=1))
    log.info("registered %s as site %s with %d dataset(s)", src, site_id, len(folders))
    return site
