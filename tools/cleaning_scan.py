"""One decoding pass over an organised folder that keeps only what a detector needs of each image.

A hospital folder holds 10k-100k images. Holding them all decoded (50k RGB images at 144 px are
3 GB) and decoding them on one core made the cleaning steps slow and their memory large, so each
image is decoded once, reduced by the detector's ``describe`` function (fingerprints, features)
and dropped. Small folders are decoded in a few threads; large ones in worker processes, since the
per-image Python work (a PNG decode and eight small matrix products, ~1.4 ms) holds the GIL most of
the time and two threads used 1.3 cores. Progress goes to the ``logging`` log (stderr), never into a
tool's output.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from tools.imageio import UnreadableImage, is_image_name, read_image

log = logging.getLogger(__name__)

#: Threads that decode and describe images. Two: the machines this runs on have few cores, and the
#: graph may clean several sites at once.
SCAN_WORKERS = max(1, min(2, os.cpu_count() or 1))
#: The side the cleaning detectors need at least (2x their 64 px features): a large JPEG is decoded
#: at a reduced DCT scale that keeps this (see :func:`tools.imageio.read_image`).
DECODE_MIN_SIDE = 128
#: Folders with at least this many images to decode are decoded in :data:`SCAN_WORKERS` processes
#: (spawned once per scan, ~0.5 s each to start), smaller ones in threads.
PROCESS_MIN_IMAGES = 2000
#: Set to ``0`` to decode every folder in threads (no worker processes).
PROCESSES_ENV = "FEDAGENTBENCH_SCAN_PROCESSES"
#: Images a worker process decodes per task (fewer round trips than one at a time).
PROCESS_CHUNK = 128
#: Seconds between two progress lines.
PROGRESS_EVERY_S = 5.0


@dataclass
class FolderImages:
    """The images of one organised folder (``<class>/<file>``), decoded once.

    Attributes:
        paths: one path per decodable image, sorted.
        labels: the class sub-folder each image sits in.
        images: the decoded images (``L`` or ``RGB``), or what ``describe`` made of each when
            :func:`load_folder` was given one (the pixels are then not kept: re-read ``paths``).
        unreadable: site-relative names of image files that did not decode, and why.
        skipped: files that are not images by name (left alone).
        sizes: each image's ``(width, height)``.
    """

    paths: list[Path]
    labels: list[str]
    images: list[Any]
    unreadable: list[str]
    skipped: list[str]
    sizes: list[tuple[int, int]] = field(default_factory=list)


class Progress:
    """Logs how far a long step has come, at most every :data:`PROGRESS_EVERY_S` seconds."""

    def __init__(self, what: str, total: int, every_s: float | None = None) -> None:
        self.what, self.total = what, total
        self.every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self.done = 0
        self.t0 = self.last = time.perf_counter()

    def step(self, n: int = 1) -> None:
        """Count ``n`` more items done; log a line if the last one is old enough."""
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            log.info("%s: %d / %d (%.0f%%, %.0f/s)", self.what, self.done, self.total,
                     100 * self.done / max(1, self.total), self.done / max(now - self.t0, 1e-9))

    def finish(self) -> None:
        """Log the step's total time (only for steps long enough to have logged progress)."""
        seconds = time.perf_counter() - self.t0
        if seconds >= self.every_s:
            log.info("%s: %d done in %.1f s", self.what, self.done, seconds)


