"""C2 cleaning tools: quality against the answer key (scale 0.3), flag vs remove, manifest, sandbox, bad input."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tools.clean import make_cleaning_tools
from tools.cleaning_labels import label_issues
from tools.cleaning_offtopic import group_cut, offtopic_cut, offtopic_indices, outlier_scores, tail_stands_out
from tools.sandbox import Workspace

torch.set_num_threads(1)
_spec = importlib.util.spec_from_file_location(
    "cleaning_quality", Path(__file__).parents[1] / "benchmarks" / "cleaning_quality.py")
cq = importlib.util.module_from_spec(_spec)
sys.modules["cleaning_quality"] = cq
_spec.loader.exec_module(cq)


@pytest.fixture(scope="module")
def derm(built_envs, tmp_path_factory):
    """Organised dermatoscopy folders (copies of the sites; tests copy them again before changing them)."""
    return cq.prepare_folders(built_envs("dermatoscopy"), tmp_path_factory.mktemp("derm_sites"))


@pytest.fixture(scope="module")
def derm_scores(built_envs, tmp_path_factory):
    """Scores of the three tools in remove mode (on their own copy: ``derm`` stays unmodified)."""
    return cq.evaluate_folders(cq.prepare_folders(built_envs("dermatoscopy"), tmp_path_factory.mktemp("scored")))


def _tools(site: Path):
    return {t.name: t for t in make_cleaning_tools(Workspace.open(site))}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_duplicates_quality_on_dermatoscopy(derm_scores):
    d = derm_scores["duplicates"]
    assert d["precision"] >= 0.95 and d["recall"] >= 0.95, d  # measured 1.00 / 1.00 at scale 0.3


def test_offtopic_meets_the_issue_target_on_dermatoscopy(derm_scores):
    o = derm_scores["offtopic"]
    assert o["precision"] >= 0.9 and o["recall"] >= 0.9, o  # measured 0.90 / 1.00 at scale 0.3


def test_label_errors_find_some(derm_scores):
    # Measured at scale 0.3: P 0.40 R 0.31 (below the issue's target, see the xfail below)
    assert derm_scores["label_errors"]["tp"] >= 1


@pytest.mark.xfail(strict=True, reason="issue 4 target not reached: label errors P>=0.7 at R>=0.5")
def test_label_errors_meet_the_issue_target(derm_scores):
    lab = derm_scores["label_errors"]
    assert lab["precision"] >= 0.7 and lab["recall"] >= 0.5


def test_flag_moves_nothing_and_remove_moves_with_manifest(derm, tmp_path):
    f = next(f for f in derm if f.truth["duplicates"])
    site = tmp_path / "site_x"
    import shutil

    shutil.copytree(f.site_dir / f.rel, site / f.rel)
    (site / "raw").mkdir()
    root = site / f.rel
    before = _files(root)
    tool = _tools(site)["find_duplicates"]
    flagged = tool.invoke({"folder": f.rel, "mode": "flag"})
    assert flagged["flagged"] >= 1 and "moved" not in flagged and _files(root) == before
    assert all(e.startswith("<data>") for e in flagged["examples"])
    removed = tool.invoke({"folder": f.rel, "mode": "remove"})
    assert removed["moved"] == flagged["flagged"]
    manifest = json.loads((site / removed["manifest"]).read_text())
    moved_to = {Path(r["to"]).name for r in manifest["moved"]}
    after = _files(root)
    assert len(after) == len(before) - removed["moved"]
    assert {Path(p).name for p in before} == {Path(p).name for p in after} | moved_to  # nothing lost
    for rec in manifest["moved"]:
        assert (site / rec["to"]).is_file() and not (site / rec["from"]).exists()
    again = tool.invoke({"folder": f.rel, "mode": "flag"})
    assert again["flagged"] == 0


@pytest.mark.parametrize("folder", ["../site_other/work", "/etc", "work/../../x", "work/\u2024\u2024/x",
                                    "w" * 300, "raw"])
def test_escape_attempts_and_raw_are_refused(tmp_path, folder):
    site = tmp_path / "site_y"
    (site / "raw").mkdir(parents=True)
    msg = _tools(site)["find_offtopic"].invoke({"folder": folder, "mode": "remove"})
    assert isinstance(msg, str) and "Traceback" not in msg
    assert any(w in msg for w in ("outside", "'..'", "unicode", "too long", "read-only", "does not exist"))


def test_symlink_out_of_the_site_is_refused(tmp_path):
    site = tmp_path / "site_z"
    (site / "raw").mkdir(parents=True)
    (site / "work").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (site / "work" / "link").symlink_to(tmp_path / "elsewhere")
    msg = _tools(site)["find_duplicates"].invoke({"folder": "work/link"})
    assert isinstance(msg, str) and "outside" in msg


def test_empty_folder_and_unreadable_file_give_clear_results(derm, tmp_path):
    site = tmp_path / "site_e"
    (site / "raw").mkdir(parents=True)
    (site / "work" / "organized" / "empty" / "a").mkdir(parents=True)
    tools = _tools(site)
    msg = tools["find_label_errors"].invoke({"folder": "work/organized/empty"})
    assert isinstance(msg, str) and "no readable images" in msg
    f = derm[0]
    import shutil

    shutil.copytree(f.site_dir / f.rel, site / "work/organized/ds")
    cls = next(p for p in (site / "work/organized/ds").iterdir() if p.is_dir())
    (cls / "broken.png").write_bytes(b"not a png")
    res = tools["find_duplicates"].invoke({"folder": "work/organized/ds", "mode": "remove"})
    assert res["unreadable_files"]["count"] == 1 and "broken.png" in res["unreadable_files"]["items"][0]
    assert (cls / "broken.png").exists()  # reported, never moved or deleted by this step


def test_bad_mode_is_answered(tmp_path):
    site = tmp_path / "site_m"
    (site / "raw").mkdir(parents=True)
    msg = _tools(site)["find_duplicates"].invoke({"folder": "work", "mode": "delete"})
    assert isinstance(msg, str) and "invalid arguments" in msg


def test_label_error_detection_never_forks_worker_processes(monkeypatch):
    """Clients are cleaned in the graph's worker threads; a fork from a thread can inherit a held lock
    and hang forever (it hung CI), so confident learning must run in-process."""
    def refuse(*_a, **_k):
        raise AssertionError("a multiprocessing pool was started")

    monkeypatch.setattr(multiprocessing, "Pool", refuse)
    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((16, 16)) * (80 if i % 2 else 255)).astype("uint8")) for i in range(40)]
    labels = ["dark" if i % 2 else "bright" for i in range(40)]
    found = label_issues(images, labels)
    assert found.classes_not_checked == [] and all(0 <= i < 40 for i in found.indices)


def test_label_error_detection_gives_the_same_answer_when_sites_are_cleaned_in_parallel_threads():
    """Sites' C2 agents run in parallel threads; confident learning keeps per-call arrays in module
    globals, so unguarded parallel calls mixed up each other's classes."""
    def dataset(seed: int, n: int, k: int):
        rng = np.random.default_rng(seed)
        labels = [f"c{i % k}" for i in range(n)]
        images = [Image.fromarray((rng.random((16, 16)) * (60 + 190 * (i % k) / k)).astype("uint8"))
                  for i in range(n)]
        return images, labels

    sets = [dataset(s, n, k) for s, n, k in [(0, 60, 2), (1, 90, 3), (2, 45, 3), (3, 80, 4)]]
    expected = [label_issues(*d) for d in sets]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda d: label_issues(*d), sets * 4))
    assert got == expected * 4


