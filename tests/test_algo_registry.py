"""Registry and catalog agree, and lookups fail helpfully."""

from __future__ import annotations

import json

import pytest

from algorithms.base import FLAlgorithm
from algorithms.catalog import as_records, entries, get_entry
from algorithms.registry import all_algorithms, get_algorithm, register


def test_every_registered_algorithm_has_exactly_one_catalog_entry_and_vice_versa():
    names = [e.name for e in entries()]
    assert len(names) == len(set(names))
    assert set(names) == set(all_algorithms())


@pytest.mark.parametrize("name", list(all_algorithms()))
def test_catalog_hyperparameters_are_the_class_defaults(name):
    assert get_entry(name).hyperparameters == all_algorithms()[name]().get_params()


def test_records_are_json_with_the_fields_the_selector_reads():
    records = json.loads(json.dumps(as_records()))
    assert {"name", "full_name", "key_idea", "category", "choose_when", "hyperparameters", "paper"} <= set(records[0])
    assert all("arXiv" in r["paper"] for r in records)


def test_unknown_name_lists_registered_names():
    with pytest.raises(ValueError, match="registered: .*fedavg.*fedprox"):
        get_algorithm("fedfoo")


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match=r"no parameter 'nu'.*\['mu'\]"):
        get_algorithm("fedprox", nu=0.1)


def test_invalid_value_is_rejected_before_a_run():
    with pytest.raises(ValueError, match="mu must be >= 0"):
        get_algorithm("fedprox", mu=-1)


def test_a_name_cannot_be_taken_twice():
    with pytest.raises(ValueError, match="registered twice"):
        @register("fedavg")
        class Other(FLAlgorithm):
            pass


def test_a_lookup_by_name_in_a_fresh_process_gives_the_same_entry_as_the_full_catalog():
    """A training process looks one algorithm up without importing the other modules; a name that its
    module does not carry (fedopt registers fedadam) is still found, and the entry is the catalog's."""
    import subprocess
    import sys

    code = ("import sys, json; from algorithms.catalog import get_entry; from algorithms.registry import get_algorithm; "
            "a = get_entry('fedbn').model_dump(mode='json'); n = sum(m.startswith('algorithms.') for m in sys.modules); "
            "b = get_entry('fedadam').model_dump(mode='json'); get_algorithm('fedyogi'); "
            "print(json.dumps([a, b, n]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    fedbn, fedadam, modules_after_one = json.loads(out)
    assert fedbn == get_entry("fedbn").model_dump(mode="json")
    assert fedadam == get_entry("fedadam").model_dump(mode="json")
    assert modules_after_one < len(all_algorithms()) / 2
