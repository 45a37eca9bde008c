"""The Flower engine's parts that run without Flower processes (fast): records, pooled metrics,
a site's data and training against the in-process engine's, the exchange policy, the commands, and
the fork server that stands in for Flower's app commands (one warm process, no federation)."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from algorithms.registry import get_algorithm
from fl_core import RunConfig
from fl_core.data import load_federation
from fl_core.engine import Engine
from fl_core.flower import exchange as exchange_mod
from fl_core.flower import protocol as P
from fl_core.flower.exchange import SiteFailure
from fl_core.flower.launch import node_command, superlink_command
from fl_core.flower.options import FlowerOptions
from fl_core.flower.pooled import pooled_metrics, split_stats
from fl_core.flower.records import (
    message_from,
    message_into,
    pack,
    pack_into,
    state_from,
    state_from_record,
    state_into,
    state_to_record,
    unpack,
    unpack_from,
)
from fl_core.flower.server import FlowerServer
from fl_core.flower.site import SHARED_FIELDS, Site, algorithm_ref, site_summary
from fl_core.metrics import classification_metrics
from fl_core.testing import make_shape_folders


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shape_folders(tmp_path_factory.mktemp("shapes"), clients=2, per_class=10, size=16, seed=3,
                              missing={1: ("triangle",)})


def _cfg(dirs, out, **kw):
    base = {"data_dirs": tuple(dirs), "image_size": 16, "batch_size": 8, "out_dir": str(out), "progress": False}
    return RunConfig(**{**base, **kw})


# ----------------------------------------------------------------------------------- records
def test_nested_payloads_survive_records_and_bytes():
    tree = {"c": {"conv.weight": torch.randn(3, 2, 2), "bn.num_batches_tracked": torch.tensor(7)},
            "round": 3, "mu": 0.01, "names": ["a", "b"], "empty": {}, "none": None, "list": [torch.ones(2), 4]}
    arrays, config = pack(tree)
    # through Flower's own serialisation, as a message travels
    arrays = ArrayRecord.inflate(arrays.deflate(), {k: v for k, v in arrays.children.items()})
    config = ConfigRecord.inflate(config.deflate())
    back = unpack(arrays, config)
    assert back.keys() == tree.keys() and back["empty"] == {} and back["none"] is None
    assert torch.equal(back["c"]["conv.weight"], tree["c"]["conv.weight"])
    assert back["c"]["bn.num_batches_tracked"].dtype == torch.int64 and int(back["c"]["bn.num_batches_tracked"]) == 7
    assert back["names"] == ["a", "b"] and back["round"] == 3 and back["list"][1] == 4


def test_records_refuse_what_they_cannot_carry():
    with pytest.raises(ValueError, match="without '/'"):
        pack({"a/b": 1})
    with pytest.raises(TypeError, match="record leaves must be"):
        pack({"model": object()})


def test_state_dicts_keep_order_and_dtype_and_missing_names_unpack_empty():
    state = {"b.weight": torch.randn(2), "a.running_mean": torch.zeros(3), "n": torch.tensor(2)}
    back = state_from_record(state_to_record(state))
    assert list(back) == list(state) and back["n"].dtype == torch.int64
    content = RecordDict()
    pack_into(content, "upload", {"delta": {"w": torch.ones(1)}})
    assert torch.equal(unpack_from(content, "upload")["delta"]["w"], torch.ones(1))
    assert unpack_from(content, "nothing") == {}


# ----------------------------------------------------------------------------------- pooled metrics
def test_pooled_counts_give_the_pooled_metrics():
    rng = np.random.default_rng(0)
    ys = [rng.integers(0, 3, 40), rng.integers(0, 2, 25)]  # the second client lacks class 2
    logits = [rng.normal(size=(40, 3)) * 3, rng.normal(size=(25, 3)) * 3]
    want = classification_metrics(np.concatenate(ys), np.concatenate(logits))
    got = pooled_metrics([split_stats(y, lg, 3) for y, lg in zip(ys, logits)])
    for k in ("accuracy", "balanced_accuracy", "macro_f1", "loss"):
        assert got[k] == pytest.approx(want[k], abs=1e-12), k
    assert got["n"] == want["n"]
    assert got["auroc"] == pytest.approx(want["auroc"], abs=0.01)  # exact up to ties within a bin


def test_pooled_metrics_of_nothing_are_nan():
    assert math.isnan(pooled_metrics([])["accuracy"]) and pooled_metrics([])["n"] == 0


# ----------------------------------------------------------------------------------- a site = one engine client
def _site(shapes, tmp_path, index, cfg, classes, algo):
    shared = {k: v for k, v in cfg.to_dict().items() if k in SHARED_FIELDS}
    return Site.create(shapes[index], index, shared, list(classes), str(tmp_path / "state"), "key",
                       algorithm_ref(algo))


def test_a_site_alone_loads_the_split_the_federation_gives_it(shapes, tmp_path):
    fed = load_federation(shapes, 16, 3, 0.15, 0.2, 0)
    site = _site(shapes, tmp_path, 1, _cfg(shapes, tmp_path), fed.classes, get_algorithm("fedavg"))
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(site.client, split).x, getattr(fed.clients[1], split).x)
        assert torch.equal(getattr(site.client, split).y, getattr(fed.clients[1], split).y)
    summary = site_summary(shapes[1], 0.15, 0.2)
    assert summary["train_size"] == len(fed.clients[1].train) and summary["classes"] == ["circle", "square"]
    # the next message of a run reads the decoded images from the site's cache
    again = _site(shapes, tmp_path, 1, _cfg(shapes, tmp_path), fed.classes, get_algorithm("fedavg"))
    assert torch.equal(again.client.train.x, site.client.train.x)
    assert len(list((tmp_path / "state").glob("data-*.pt"))) == 1


@pytest.mark.parametrize("algorithm", ["scaffold", "fedbn", "ditto"])
def test_a_site_rebuilt_from_names_trains_as_the_engine_client(shapes, tmp_path, algorithm):
    """What a SuperNode builds from the server's records (class path, hyper-parameters, label space,
    its own folder) trains exactly as the in-process engine's client, state carried between rounds
    through the records a ClientApp keeps in its context."""
    cfg = _cfg(shapes, tmp_path / "run", algorithm=algorithm, local_epochs=1)
    algo = get_algorithm(algorithm)
    engine = Engine(cfg, load_federation(shapes, 16, 3, 0.15, 0.2, 0), algo)
    engine.algo.init_server(engine.global_state, engine._server(0))
    context = RecordDict()
    for rnd in (1, 2):  # twice, so that client state (c_i, BN layers, the personal model) carries over
        site = _site(shapes, tmp_path, 1, cfg, engine.data.classes, algo)  # a fresh process per message
        kept = state_from(context, "client")
        if kept:
            site.client.state, site.client.local_weights = kept
        server = engine._server(rnd, (0, 1))
        weights = engine.algo.client_weights(1, engine.global_state, server)
        message = engine.algo.configure_client(1, server)
        want = engine.clients[1].fit(rnd, weights, message).update
        content = RecordDict()
        message_into(content, "payload", message)
        got = site.client.fit(rnd, state_from_record(state_to_record(weights)), message_from(content, "payload")).update
        state_into(context, "client", site.client.state, site.client.local_weights)
        for k in want.weights:
            assert torch.equal(got.weights[k], want.weights[k]), (rnd, k)
        for group, arrays in want.message.arrays.items():
            for k, v in arrays.items():
                assert torch.equal(got.message.arrays[group][k], v)
    assert bool(state_from(context, "client")[1]) == (algorithm == "fedbn")  # FedBN keeps its BN layers


def test_evaluation_sends_counts_not_outputs(shapes, tmp_path):
    fed = load_federation(shapes, 16, 3, 0.15, 0.2, 0)
    site = _site(shapes, tmp_path, 0, _cfg(shapes, tmp_path), fed.classes, get_algorithm("fedavg"))
    found = site.evaluate(site.client.workspace.model.state_dict(), personal=False, calibrate=False)
    assert set(found) == {"global"} and set(found["global"]) == {"test", "val"}
    stats = found["global"]["test"]["stats"]
    assert int(stats["confusion"].sum()) == len(fed.clients[0].test) == found["global"]["test"]["metrics"]["n"]
    assert "logits" not in stats and "y" not in stats


# ----------------------------------------------------------------------------------- the exchange policy
class _Grid:
    """A stand-in for Flower's Grid and its messages (the SuperLink is a boundary these unit tests do
    not start; the deployment tests run the real one)."""

    def __init__(self, answer: dict[int, str], online: set[int]) -> None:
        self.answer, self.online, self.sent = answer, online, {}

    def push_messages(self, messages):
        for i, m in enumerate(messages):
            self.sent[f"m{i}"] = m
        return list(self.sent)

    def pull_messages(self, ids):
        out = []
        for mid in ids:
            kind = self.answer.get(self.sent[mid].metadata.dst_node_id)
            if kind in ("ok", "error"):
                out.append(SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=mid),
                                           has_error=lambda k=kind: k == "error",
                                           error=SimpleNamespace(reason="boom")))
        return out

    def get_node_ids(self):
        return list(self.online)


def test_a_round_keeps_the_replies_and_names_each_failure():
    grid = _Grid({10: "ok", 11: "error", 12: "silent", 13: "silent"}, online={10, 11, 12})
    msgs = {k: SimpleNamespace(metadata=SimpleNamespace(dst_node_id=10 + k)) for k in range(4)}
    ex = exchange_mod.exchange(grid, msgs, timeout=0.3, poll=0.01)
    assert set(ex.replies) == {0}
    assert "boom" in ex.failed[1] and "round_timeout" in ex.failed[2] and "offline" in ex.failed[3]


class _SlowStartGrid:
    """Nodes that answer which site they are only ``delay`` seconds after being asked, as a
    SuperNode does while its ClientApp still imports torch on a loaded machine."""

    def __init__(self, nodes: dict[int, tuple[int, str, list[str]]], delay: float) -> None:
        self.nodes, self.delay, self.asked = nodes, delay, {}

    def get_node_ids(self):
        return list(self.nodes)

    def push_messages(self, messages):
        start = len(self.asked)
        for i, m in enumerate(messages):
            self.asked[f"q{start + i}"] = (m.metadata.dst_node_id, time.monotonic())
        return [f"q{start + i}" for i in range(len(messages))]

    def pull_messages(self, ids):
        out = []
        for mid in ids:
            node, when = self.asked[mid]
            if time.monotonic() - when >= self.delay:
                index, name, classes = self.nodes[node]
                rec = ConfigRecord({P.SITE_INDEX: index, P.SITE_NAME: name, P.SITE_CLASSES: classes,
                                    P.SITE_TRAIN_SIZE: 10})
                out.append(SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=mid),
                                           has_error=lambda: False,
                                           content=SimpleNamespace(config_records={P.SITE: rec})))
        return out


@pytest.fixture
def in_a_run(monkeypatch):
    """The run, node and task ids Flower's ServerApp runtime sets before the app builds messages."""
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