@pytest.mark.parametrize(("top", "flagged"), [
    ([12.9, 7.7, 7.5, 7.3, 3.1], 4),  # one extreme image must not hide three clear ones (dermatoscopy, seed 0)
    ([8.3, 8.0, 6.0, 3.3, 3.2, 3.1, 3.1], 3),
    ([45.0, 3.1, 3.0, 2.9, 2.8], 1),
    ([3.2, 2.6, 2.5], 3),  # a small group just above the folder's spread (histopathology, seed 2)
    ([5.3, 2.9, 2.6, 2.4], 1),  # one image far out, over a ragged tail (x-ray at scale 0.3)
])
def test_offtopic_cut_separates_the_tail_by_its_largest_ratio(top, flagged):
    scores = np.array(top + list(np.linspace(1.5, -1.5, 45)))
    assert int((scores >= offtopic_cut(scores)).sum()) == flagged


def _smooth_tail(n: int, tail: str) -> np.ndarray:
    """Scores of a folder without off-topic images: quantiles of a distribution, as robust z-scores."""
    from scipy.stats import expon, norm

    q = (np.arange(n) + 0.5) / n
    scores = norm.ppf(q) if tail == "normal" else expon.ppf(q)
    return (scores - np.median(scores)) / (np.median(np.abs(scores - np.median(scores))) * 1.4826)


