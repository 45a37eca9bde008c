"""The Flower deployment engine as real processes on 127.0.0.1 (a SuperLink and one SuperNode per
site): the same weights as the in-process engine for SCAFFOLD (client state) and FedBN (local
layers), and no process left behind (checked by process group).

The other Flower process tests: test_fl_flower_simulation.py (the simulation engine),
test_fl_flower_faults.py (a site that never starts, a killed SuperNode), test_fl_flower_interrupts.py
(Ctrl-C and SIGTERM) and test_fl_flower_restart.py (resuming a crashed run).
"""

from __future__ import annotations

import pytest

from tests.flower_helpers import assert_gives_the_in_process_weights, make_sites

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    return make_sites(tmp_path_factory.mktemp("sites"))


def test_flower_deployment_gives_the_in_process_weights(sites, tmp_path):
    assert_gives_the_in_process_weights("flower-deployment", sites, tmp_path)
