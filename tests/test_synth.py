"""Behaviour of the synthetic image renderers and scanner styles (envs.synth)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from envs.concepts import CHANNELS, CONCEPTS, MODALITIES
from envs.synth import DEFAULT_DIFFICULTY, Renderer, ScannerStyle, get_renderer, render_document

SIZE = 48


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("modality", MODALITIES)
def test_renderer_matches_concept_vocabulary(modality: str) -> None:
    r = get_renderer(modality)
    assert isinstance(r, Renderer)
    assert r.modality == modality
    assert r.concepts == CONCEPTS[modality]
    assert r.channels == CHANNELS[modality]
    assert 0.0 <= DEFAULT_DIFFICULTY[modality] <= 1.0


def test_unknown_modality_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="dermatoscopy"):
        get_renderer("pet")


def test_unknown_concept_and_bad_difficulty_are_rejected() -> None:
    r = get_renderer("xray")
    with pytest.raises(ValueError, match="pneumonia"):
        r.render("fracture", np.random.default_rng(0), SIZE)
    with pytest.raises(ValueError, match="difficulty"):
        r.render("normal", np.random.default_rng(0), SIZE, difficulty=1.5)


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_concept_other_and_other_anatomy_render(modality: str) -> None:
    r = get_renderer(modality)
    mode = "L" if CHANNELS[modality] == 1 else "RGB"
    rng = np.random.default_rng(1)
    images = [r.render(c, rng, SIZE) for c in (*r.concepts, None)]
    images.append(r.render_other_anatomy(rng, SIZE))
    for img in images:
        assert img.mode == mode and img.size == (SIZE, SIZE)
        arr = np.asarray(img, dtype=np.float32)
        assert arr.std() > 3.0, "image is (nearly) blank"
    for difficulty in (0.0, 1.0):
        assert r.render(r.concepts[0], rng, SIZE, difficulty).size == (SIZE, SIZE)


@pytest.mark.parametrize("modality", MODALITIES)
def test_same_seed_gives_identical_bytes_and_other_seeds_differ(modality: str) -> None:
    r = get_renderer(modality)
    concept = r.concepts[-1]
    a = _png(r.render(concept, np.random.default_rng(7), SIZE))
    b = _png(r.render(concept, np.random.default_rng(7), SIZE))
    c = _png(r.render(concept, np.random.default_rng(8), SIZE))
    assert a == b
    assert a != c
    style_a = ScannerStyle.sample(modality, np.random.default_rng(3))
    style_b = ScannerStyle.sample(modality, np.random.default_rng(3))
    img = r.render(concept, np.random.default_rng(7), SIZE)
    assert _png(style_a.apply(img, np.random.default_rng(4))) == _png(style_b.apply(img, np.random.default_rng(4)))


@pytest.mark.parametrize("modality", MODALITIES)
def test_styles_keep_mode_and_size_and_differ_between_sites(modality: str) -> None:
    r = get_renderer(modality)
    img = r.render(r.concepts[0], np.random.default_rng(0), 64)
    rng = np.random.default_rng(11)
    styles = [ScannerStyle.sample(modality, rng) for _ in range(4)]
    outs = []
    for style in styles:
        out = style.apply(img, np.random.default_rng(0))
        assert out.mode == img.mode and out.size == img.size
        outs.append(np.asarray(out, dtype=np.float32))
    assert len({tuple(sorted(s.describe().items(), key=str)).__repr__() for s in styles}) == 4
    assert all(np.abs(outs[0] - o).mean() > 0.5 for o in outs[1:])


def test_identity_style_leaves_image_unchanged_and_describe_is_json_able() -> None:
    import json

    img = get_renderer("histopathology").render("tumor", np.random.default_rng(0), 64)
    out = ScannerStyle.identity().apply(img, np.random.default_rng(0))
    assert np.array_equal(np.asarray(out), np.asarray(img))
    desc = ScannerStyle.sample("histopathology", np.random.default_rng(0)).describe()
    assert json.loads(json.dumps(desc)) == desc
    assert {"gamma", "contrast", "colour_cast", "stain", "ruler"} <= desc.keys()


def test_zero_strength_style_is_identity() -> None:
    style = ScannerStyle.sample("fundus", np.random.default_rng(0), strength=0.0)
    assert style.describe() == ScannerStyle.identity().describe()


def test_document_renders_as_rgb_and_deterministically() -> None:
    a = render_document(np.random.default_rng(5), 96)
    assert a.mode == "RGB" and a.size == (96, 96)
    assert _png(a) == _png(render_document(np.random.default_rng(5), 96))
