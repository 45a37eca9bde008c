"""The Flower simulation engine (a SuperLink with Flower's simulation runtime, one virtual node per
site in its own worker processes): the same weights as the in-process engine for SCAFFOLD and FedBN,
and no process left behind. The deployment engine's counterpart: test_fl_flower_deployment.py."""

from __future__ import annotations

import pytest

from tests.flower_helpers import assert_gives_the_in_process_weights, make_sites

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    return make_sites(tmp_path_factory.mktemp("sites"))


def test_flower_simulation_gives_the_in_process_weights(sites, tmp_path):
    assert_gives_the_in_process_weights("flower-simulation", sites, tmp_path)
