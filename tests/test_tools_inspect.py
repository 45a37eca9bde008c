"""C1 tools: data cards quoted as data, dataset summaries that match the disk and show no data."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from langchain_core.tools import ToolException

from envs.concepts import MODALITIES
from tools.inspect import read_data_cards, summarize_dataset
from tools.privacy import DATA_NOTE, WITHHELD, as_data
from tools.sandbox import Workspace


@pytest.mark.parametrize("modality", MODALITIES)
def test_cards_list_every_dataset_with_text_quoted(built_envs, modality):
    env = built_envs(modality)
    for site_id, site in env.key.sites.items():
        out = read_data_cards(Workspace.open(env.site_dir(site_id)))
        assert out["note"] == DATA_NOTE
        assert [d["folder"] for d in out["datasets"]] == [f"raw/{ds.folder}" for ds in site.datasets]
        for card, ds in zip(out["datasets"], site.datasets):
            assert card["name"] == as_data(ds.name) and card["folder_exists"]
            assert card["labels"] == [as_data(label) for label in ds.native_labels]
            assert card["description"].startswith("<data>") and card["description"].endswith("</data>")


@pytest.mark.parametrize("modality", MODALITIES)
def test_summary_label_counts_match_the_key(built_envs, modality):
    env = built_envs(modality)
    for site_id, site in env.key.sites.items():
        ws = Workspace.open(env.site_dir(site_id))
        for ds in site.datasets:
            out = summarize_dataset(ws, f"raw/{ds.folder}")
            image_roles = ("image", "duplicate", "offtopic", "corrupt")
            truth = Counter(t.given_label for t in ds.files.values() if t.role in image_roles and ds.native_labels)
            listed = out["labels"]["labels"].get("items", [])
            assert {i["name"]: i["count"] for i in listed} == {as_data(k, 80): v for k, v in truth.items()}
            assert out["n_images"] == sum(t.role in image_roles for t in ds.files.values())
            assert out["images"]["sampled"] > 0 and out["images"]["width_range"][0] >= 8


def test_summary_withholds_identifier_columns_and_reports_dicom_allow_list(built_envs):
    env = built_envs("xray")
    seen_withheld = seen_dicom = False
    for site_id, site in env.key.sites.items():
        ws = Workspace.open(env.site_dir(site_id))
        for ds in site.datasets:
            out = summarize_dataset(ws, f"raw/{ds.folder}")
            for table in out.get("label_files", {}).values():
                withheld = [c for c, v in table["columns"].items() if v == WITHHELD]
                seen_withheld |= as_data("patient_name", 80) in withheld
            header = out["images"].get("dicom_header_allowed_tags")
            if header:
                seen_dicom = True
                assert "PatientName" not in header and "Modality" in header
            text = json.dumps(out)
            assert not any(i in text for i in env.key.identifiers)
    assert seen_withheld and seen_dicom


def test_summary_refuses_a_folder_outside_raw(built_envs):
    env = built_envs("xray")
    ws = Workspace.open(env.site_dir(next(iter(env.key.sites))))
    with pytest.raises(ToolException, match="raw/"):
        summarize_dataset(ws, "data_cards.yaml")