def test_a_site_whose_first_reply_is_slower_than_a_round_still_joins(shapes, tmp_path, in_a_run):
    """The first question starts a node's ClientApp; a reply after round_timeout but inside
    connect_timeout is a slow start, not a lost site (CI lost both sites this way)."""
    cfg = _cfg(shapes, tmp_path)
    grid = _SlowStartGrid({101: (0, "site0", ["circle", "square"]), 102: (1, "site1", ["circle", "triangle"])},
                          delay=0.5)
    opt = FlowerOptions(round_timeout=0.1, connect_timeout=5, poll_interval=0.02)
    server = FlowerServer(grid, cfg, opt, get_algorithm("fedavg"))
    server.connect()
    assert server.nodes == {0: 101, 1: 102} and server.classes == ("circle", "square", "triangle")
    assert len(grid.asked) == 2  # each node asked once, its question kept open


def test_a_node_that_never_says_which_site_it_is_is_named_at_connect_timeout(shapes, tmp_path, in_a_run):
    grid = _SlowStartGrid({101: (0, "site0", ["circle", "square"]), 102: (1, "site1", ["circle"])}, delay=60)
    server = FlowerServer(grid, _cfg(shapes, tmp_path), FlowerOptions(connect_timeout=0.3, poll_interval=0.02),
                          get_algorithm("fedavg"))
    with pytest.raises(SiteFailure, match=r"'site0', 'site1' did not connect.*2 SuperNode\(s\) connected"):
        server.connect()


