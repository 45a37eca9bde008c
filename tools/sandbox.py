"""The workspace every client tool is bound to: one site's folder, nothing else.

A model passes paths as text; :meth:`Workspace.resolve` is the only way a tool turns that text into
a filesystem path. It refuses, with a message the model can act on, anything that would leave the
site (``..``, absolute paths elsewhere, symlinks pointing out, look-alike unicode, overlong names)
and any write outside ``work/``: ``raw/`` and the data cards are never modified.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from langchain_core.tools import ToolException

from tools.privacy import DATA_OPEN, unquote

RAW, WORK, CARDS = "raw", "work", "data_cards.yaml"
MAX_PATH_CHARS, MAX_NAME_CHARS = 1024, 255


class SandboxError(ToolException):
    """A path the model gave is not allowed; the message says what to pass instead."""


@dataclass(frozen=True)
class Workspace:
    """One client site: ``raw/`` (read-only), ``work/`` (the tools' output), ``data_cards.yaml``."""

    site_dir: Path
    site_id: str

    @classmethod
    def open(cls, site_dir: str | Path) -> Workspace:
        root = Path(site_dir).resolve(strict=True)
        if not (root / RAW).is_dir():
            raise FileNotFoundError(f"{root} has no raw/ folder; is it a site folder of a built environment?")
        (root / WORK).mkdir(exist_ok=True)
        return cls(root, root.name)

    @property
    def raw(self) -> Path:
        return self.site_dir / RAW

    @property
    def work(self) -> Path:
        return self.site_dir / WORK

    def rel(self, path: Path) -> str:
        """The site-relative text of a resolved path (what tools show the model)."""
        return path.relative_to(self.site_dir).as_posix()

    def resolve(self, text: str, *, write: bool = False, must_exist: bool = True) -> Path:
        """Turn a model-given site-relative path into a real path inside this site.

        Args:
            text: e.g. ``"raw/isic_2017"`` or ``"work/organized/isic_2017"``.
            write: the tool will write there: only ``work/`` is allowed.
            must_exist: refuse paths that do not exist.
        """
        _check_text(text)
        if DATA_OPEN in text:  # a folder name copied from a tool's output with its <data> quotes
            text = unquote(text)
        candidate = Path(text)
        if candidate.is_absolute():
            try:
                candidate = candidate.relative_to(self.site_dir)
            except ValueError:
                raise SandboxError(f"path {text!r} is outside this site; pass a path relative to the site, "
                                   "such as 'raw/<dataset>' or 'work/...'") from None
        if ".." in candidate.parts:
            raise SandboxError(f"path {text!r} uses '..'; pass a path inside the site such as 'raw/<dataset>'")
        real = Path(os.path.realpath(self.site_dir / candidate))
        if real != self.site_dir and self.site_dir not in real.parents:
            raise SandboxError(f"path {text!r} leads outside this site (a link?); it cannot be used")
        if write and not (real == self.work or self.work in real.parents):
            raise SandboxError(f"path {text!r} is read-only: tools write only under 'work/'")
        if must_exist and not real.exists():
            raise SandboxError(f"path {text!r} does not exist; list the site with the listing tool first")
        return real

    def walk_files(self, root: Path) -> list[Path]:
        """Every regular file under ``root`` whose real path stays in the site (escaping links skipped)."""
        out = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if self._inside(Path(dirpath, d)))
            for name in sorted(filenames):
                p = Path(dirpath, name)
                if self._inside(p) and p.is_file():
                    out.append(p)
        return out

    def _inside(self, p: Path) -> bool:
        real = Path(os.path.realpath(p))
        return self.site_dir in real.parents


def _check_text(text: object) -> None:
    if not isinstance(text, str) or not text.strip():
        raise SandboxError("pass the path as non-empty text relative to the site, e.g. 'raw/<dataset>'")
    if "\x00" in text:
        raise SandboxError("the path contains a NUL character; pass a plain path")
    if len(text) > MAX_PATH_CHARS or any(len(part) > MAX_NAME_CHARS for part in text.split("/")):
        raise SandboxError(f"the path is too long (limit {MAX_PATH_CHARS} characters, {MAX_NAME_CHARS} per name)")
    if unicodedata.normalize("NFKC", text) != text:
        raise SandboxError(f"path {text!r} contains look-alike unicode characters; use plain ASCII names as listed")
    if "\\" in text:
        raise SandboxError("use '/' to separate folders, not '\\\\'")
