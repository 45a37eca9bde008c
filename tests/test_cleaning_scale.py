"""Cleaning at hospital scale: the bounded duplicate search loses no pair, scans keep no pixels,
label-error fits are bounded, and progress goes to the log, never into a tool's output."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from envs.messiness import near_duplicate
from envs.synth import get_renderer
from tools import cleaning_duplicates, cleaning_labels, cleaning_pairs, cleaning_scan
from tools.clean import make_cleaning_tools
from tools.cleaning_features import fingerprints_of, image_features, normalised_views, similar_pairs
from tools.cleaning_pairs import Fingerprints, candidate_pairs, search
from tools.cleaning_scan import load_folder
from tools.sandbox import Workspace


def _xrays(n: int, copies: int, seed: int = 0) -> list[Image.Image]:
    """Chest X-rays (all alike: the hard case for duplicates) with ``copies`` near-duplicates appended."""
    rng = np.random.default_rng(seed)
    r = get_renderer("xray")
    images = [r.render(str(rng.choice(r.concepts)), rng, 96) for _ in range(n)]
    return images + [near_duplicate(images[i], rng)[0] for i in range(copies)]


@pytest.mark.parametrize("threshold", [0.96, 0.9])
def test_indexed_search_finds_the_pairs_of_the_full_search(threshold, monkeypatch):
    """The approximate (indexed) search, forced on a small folder, finds every pair the exact
    all-pairs correlation finds, with the same similarities (to float16 storage)."""
    monkeypatch.setattr(cleaning_pairs, "FULL_SEARCH_MAX", 0)  # small folders are searched in full
    images = _xrays(150, 12)
    raw = np.stack([fingerprints_of(im) for im in images])
    fp = Fingerprints(raw.copy())
    full = similar_pairs(normalised_views(raw.astype(np.float32)), threshold)
    found = search(fp, threshold).pairs
    assert {(i, j) for _, i, j in found} == {(i, j) for _, i, j in full}
    assert np.allclose(sorted(s for s, _, _ in found), sorted(s for s, _, _ in full), atol=2e-3)
    assert len(candidate_pairs(fp, threshold)[0]) < len(images) ** 2 / 20  # the index prunes most pairs


def test_chance_threshold_rises_with_the_chance_similarity_of_a_folder():
    """A folder whose distinct images' nearest similarities are higher needs a higher threshold; a
    few copies (similarity ~1) do not move it; a small or loose folder keeps the caller's."""
    rng = np.random.default_rng(0)
    loose = 1 - np.exp(-rng.normal(2.2, 0.3, 5000))
    tight = 1 - np.exp(-rng.normal(2.6, 0.3, 5000))
    with_copies = np.concatenate([loose, np.full(150, 0.999)])
    assert cleaning_pairs.chance_threshold(tight) > cleaning_pairs.chance_threshold(loose) + 0.01
    assert abs(cleaning_pairs.chance_threshold(with_copies) - cleaning_pairs.chance_threshold(loose)) < 0.003
    assert (loose >= cleaning_pairs.chance_threshold(loose)).mean() < 0.002
    assert cleaning_pairs.chance_threshold(loose[:10]) < 0


def test_bounded_search_finds_the_planted_copies():
    images = _xrays(120, 10, seed=1)
    groups = cleaning_duplicates.duplicate_groups(images)
    copies = {k for g in groups for k in g[1:]}
    assert set(range(120, 130)) <= {k for g in groups for k in g} and len(copies) >= 10


