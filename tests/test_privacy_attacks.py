"""The privacy boundary, attacked: every client tool given hostile paths, names, links and columns.

The attacks are the catalogue of ``benchmarks/privacy_attacks.py`` and ``benchmarks/identifier_attacks.py``
(the same code prints the closing table). Each test asserts, per attack, the refusal text it must get,
and that nothing escaped: no file outside ``work/`` created, changed or deleted, ``raw/`` hashing the
same, the outside folder with the user's files intact, no identifier in any output. The tests run as
the user CI runs as (root here), where file modes stop nothing: they rely on none.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from envs import messiness
from envs.plan import slug
from tools.client import make_client_tools
from tools.sandbox import Workspace


def _load(name: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


pa = _load("privacy_attacks")
ia = _load("identifier_attacks")


def _tools(ws: Workspace) -> dict:
    return {t.name: t for role in make_client_tools(ws).values() for t in role}


def _assert_all_held(outcomes) -> None:
    bad = [f"{o.attack.tool}({o.attack.argument}={o.attack.args!r:.100}) [{o.attack.kind}] -> "
           f"{o.escaped or o.output[:200]}" for o in outcomes if not o.held]
    assert not bad, f"{len(bad)} of {len(outcomes)} attacks not held:\n" + "\n".join(bad[:15])


def test_every_tool_with_a_folder_refuses_every_hostile_path(tmp_path):
    attacks = pa.path_attacks(pa.Scene(tmp_path / "scene"))
    assert {a.tool for a in attacks} == set(pa.FOLDER_TOOLS)
    outcomes = pa.run_all(attacks, tmp_path)
    _assert_all_held(outcomes)
    assert len(outcomes) > 250


def test_cleaning_tools_refuse_raw_and_the_site_root_even_to_flag(tmp_path):
    attacks = [a for a in pa.path_attacks(pa.Scene(tmp_path / "scene"))
               if a.tool.startswith("find_") and a.args.get("mode") == "flag" and a.args["folder"] in (".", "raw/ds")]
    assert len(attacks) == 6
    _assert_all_held(pa.run_all(attacks, tmp_path))


def test_model_given_names_never_become_paths(tmp_path):
    outcomes = pa.run_all(pa.name_attacks(pa.Scene(tmp_path / "scene")), tmp_path)
    _assert_all_held(outcomes)
    assert sum(o.refused for o in outcomes) == len(outcomes) == 2 * len(pa.name_forms(pa.Scene(tmp_path)))
    harmonized = tmp_path / "scene" / "site" / "work" / "harmonized"
    assert not harmonized.exists() or not any(harmonized.iterdir()), "a refused map wrote files"


def test_planted_links_at_every_output_are_refused_and_the_outside_folder_survives(tmp_path):
    outcomes = pa.run_all(pa.link_attacks(pa.Scene(tmp_path / "scene")), tmp_path)
    _assert_all_held(outcomes)
    planted = {o.attack.kind for o in outcomes if o.attack.argument == "(planted link)"}
    assert {"link at work", "link at work/organized", "link at work/harmonized", "link at work/removed"} <= planted


def test_raw_is_not_written_through_a_hard_link_even_as_root(tmp_path):
    attacks = [a for a in pa.link_attacks(pa.Scene(tmp_path / "scene")) if a.argument == "(hard link into raw/)"]
    scene = pa.Scene.make(tmp_path / "probe")
    raw_file = scene.site / "raw" / "ds2" / "labels.json"
    if os.geteuid() == 0:  # what this test is about: modes are no protection here
        assert os.access(raw_file, os.W_OK)
    _assert_all_held(pa.run_all(attacks, tmp_path))


@pytest.fixture(scope="module")
def xray_sites(built_envs, tmp_path_factory):
    env = built_envs("xray")
    sites = tmp_path_factory.mktemp("id_attack") / "sites"
    shutil.copytree(env.root / "sites", sites, symlinks=True)
    return env, sites


def test_hostile_columns_and_folders_leak_no_identifier(xray_sites):
    env, sites = xray_sites
    layouts = {d.layout for s in env.key.sites.values() for d in s.datasets}
    assert {"flat_csv", "nested_patient", "dicom"} <= layouts, layouts  # every planting style is attacked
    outcomes = ia.run_on_sites(env, sites)
    _assert_all_held(outcomes)
    kinds = {(o.attack.argument, o.attack.kind) for o in outcomes}
    assert {("file_column", "identifier column"), ("label_column", "the file column"),
            ("folder", "patient-named sub-folder")} <= kinds


def _patient_site(tmp_path: Path, label_column: str = "diagnosis") -> Path:
    """A DICOM-style export planted as envs.layouts plants one: <MRN>/series_N/<stem>, patients in a CSV."""
    import numpy as np

    rng = np.random.default_rng(3)
    site = tmp_path / "site"
    rows, people = [], []
    for i in range(10):
        who = messiness.patient(rng)
        people.append(who)
        rel = f"{who['mrn']}/series_{i % 2 + 1}/IMG_{1000000 + i}.png"
        (site / "raw" / "ds" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (16, 16), 10 * i).save(site / "raw" / "ds" / rel)
        rows.append({"file": rel, label_column: "benign" if i % 2 else "malignant", **who})
    lines = [",".join(rows[0])] + [",".join(r.values()) for r in rows]
    (site / "raw" / "ds" / "labels.csv").write_text("\n".join(lines) + "\n")
    values = {v for who in people for v in who.values()}
    return site, values


@pytest.mark.parametrize("column", ["mrn", "patient_name", "birth_date"])
def test_an_identifier_column_is_never_a_file_or_label_column(tmp_path, column):
    site, values = _patient_site(tmp_path)
    tools = _tools(Workspace.open(site))
    for arg in ("file_column", "label_column"):
        out = tools["organize_dataset"].invoke({"folder": "raw/ds", arg: column})
        assert isinstance(out, str) and "may identify patients" in out, out
        assert not any(v.casefold() in out.casefold() for v in values)


def test_the_file_column_is_never_a_label_column(tmp_path):
    site, values = _patient_site(tmp_path)
    out = _tools(Workspace.open(site))["organize_dataset"].invoke({"folder": "raw/ds", "label_column": "file"})
    assert isinstance(out, str) and "cannot be a class label" in out, out
    assert not any(v.casefold() in out.casefold() for v in values)


def test_the_no_label_column_hint_suggests_no_identifier_bearing_column(tmp_path):
    site, values = _patient_site(tmp_path, label_column="outlook")
    tools = _tools(Workspace.open(site))
    out = tools["organize_dataset"].invoke({"folder": "raw/ds"})
    assert isinstance(out, str) and "no column that looks like a label" in out, out
    hinted = re.findall(r"<data>(.*?)</data>", out.split("one of", 1)[1])
    assert hinted == ["outlook"], out
    result = tools["organize_dataset"].invoke({"folder": "raw/ds", "label_column": hinted[0]})
    assert result["written"] == 10
    assert not any(v.casefold() in json.dumps(result).casefold() for v in values)


def test_the_filter_removes_identifier_shapes_of_other_exports():
    from tools.privacy import REDACTED, Redactor

    redact = Redactor(["Jane Q. Public", "H-77-ZX"])  # values of a site's identifier columns, of no shape
    planted = ["SSN 123-45-6789", "mail jane.doe@hospital.org", "call (555) 123-4567", "born 03/12/1975",
               "born 12.03.1975", "born 1975-03-12", "accession ACC-00451234", "PID 0042311", "folder 123456789",
               "DOE^JANE^Q", "Jane Q. Public", "patient h-77-zx"]
    for text in planted:
        assert REDACTED in redact(text), text
    out = redact({"MRN0012345/series_1/x.dcm": ["PT-4471234", {"k": "ok 2019", "n": 20190312}]})
    assert out == {f"{REDACTED}/series_1/x.dcm": [REDACTED, {"k": "ok 2019", "n": 20190312}]}


def test_the_filter_keeps_every_catalog_label_name_and_file_stem():
    """No false alarm on what the agents need: label names of all dataset cards, file stems, counts."""
    from tools.privacy import Redactor

    redact = Redactor()
    labels = []
    for path in (Path(__file__).parents[1] / "envs" / "catalog").glob("*.yaml"):
        for card in yaml.safe_load(path.read_text()):
            folder = slug(card["name"])
            stem = f"{folder.split('_')[0][:8].upper()}_1234567.png"  # as envs.items names a dataset's files
            labels += [str(x) for x in card.get("native_labels", [])] + [card["name"], folder, stem]
    assert len(labels) > 500
    changed = [x for x in labels if redact(x) != x]
    assert not changed, changed[:10]
    for text in ("ISIC_1234567.png", "COVID_7234946", "1024x1024", "2016-2019", "grade_3", "0.8123"):
        assert redact(text) == text


def test_argument_errors_name_the_field_and_what_is_allowed(tmp_path):
    site, _ = _patient_site(tmp_path)
    tools = _tools(Workspace.open(site))
    out = tools["resize_images"].invoke({"folder": "work", "size": 3, "channels": "CMYK"})
    assert "Tool input validation error" not in out
    assert "'size'" in out and ">= 16" in out and "<= 1024" in out, out
    assert "'channels'" in out and "'L'" in out and "'RGB'" in out, out
    out = tools["find_duplicates"].invoke({"folder": "work", "mode": "delete"})
    assert "'mode'" in out and "'flag'" in out and "'remove'" in out, out
    out = tools["apply_label_map"].invoke({"folder": "work/organized/ds", "mapping": "x", "target_classes": []})
    assert "'mapping'" in out and "object" in out and "'target_classes'" in out, out
    out = tools["summarize_dataset"].invoke({})
    assert "'folder'" in out and "Field required" in out and "raw/<dataset>" in out, out


def test_refusals_name_tools_that_exist(tmp_path):
    site, _ = _patient_site(tmp_path)
    tools = _tools(Workspace.open(site))
    out = tools["summarize_dataset"].invoke({"folder": "raw/nope"})
    assert "listing tool" not in out
    named = set(re.findall(r"\b([a-z]+_[a-z_]+)\b", out)) - {"raw", "work"}
    assert named and named <= set(tools), (named, out)
    sources = "\n".join(p.read_text() for p in (Path(__file__).parents[1] / "tools").glob("*.py"))
    assert "the listing tool" not in sources
