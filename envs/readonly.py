"""Read-only raw trees, and a content hash that proves nothing changed them."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

_WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def make_read_only(root: Path) -> None:
    """Drop every write bit under ``root`` (files and folders), so tools must copy before changing."""
    if root.is_file():
        root.chmod(root.stat().st_mode & ~_WRITE)
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath, name)
            p.chmod(p.stat().st_mode & ~_WRITE)
    for dirpath, dirnames, _ in os.walk(root, topdown=False):
        for name in dirnames:
            p = Path(dirpath, name)
            p.chmod(p.stat().st_mode & ~_WRITE)
    root.chmod(root.stat().st_mode & ~_WRITE)


def make_writable(root: Path) -> None:
    """Give the owner write access again (to delete or rebuild an environment)."""
    root.chmod(root.stat().st_mode | stat.S_IWUSR)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)


def tree_hash(root: Path) -> str:
    """SHA-256 over every file's relative path, mode and bytes, in sorted order."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            h.update(str(p.relative_to(root)).encode() + b"\0")
            h.update(oct(p.lstat().st_mode).encode() + b"\0")
            h.update(p.read_bytes() if not p.is_symlink() else os.readlink(p).encode())
    return h.hexdigest()