def _folder(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"c{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((24, 24)) * 255).astype("uint8")).save(d / f"im_{i:03d}.png")
    (root / "c0" / "notes.txt").write_text("not an image")
    (root / "c1" / "broken.png").write_bytes(b"not a png")


def test_a_described_scan_keeps_descriptions_not_pixels_and_the_same_files(tmp_path):
    _folder(tmp_path / "ds", 30)
    files = sorted(p for p in (tmp_path / "ds").rglob("*") if p.is_file())
    plain = load_folder(files, tmp_path / "ds")
    described = load_folder(files, tmp_path / "ds", image_features)
    assert described.paths == plain.paths and described.labels == plain.labels and len(plain.paths) == 30
    assert described.unreadable == plain.unreadable and len(plain.unreadable) == 1
    assert described.skipped == plain.skipped == ["c0/notes.txt"]
    assert described.sizes == [im.size for im in plain.images]
    assert not any(isinstance(d, Image.Image) for d in described.images)


def test_progress_goes_to_the_log_and_not_into_the_tool_output(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cleaning_scan, "PROGRESS_EVERY_S", 0.0)
    site = tmp_path / "site_p"
    (site / "raw").mkdir(parents=True)
    _folder(site / "work" / "organized" / "ds", 30)
    tool = {t.name: t for t in make_cleaning_tools(Workspace.open(site))}["find_duplicates"]
    with caplog.at_level(logging.INFO, logger="tools"):
        res = tool.invoke({"folder": "work/organized/ds", "mode": "flag"})
    assert res["images_checked"] == 30
    assert res["similarity_threshold"] == cleaning_duplicates.DUPLICATE_SIMILARITY  # unlike noise: the floor holds
    assert any("find_duplicates: reading images" in r.getMessage() for r in caplog.records)
    assert "reading images" not in str(res)


def test_label_error_folds_fit_at_most_max_fit_images_and_score_every_image(monkeypatch):
    fitted = []
    real = cleaning_labels.fit_predict_proba

    def spy(x_train, y_train, x_test, n_classes):
        fitted.append((len(x_train), {tuple(r) for r in x_train}, {tuple(r) for r in x_test}))
        return real(x_train, y_train, x_test, n_classes)

    monkeypatch.setattr(cleaning_labels, "fit_predict_proba", spy)
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 100)
    x = rng.normal(size=(300, 4)) + labels[:, None]
    probs = cleaning_labels.out_of_fold_probs(x, labels, folds=5, max_fit=60)
    assert np.allclose(probs.sum(axis=1), 1.0)  # every image scored
    assert all(n <= 61 for n, _, _ in fitted) and len(fitted) == 5
    assert all(not (train & test) for _, train, test in fitted)  # by a model that never saw it
    assert (probs.argmax(axis=1) == labels).mean() > 0.6  # and the small fits still learn the classes


def test_large_jpegs_decode_reduced_and_give_the_same_duplicate_pairs(tmp_path):
    """A hospital's 1024 px JPEGs are decoded at a DCT scale near the detectors' size; the stored
    size is kept and the planted near-duplicates are the pairs found, as with a full decode."""
    images = [im.resize((1024, 1024), Image.BICUBIC) for im in _xrays(12, 3, seed=3)]
    folder = tmp_path / "site" / "normal"
    folder.mkdir(parents=True)
    for i, im in enumerate(images):
        im.save(folder / f"x{i:02d}.jpg", quality=90)
    files = sorted(folder.iterdir())
    reduced = load_folder(files, tmp_path / "site", fingerprints_of)
    assert reduced.sizes == [(1024, 1024)] * len(files)
    assert max(cleaning_scan.read_image(files[0], min_side=cleaning_scan.DECODE_MIN_SIDE).size) < 1024

    def pairs(views: list[np.ndarray]) -> set[tuple[int, int]]:
        v = normalised_views(np.stack(views).astype(np.float32))
        return {(i, j) for _, i, j in similar_pairs(v, cleaning_duplicates.DUPLICATE_SIMILARITY)}

    full = [fingerprints_of(cleaning_scan.read_image(p)) for p in files]
    assert pairs(reduced.images) == pairs(full) == {(i, 12 + i) for i in range(3)}