@pytest.mark.parametrize("n", [40, 100, 300, 1000])  # below 40 images the tail is not tested
def test_offtopic_cut_flags_nothing_in_a_folder_whose_tail_continues_smoothly(n):
    scores = _smooth_tail(n, "normal")
    assert not tail_stands_out(scores)
    assert int((scores >= offtopic_cut(scores)).sum()) == 0


@pytest.mark.parametrize("n", [40, 100, 300, 1000])
def test_tail_spacing_test_accepts_a_smooth_exponential_tail(n, monkeypatch):
    """The spacing criterion itself (Renyi: exponential tails have alike normalised spacings). A real
    folder's scores reaching OFFTOPIC_CLEAR_Z are cut regardless, so that shortcut is off here."""
    import tools.cleaning_offtopic as detect

    monkeypatch.setattr(detect, "OFFTOPIC_CLEAR_Z", np.inf)
    assert not tail_stands_out(_smooth_tail(n, "exponential"))


@pytest.mark.parametrize("seed", range(5))
def test_outlier_score_ranks_a_small_group_of_alike_images_above_every_ordinary_one(seed):
    """Three near-identical images far from the folder are each other's nearest neighbours; scored by
    the mean distance to the five nearest alone they ranked among ordinary images (seeds 1 and 3)."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(10)
    centre[0] = 8.0
    features = np.vstack([centre + rng.normal(0, 0.05, (3, 10)), rng.normal(0, 1, (120, 10))])
    scores = outlier_scores(features)
    assert scores[:3].min() > scores[3:].max()


def _folder_with_a_group_below_the_cut(spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Scores and features of 150 ordinary images, two far outliers, and three images scoring 2.1-1.9
    (under the largest drop, 4.3 -> 2.1) that lie ``spread`` apart around one point far from the rest."""
    rng = np.random.default_rng(0)
    bulk = rng.normal(0, 1, (150, 10))
    centre = np.full(10, 6.0)
    group = centre + rng.normal(0, spread, (3, 10))
    features = np.vstack([rng.normal(0, 1, (2, 10)) + 20, group, bulk])
    scores = np.concatenate([[4.8, 4.3, 2.1, 2.0, 1.9], np.linspace(1.4, -1.5, 150)])
    return scores, features


@pytest.mark.parametrize(("spread", "flagged"), [(0.05, 5), (2.0, 2)])
def test_offtopic_group_cut_takes_in_a_tight_clump_below_the_largest_drop_but_not_a_loose_one(spread, flagged):
    """Three fundus photographs among vignetted skin images: alike, so each has near neighbours and
    scores under the two clearest outliers (dermatoscopy seed 0). Images that are merely spread out
    in the tail are no group and stay."""
    scores, features = _folder_with_a_group_below_the_cut(spread)
    cut = offtopic_cut(scores)
    assert int((scores >= cut).sum()) == 2
    assert int((scores >= group_cut(scores, features, cut)).sum()) == flagged


