"""What a real export carries besides the dataset: OS and editor litter, and segmentation masks.

Zips made on macOS carry ``__MACOSX/`` folders and ``._<name>`` AppleDouble files (whose names end in
``.jpeg`` but hold no image); Windows leaves ``Thumbs.db`` and ``desktop.ini``; editors leave swap and
backup files. None of that is data: it is skipped and counted, never organised or read as a label
table. Masks (``<name>_mask.png``, ``<name>_mask_1.png``, ``*_seg*``, files under a ``masks/`` folder)
are annotations of an image, never a training image of their own.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

#: Folders that only an operating system or a tool writes.
LITTER_DIRS = frozenset({"__macosx", ".spotlight-v100", ".trashes", ".fseventsd", ".temporaryitems",
                         ".ipynb_checkpoints", "$recycle.bin", "system volume information", ".git", ".svn",
                         ".idea", ".vscode", "__pycache__", ".cache"})
#: Files that only an operating system writes.
LITTER_FILES = frozenset({".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", ".directory", "icon\r",
                          ".localized", ".apdisk"})
EDITOR_FILE = re.compile(r"(~$|^\.#|^#.*#$|\.(swp|swo|swx|bak|tmp|orig|crdownload|part)$)", re.IGNORECASE)
MASK_STEM = re.compile(r"(_|-|\b)(mask|masks|seg|segmentation|segmask|label_?map)(_?\d+)?$|_seg", re.IGNORECASE)
MASK_DIRS = frozenset({"mask", "masks", "segmentation", "segmentations", "seg", "segs", "label_maps",
                       "ground_truth_masks", "gt_masks"})


def litter_reason(rel: PurePosixPath) -> str | None:
    """Why a file is OS/editor litter ('macos', 'windows', 'editor'), or None when it is not."""
    parts = [p.lower() for p in rel.parts]
    name = parts[-1]
    if any(p in LITTER_DIRS for p in parts[:-1]):
        return "macos" if "__macosx" in parts[:-1] else "tool folder"
    if name.startswith("._") or name in (".ds_store", ".localized", ".apdisk", "icon\r"):
        return "macos"
    if name in LITTER_FILES:
        return "windows"
    if EDITOR_FILE.search(name):
        return "editor"
    return None


def is_mask_path(rel: PurePosixPath, stem: str) -> bool:
    """Segmentation masks: by file stem (``_mask``, ``_mask_1``, ``_seg``...) or by folder (``masks/``)."""
    if MASK_STEM.search(stem):
        return True
    return any(p.lower() in MASK_DIRS or p.lower().endswith(("_masks", "_mask", "_segmentation"))
               for p in rel.parts[:-1])