class DescriptionCache:
    """What one ``describe`` function made of each image of the last folder scanned with it.

    The C2 steps scan one folder in turn, and two of them describe its images alike:
    ``find_offtopic`` and ``find_label_errors`` both need every image's features (1.3 ms an image
    on a loaded core: 65 CPU-seconds at 50k images). An entry is reused only for the same path with
    the same size and modification time, so a moved, replaced or edited file is described afresh.
    One folder is kept (a few hundred bytes an image for features), in memory only: nothing derived
    from the images is written anywhere.
    """

    def __init__(self) -> None:
        self._root: Path | None = None
        self._entries: dict[Path, tuple[tuple[int, int], Any, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def entries(self, root: Path) -> dict[Path, tuple[tuple[int, int], Any, tuple[int, int]]]:
        """``path -> ((size, mtime_ns), description, image size)`` kept for ``root`` (empty if another folder's)."""
        with self._lock:
            return dict(self._entries) if self._root == root else {}

    def keep(self, root: Path, entries: dict[Path, tuple[tuple[int, int], Any, tuple[int, int]]]) -> None:
        """Replace what is kept with ``root``'s entries."""
        with self._lock:
            self._root, self._entries = root, entries


def _file_key(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def load_folder(files: list[Path], root: Path, describe: Callable[[Image.Image], Any] | None = None,
                what: str = "decoding images", cache: DescriptionCache | None = None,
                keep: Callable[[Any], Any] | None = None) -> FolderImages:
    """Decode every image file of a folder; the class is the first path part below ``root``.

    Args:
        files: the folder's files, in the order the result keeps.
        root: the organised folder (class sub-folders below it).
        describe: what to keep of each decoded image (default: the image itself).
        what: the step's name in progress lines.
        cache: descriptions of an earlier scan of this folder with the same ``describe``, reused for
            unchanged files (and replaced by this scan's).
        keep: applied in this process to each description, in file order; its result is what
            ``images`` holds (a sink that packs descriptions into blocks returns a slot number).
            ``describe`` may run in another process, so it must be a module-level function.
    """
    out = FolderImages([], [], [], [], [])
    images = []
    for p in files:
        rel = p.relative_to(root)
        (images if is_image_name(p.name) else out.skipped).append(p if is_image_name(p.name) else rel.as_posix())
    progress = Progress(what, len(images))
    kept = cache.entries(root) if cache is not None else {}
    fresh: dict[Path, tuple[tuple[int, int], Any, tuple[int, int]]] = {}
    keys = {p: _file_key(p) for p in images} if cache is not None else {}
    todo = [p for p in images if not (p in kept and kept[p][0] == keys[p])]
    todo_set = set(todo)
    fresh_results = _described(todo, root, describe)
    for p in images:
        got = (kept[p][1], kept[p][2]) if p not in todo_set else next(fresh_results)
        progress.step()
        if isinstance(got, str):
            out.unreadable.append(got)
            continue
        if cache is not None:
            fresh[p] = keys[p], *got
        out.paths.append(p)
        rel = p.relative_to(root)
        out.labels.append(rel.parts[0] if len(rel.parts) > 1 else "")
        out.images.append(keep(got[0]) if keep else got[0])
        out.sizes.append(got[1])
    progress.finish()
    if cache is not None:
        cache.keep(root, fresh)
    return out


def _describe_file(p: Path, root: Path, describe: Callable[[Image.Image], Any] | None
                   ) -> tuple[Any, tuple[int, int]] | str:
    """Decode one file and describe it: ``(description, stored size)``, or why it did not decode."""
    try:
        img = read_image(p, min_side=DECODE_MIN_SIDE)
    except UnreadableImage as exc:
        return f"{p.relative_to(root).as_posix()}: {str(exc).split(': ', 1)[-1][:80]}"
    return (describe(img) if describe else img), img.info.get("original_size", img.size)


def _described(todo: list[Path], root: Path, describe: Callable[[Image.Image], Any] | None
               ) -> Iterator[tuple[Any, tuple[int, int]] | str]:
    """:func:`_describe_file` of each of ``todo``, in order, from worker processes or threads.

    Worker processes that die (a script that starts the tools without an ``if __name__ ==
    "__main__":`` guard makes each spawned worker fail on import) cost nothing but time: the files
    they had not returned are decoded in threads, with the same results.
    """
    done = 0
    one = partial(_describe_file, root=root, describe=describe)  # picklable: a module-level function
    try:
        with _scan_pool(len(todo), describe) as pool:
            for got in pool.map(one, todo, chunksize=PROCESS_CHUNK):  # threads ignore chunksize
                done += 1
                yield got
        return
    except (BrokenProcessPool, OSError, AssertionError) as exc:  # a dead worker; no process could start
        log.warning("decoding processes stopped (%s); decoding the other %d images in threads", exc, len(todo) - done)
    with ThreadPoolExecutor(max_workers=SCAN_WORKERS) as pool:
        yield from pool.map(one, todo[done:])


def _scan_pool(n_images: int, describe: Callable[[Image.Image], Any] | None) -> Executor:
    """Worker processes for a large folder whose images are reduced to descriptions, else threads.

    Processes are spawned (never forked: the caller may hold LangGraph, torch or server threads);
    they start at the first task, so a process that cannot start them (a daemonic worker, a
    locked-down sandbox) fails there and :func:`_described` falls back to threads.
    """
    if (describe is not None and n_images >= PROCESS_MIN_IMAGES and SCAN_WORKERS > 1
            and os.environ.get(PROCESSES_ENV, "1") != "0"):
        return ProcessPoolExecutor(max_workers=SCAN_WORKERS, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_single_threaded_worker)
    return ThreadPoolExecutor(max_workers=SCAN_WORKERS)


def _single_threaded_worker() -> None:
    """One BLAS thread in a decoding process: :data:`SCAN_WORKERS` of them already share the cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@contextmanager
def blas_single_threaded() -> Iterator[None]:
    """Run a detector with NumPy's and SciPy's BLAS on one thread each.

    The detectors parallelise over images in :data:`SCAN_WORKERS` threads of their own; BLAS
    threads inside those, on a shared two-core machine, spin against each other: a randomized SVD
    of 2,048 x 1,024 took 2.4 CPU-seconds with two BLAS threads under load, 0.03 s with one.
    SciPy and scikit-learn are imported first: the limit reaches only libraries already loaded.
    """
    import scipy.linalg  # noqa: F401
    import sklearn.utils.extmath  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield
