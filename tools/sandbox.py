"""The workspace every client tool is bound to: one site's folder, nothing else.

A model passes paths as text; :meth:`Workspace.resolve` is the only way a tool turns that text into
a filesystem path. It refuses, with a message the model can act on, anything that would leave the
site (``..``, absolute paths elsewhere, symlinks pointing out, look-alike unicode, overlong names).

Every write goes through the workspace too: :meth:`Workspace.make_dir`, :meth:`~Workspace.write_bytes`,
:meth:`~Workspace.save_image`, :meth:`~Workspace.copy_file`, :meth:`~Workspace.move`,
:meth:`~Workspace.replace_dir` and :meth:`~Workspace.remove_tree` each check their target with
:meth:`~Workspace.writable` first: it must lie under ``work/``, with no link anywhere from the site
down to it (``work`` itself included), so a link planted where an output goes is refused, never
followed. Files are only ever created new (``O_EXCL``, ``O_NOFOLLOW``) and moved into place, never
opened in place for writing, so a hard link into ``raw/`` cannot be written through either. File
modes are not relied on: the tools run as root in CI, where modes stop nothing.
"""

from __future__ import annotations

import os
import shutil
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from langchain_core.tools import ToolException

from tools.privacy import DATA_OPEN, as_data, unquote

RAW, WORK, CARDS = "raw", "work", "data_cards.yaml"
MAX_PATH_CHARS, MAX_NAME_CHARS = 1024, 255
#: Longest name a model may give for something that becomes a folder (a class, a dataset).
MAX_COMPONENT_CHARS = 100
#: Unicode categories no folder name may hold: control, format (invisible), line and paragraph separators.
UNSAFE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")
LISTING_TOOLS = "read_data_cards (dataset folders) or list_labels (label folders under work/)"
LINK_REFUSED = ("{what} is a link; tools never write through links (it may lead outside this site), so nothing "
                "was written. Ask the site's data steward to replace it with a plain folder.")


class SandboxError(ToolException):
    """A path the model gave is not allowed; the message says what to pass instead."""


def safe_component(name: object, what: str) -> str:
    """``name`` if it can be one folder or file name inside ``work/``, else a refusal saying why.

    Args:
        name: a name the model gave (a target class, a mapping value, a dataset name).
        what: what the name is, for the message ("target class", ...).

    Raises:
        SandboxError: the name is empty, too long, '.' or '..', or holds a separator or control character.
    """
    problem = None
    if not isinstance(name, str) or not name.strip():
        problem = "it is empty"
    elif len(name) > MAX_COMPONENT_CHARS or len(name.encode("utf-8")) > MAX_NAME_CHARS:
        problem = f"it is longer than {MAX_COMPONENT_CHARS} characters"
    elif "/" in name or "\\" in name:
        problem = "it contains a path separator ('/' or '\\')"
    elif name.strip() in (".", "..") or ".." in name:
        problem = "it contains '..'"
    elif any(unicodedata.category(ch) in UNSAFE_CATEGORIES for ch in name):
        problem = "it contains a control or invisible character"
    elif name != name.strip() or name.startswith("."):
        problem = "it starts or ends with a space, or starts with '.'"
    if problem:
        shown = as_data(name, 60) if isinstance(name, str) else type(name).__name__
        raise SandboxError(f"{what} {shown} cannot be used as a folder name: {problem}. Use one plain name such "
                           f"as 'benign' (letters, digits, spaces, '-', '_'; at most {MAX_COMPONENT_CHARS} characters)")
    return name


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
        if not os.path.lexists(root / WORK):  # a planted link stays as it is: every write then refuses it
            (root / WORK).mkdir()
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
                raise SandboxError(f"path {as_data(text, 120)} is outside this site; pass a path relative to the "
                                   "site, such as 'raw/<dataset>' or 'work/...'") from None
        if ".." in candidate.parts:
            raise SandboxError(f"path {as_data(text, 120)} uses '..'; pass a path inside the site such as "
                               "'raw/<dataset>'")
        real = Path(os.path.realpath(self.site_dir / candidate))
        if real != self.site_dir and self.site_dir not in real.parents:
            raise SandboxError(f"path {as_data(text, 120)} leads outside this site (a link?); it cannot be used")
        if write and not (real == self.work or self.work in real.parents):
            raise SandboxError(f"path {as_data(text, 120)} is read-only: tools write only under 'work/'")
        if must_exist and not real.exists():
            raise SandboxError(f"path {as_data(text, 120)} does not exist; see the folders with {LISTING_TOOLS}")
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

    # -- writes: every one checks its target first ------------------------------------------------

    def writable(self, path: Path) -> Path:
        """``path`` if a tool may create, replace or delete it: under ``work/``, no link on the way.

        Raises:
            SandboxError: the path leaves ``work/`` (or is ``work/`` itself), or it or a folder above it
                (``work`` included) is a link.
        """
        p = Path(os.path.abspath(path))
        if self.work not in p.parents:
            raise SandboxError("tools write only inside 'work/'; nothing was written")
        node = self.work
        for part in (None, *p.relative_to(self.work).parts):
            node = node / part if part else node
            if node.is_symlink():
                raise SandboxError(LINK_REFUSED.format(what=repr(self.rel(node))))
            if node != p and os.path.lexists(node) and not node.is_dir():
                raise SandboxError(f"{self.rel(node)!r} is a file where a folder is needed; nothing was written")
        real = Path(os.path.realpath(p))
        if real != p or self.raw == real or self.raw in real.parents:  # belt and braces: checked above
            raise SandboxError(LINK_REFUSED.format(what=repr(self.rel(p))))
        return p

    def make_dir(self, path: Path) -> Path:
        """Create ``path`` and its missing parents under ``work/`` (an existing plain folder is kept)."""
        p = self.writable(path)
        missing = []
        node = p
        while not os.path.lexists(node):
            missing.append(node)
            node = node.parent
        for d in reversed(missing):
            os.mkdir(d)
        return p

    @contextmanager
    def _new_file(self, path: Path) -> Iterator[IO[bytes]]:
        """A new file beside ``path`` (never an existing one) that is moved onto ``path`` when done."""
        p = self.writable(path)
        tmp = p.with_name(f".{p.name[:100]}.{uuid.uuid4().hex[:12]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
            self.writable(p)
            os.replace(tmp, p)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise

    def write_bytes(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` (replacing what is there, never writing into it)."""
        with self._new_file(path) as fh:
            fh.write(data)

    def write_text(self, path: Path, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def save_image(self, image: Any, path: Path, image_format: str = "PNG", **params: Any) -> None:
        """Save a PIL image to ``path`` through a new file."""
        with self._new_file(path) as fh:
            image.save(fh, format=image_format, **params)

    def copy_file(self, src: Path, dst: Path) -> None:
        """Copy a file of this site to ``dst`` under ``work/``."""
        if not self._inside(src):
            raise SandboxError("that file lies outside this site; nothing was copied")
        with open(src, "rb") as fin, self._new_file(dst) as fout:
            shutil.copyfileobj(fin, fout)

    def move(self, src: Path, dst: Path) -> None:
        """Move a file or folder within ``work/``; ``dst`` must not exist yet."""
        s, d = self.writable(src), self.writable(dst)
        if os.path.lexists(d):
            raise SandboxError(f"{self.rel(d)!r} exists already; nothing was moved")
        os.rename(s, d)

    def remove_tree(self, path: Path) -> None:
        """Delete a file or folder under ``work/`` (refused if it, or a folder above it, is a link)."""
        p = self.writable(path)
        if p.is_dir():
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)

    def replace_dir(self, new: Path, out: Path) -> None:
        """Put the finished folder ``new`` in the place of ``out`` (a previous output is deleted)."""
        self.writable(new)
        if os.path.lexists(self.writable(out)):
            self.remove_tree(out)
        os.rename(new, out)


def _check_text(text: object) -> None:
    if not isinstance(text, str) or not text.strip():
        raise SandboxError("pass the path as non-empty text relative to the site, e.g. 'raw/<dataset>'")
    if "\x00" in text:
        raise SandboxError("the path contains a NUL character; pass a plain path")
    if len(text) > MAX_PATH_CHARS or any(len(part) > MAX_NAME_CHARS for part in text.split("/")):
        raise SandboxError(f"the path is too long (limit {MAX_PATH_CHARS} characters, {MAX_NAME_CHARS} per name)")
    if unicodedata.normalize("NFKC", text) != text:
        raise SandboxError(f"path {as_data(text, 120)} contains look-alike unicode characters; use plain ASCII "
                           "names as listed")
    if "\\" in text:
        raise SandboxError("use '/' to separate folders, not '\\\\'")