# ----------------------------------------------------------------------------------- commands
def test_local_commands_are_insecure_offline_and_one_folder_per_node(tmp_path):
    link = superlink_command(9100)
    assert "--insecure" in link and "--disable-runtime-dependency-installation" in link
    node = node_command(9100, 9200, str(tmp_path / "site_a"), 3, str(tmp_path / "st"), 0.2)
    config = node[node.index("--node-config") + 1]
    assert f'site-dir="{tmp_path / "site_a"}"' in config and "site-index=3" in config
    assert node[node.index("--superlink") + 1] == "127.0.0.1:9100" and "--fork-server" in node


def test_fl_node_refuses_to_run_without_tls_or_insecure(tmp_path):
    from fedagentbench.cli import UserError
    from fedagentbench.cli.fl_cmd import node_command as cli_node
    from fedagentbench.cli.fl_cmd import serve_command

    (tmp_path / "site").mkdir()
    base = {"superlink": "10.0.0.1:9093", "site_dir": str(tmp_path / "site"), "site_index": 0, "state_dir": None,
                "port": 9094, "poll_interval": 0.1, "no_fork_server": False, "insecure": False, "root_certificates": None,
                "auth_supernode_private_key": None}
    with pytest.raises(UserError, match="--root-certificates"):
        cli_node(argparse.Namespace(**base))
    secure = cli_node(argparse.Namespace(**{**base, "root_certificates": "ca.pem",
                                            "auth_supernode_private_key": "node.key"}))
    assert "--insecure" not in secure and secure[secure.index("--auth-supernode-private-key") + 1] == "node.key"
    serve = {"host": "0.0.0.0", "port": 9093, "database": None, "simulation": False, "insecure": False, "ssl_ca_certfile": "ca",
                 "ssl_certfile": "crt", "ssl_keyfile": "key", "enable_supernode_auth": True}
    cmd = serve_command(argparse.Namespace(**serve))
    assert "--enable-supernode-auth" in cmd and "--insecure" not in cmd
    with pytest.raises(UserError, match="--ssl-ca-certfile"):
        serve_command(argparse.Namespace(**{**serve, "ssl_keyfile": None}))