@pytest.mark.parametrize("n", [2000, 8000])
def test_a_large_group_of_one_offtopic_kind_is_found_at_any_folder_size(n):
    """1% of a folder of one other kind: each has dozens of its kind nearer than any on-topic image,
    which masked them from a fixed-k neighbour score over the whole folder (34 of 87 found at 10k
    X-rays, 1 of 489 at 50k); scored against small reference samples every one stands out."""
    from tools.cleaning_offtopic import group_cut, offtopic_cut, outlier_scores

    rng = np.random.default_rng(0)
    on_topic = rng.normal(0, 1, (n, 20))
    centre = np.zeros(20)
    centre[:3] = 20.0  # another modality: far from every on-topic image, close to its own kind
    off = centre + rng.normal(0, 0.5, (n // 100, 20))
    features = np.vstack([on_topic, off])
    scores = outlier_scores(features)
    flagged = set(np.flatnonzero(scores >= group_cut(scores, features, offtopic_cut(scores))))
    assert flagged >= set(range(n, n + n // 100))
    assert len(flagged) <= n // 100 + n // 500


def test_a_fingerprint_store_gives_each_scanned_image_its_own_fingerprints(tmp_path, monkeypatch):
    """A scan puts each image's fingerprints into shared blocks; the folder's array is in the scan's
    order, across several blocks, and normalised like fingerprints stacked one by one."""
    monkeypatch.setattr(cleaning_pairs, "BLOCK", 4)
    _folder(tmp_path / "ds", 30)
    files = sorted(p for p in (tmp_path / "ds").rglob("*") if p.is_file())
    store = cleaning_pairs.FingerprintStore()
    scanned = load_folder(files, tmp_path / "ds", fingerprints_of, keep=store.put)
    fp = store.fingerprints(scanned.images)
    direct = Fingerprints(np.stack([fingerprints_of(cleaning_scan.read_image(p)) for p in scanned.paths]))
    assert len(fp) == 30 and np.array_equal(fp.views, direct.views)


def test_a_description_cache_reuses_unchanged_files_and_redescribes_changed_ones(tmp_path):
    """find_offtopic then find_label_errors describe the same folder: the second scan decodes only
    files that changed (size or modification time) and gives the same result as a fresh scan."""
    import os

    _folder(tmp_path / "ds", 30)
    root = tmp_path / "ds"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    described: list[int] = []

    def describe(img: Image.Image) -> int:
        described.append(1)
        return int(np.asarray(img).sum())

    cache = cleaning_scan.DescriptionCache()
    first = load_folder(files, root, describe, cache=cache)
    changed = root / "c0" / "im_000.png"
    Image.fromarray(np.full((24, 24), 7, dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    described.clear()
    again = load_folder(files, root, describe, cache=cache)
    assert len(described) == 1  # only the changed file (the unreadable one is retried, not described)
    assert again.images == load_folder(files, root, describe).images != first.images
    assert again.unreadable == first.unreadable and again.sizes == first.sizes
    assert cleaning_scan.DescriptionCache().entries(root) == {} and cache.entries(tmp_path / "other") == {}


def test_a_large_folder_decoded_in_worker_processes_gives_the_scan_threads_give(tmp_path, monkeypatch):
    """Large folders are decoded in spawned processes (the GIL held two threads to 1.3 cores); the
    result, unreadable files and fingerprints included, must not depend on where they were made."""
    _folder(tmp_path / "ds", 30)
    files = sorted(p for p in (tmp_path / "ds").rglob("*") if p.is_file())
    threads_store = cleaning_pairs.FingerprintStore()
    in_threads = load_folder(files, tmp_path / "ds", fingerprints_of, keep=threads_store.put)
    monkeypatch.setattr(cleaning_scan, "PROCESS_MIN_IMAGES", 10)
    monkeypatch.setattr(cleaning_scan, "PROCESS_CHUNK", 4)
    assert isinstance(cleaning_scan._scan_pool(len(files), fingerprints_of), cleaning_scan.ProcessPoolExecutor)
    procs_store = cleaning_pairs.FingerprintStore()
    in_procs = load_folder(files, tmp_path / "ds", fingerprints_of, keep=procs_store.put)
    assert in_procs.paths == in_threads.paths and in_procs.unreadable == in_threads.unreadable
    assert in_procs.sizes == in_threads.sizes and len(in_procs.unreadable) == 1
    assert np.array_equal(procs_store.fingerprints(in_procs.images).views,
                          threads_store.fingerprints(in_threads.images).views)


def _dies_in_a_worker(img: Image.Image) -> np.ndarray:
    """Fingerprints, but a decoding worker process that runs it dies (as one does on a failed import)."""
    import multiprocessing
    import os

    if multiprocessing.parent_process() is not None:
        os._exit(1)
    return fingerprints_of(img)


def test_dead_decoding_processes_fall_back_to_threads_with_the_same_scan(tmp_path, monkeypatch, caplog):
    """A worker that dies (a script without a __main__ guard) must not lose the scan: the images it had
    not returned are decoded in threads, and the scan says so in the log."""
    _folder(tmp_path / "ds", 30)
    files = sorted(p for p in (tmp_path / "ds").rglob("*") if p.is_file())
    in_threads = load_folder(files, tmp_path / "ds", fingerprints_of)
    monkeypatch.setattr(cleaning_scan, "PROCESS_MIN_IMAGES", 10)
    with caplog.at_level(logging.WARNING, logger="tools"):
        rescued = load_folder(files, tmp_path / "ds", _dies_in_a_worker)
    assert rescued.paths == in_threads.paths and rescued.unreadable == in_threads.unreadable
    assert all(np.array_equal(a, b) for a, b in zip(rescued.images, in_threads.images))
    assert any("decoding processes stopped" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv(cleaning_scan.PROCESSES_ENV, "0")
    assert isinstance(cleaning_scan._scan_pool(len(files), fingerprints_of), cleaning_scan.ThreadPoolExecutor)