@pytest.mark.parametrize("n", [40, 100, 300])
def test_offtopic_group_cut_leaves_a_smooth_tail_alone(n):
    scores = _smooth_tail(n, "normal")
    features = np.random.default_rng(n).normal(0, 1, (n, 10))
    assert group_cut(scores, features, offtopic_cut(scores)) == offtopic_cut(scores)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_offtopic_spares_an_ordinary_variant_in_a_tight_folder_but_not_a_document(seed):
    """Near-identical images (one fundus photograph, fresh noise each): a slightly noisier one is still
    on-topic. Without a floor on the score's spread it scored z 5-8 and was flagged (seeds 0 and 1)."""
    from envs.synth import get_renderer, render_document

    rng = np.random.default_rng(seed)
    base = np.asarray(get_renderer("fundus").render(None, rng, 64), dtype=np.float32)

    def noisy(sigma: float) -> Image.Image:
        return Image.fromarray(np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8))

    folder = [noisy(2.0) for _ in range(60)] + [noisy(2.4)]
    assert offtopic_indices(folder)[0] == []
    assert offtopic_indices([*folder, render_document(rng, 64).convert("RGB")])[0] == [61]


def _bars(n: int, flipped: set[int], learnable: bool, seed: int = 0) -> tuple[list[Image.Image], list[str]]:
    """Noise images; when ``learnable``, class "h" has horizontal and class "v" vertical bars."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        a = rng.random((32, 32)) * 120
        horizontal = i % 2 == 0
        if learnable:
            stripes = (np.arange(32) // 4) % 2 * 120
            a += stripes[:, None] if horizontal else stripes[None, :]
        images.append(Image.fromarray(a.astype("uint8")))
        truth = "h" if horizontal else "v"
        labels.append(("v" if truth == "h" else "h") if i in flipped else truth)
    return images, labels


def test_label_errors_are_found_where_the_folder_model_learns_its_classes():
    flipped = {3, 10, 17, 24, 31}
    found = label_issues(*_bars(80, flipped, learnable=True))
    assert found.trusted and found.balanced_accuracy > 0.9 and found.chance == 0.5
    assert set(found.indices) <= flipped and len(found.indices) >= 4


def test_a_folder_model_no_better_than_chance_flags_nothing_and_says_why(tmp_path):
    """Labels the images do not show (here: pure noise) cannot be checked; flagging would only
    remove good images (seen: 14 false flags in a folder without a single wrong label)."""
    images, labels = _bars(200, {3, 10, 17, 24, 31}, learnable=False)
    found = label_issues(images, labels)
    assert not found.trusted and found.indices == []
    assert found.balanced_accuracy < found.chance + 0.1
    site = tmp_path / "site_n"
    (site / "raw").mkdir(parents=True)
    for i, (img, lab) in enumerate(zip(images, labels)):
        (site / "work/organized/noise" / lab).mkdir(parents=True, exist_ok=True)
        img.save(site / "work/organized/noise" / lab / f"{i:03d}.png")
    before = _files(site / "work/organized/noise")
    res = _tools(site)["find_label_errors"].invoke({"folder": "work/organized/noise", "mode": "remove"})
    assert res["flagged"] == 0 and "no better than chance" in res["note_model"]
    assert res["chance"] == 0.5 and res["model_balanced_accuracy"] < 0.6
    assert _files(site / "work/organized/noise") == before


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Encode and decode as the environment builder stores a JPEG."""
    import io

    from envs.messiness import encode

    return Image.open(io.BytesIO(encode(img, "jpg", quality))).convert(img.mode)


@pytest.mark.parametrize("original_in_grey", [False, True])
def test_the_original_is_kept_over_its_jpeg_reencoded_copy_in_a_jpeg_dataset(original_in_grey):
    """Datasets stored as JPEG (quality 92) get copies re-encoded at a lower quality and stored at 92
    again; on a soft image the copy's block edges read as sharper detail, so only the re-encoding
    test can tell, and it must allow for the second encoding (fundus, seed 1: four copies kept).
    Measured on luminance, so an original stored in grey is not taken for the copy."""
    from PIL import ImageFilter

    from envs.synth import get_renderer
    from tools.cleaning_duplicates import keep_first

    soft = ImageFilter.GaussianBlur(1.5)
    rendered = get_renderer("fundus").render("dr_moderate", np.random.default_rng(3), 128).filter(soft)
    original = _jpeg(rendered.convert("L") if original_in_grey else rendered, 92)
    copy = _jpeg(_jpeg(rendered, 67), 92)
    assert keep_first([copy, original], [0, 1], (128, 128))[0] == 1