def test_engine_is_validated_and_recorded():
    with pytest.raises(ValueError, match="engine must be one of"):
        RunConfig(data_dirs=(".",), engine="flower")
    cfg = RunConfig(data_dirs=(".",))
    assert cfg.engine == "inprocess" and cfg.replace(engine="flower-deployment").fingerprint() != cfg.fingerprint()


def test_a_serverapp_that_exited_without_a_summary_is_noticed(tmp_path):
    """The launcher's check for a ServerApp that died silently: a running process is alive, an exited
    one (even unreaped, a zombie) is gone, and a fresh summary means the run finished."""
    import os
    import subprocess
    import sys
    import time

    from fl_core.flower.launch import _serverapp_gone
    from fl_core.flower.server_app import PID_FILE
    from fl_core.pids import pid_alive

    since = time.time() - 1
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 20
        while pid_alive(exited.pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # exited but not waited for: a zombie until exited.wait()
        assert pid_alive(running.pid) and not pid_alive(exited.pid)
        assert not _serverapp_gone(tmp_path, since)  # no pid file yet: the ServerApp has not started
        (tmp_path / PID_FILE).write_text(str(running.pid))
        assert not _serverapp_gone(tmp_path, since)
        (tmp_path / PID_FILE).write_text(str(exited.pid))
        assert _serverapp_gone(tmp_path, since)
        (tmp_path / "summary.json").write_text("{}")
        assert not _serverapp_gone(tmp_path, since)
        os.utime(tmp_path / "summary.json", (since - 10, since - 10))  # an earlier run's summary
        assert _serverapp_gone(tmp_path, since)
    finally:
        running.kill()
        running.wait()
        exited.wait()


def test_a_deployment_superlink_forks_its_serverapps_and_a_simulation_one_does_not(tmp_path):
    link = superlink_command(9100, fork_server=str(tmp_path / "link"))
    assert link[link.index("--fork-server") + 1] == str(tmp_path / "link")
    assert "--fork-server" not in superlink_command(9100, simulation=True, fork_server=str(tmp_path / "link"))
    assert "--fork-server" not in superlink_command(9100)


def test_the_fork_server_runs_flowers_own_command_and_passes_its_exit_code_and_output(tmp_path):
    """The ``flwr-serverapp`` stand-in (alone on PATH, so Flower's own script cannot answer) reaches
    the warm server, whose forked child runs Flower's entry point with the stand-in's arguments and
    streams: its help on stdout, and argparse's exit code 2 for a bad flag. The ClientApp's server is
    the same code, run by every deployment test."""
    script = f"""
import os, subprocess
from pathlib import Path
from fl_core.flower import zygote
zygote.install(Path({str(tmp_path)!r}), "flwr-serverapp")
env = {{**os.environ, "PATH": {str(tmp_path / "bin")!r}}}
ok = subprocess.run(["flwr-serverapp", "--help"], capture_output=True, text=True, env=env)
bad = subprocess.run(["flwr-serverapp", "--no-such-flag"], capture_output=True, text=True, env=env)
print(ok.returncode, bad.returncode)
print(ok.stdout)
"""
    out = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    codes, _, helptext = out.stdout.partition("\n")
    assert codes.split() == ["0", "2"] and "flwr-serverapp" in helptext and "--runtime-api-address" in helptext
    from fl_core.flower import zygote

    with pytest.raises(ValueError, match="no fork server"):
        zygote.install(tmp_path, "flwr-simulation")
