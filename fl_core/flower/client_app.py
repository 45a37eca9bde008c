"""The Flower ClientApp: a SuperNode's messages -> the contract's ``SiteClient`` (via :mod:`.site`).

Which folder a node trains on comes from its node config (``site-dir``, ``site-index``,
``state-dir``; set by ``fedagentbench fl node``), so a SuperNode sees only its own hospital's data.
Under the simulation runtime, where every virtual node runs in one process, the folders come from
the run config instead (``site-dirs``, indexed by the node's ``partition-id``).

Message types: ``query`` (the site's folder name, class names and training size, before the run),
``train`` and ``evaluate``. Record names are in :mod:`fl_core.flower.protocol`. The client's state
is restored from the context Flower keeps for the run (or, first thing after a restart of the run,
from the site's own checkpoint), updated by the hooks, and put back; it never enters a reply.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fl_core.flower import protocol as P
from fl_core.flower.records import (
    message_from,
    message_into,
    pack_into,
    state_from,
    state_from_record,
    state_into,
    state_to_record,
)
from fl_core.flower.site import Site, site_summary

__all__ = ["app", "node_site"]

log = logging.getLogger(__name__)

app = ClientApp()


def node_site(context: Context) -> tuple[str, int, str]:
    """This node's ``(site folder, site index, state folder)`` from its node or run config."""
    nc, rc = context.node_config, context.run_config
    if "site-dir" in nc:
        index = int(nc["site-index"])
        site_dir = str(nc["site-dir"])
        state_dir = str(nc.get("state-dir", Path(site_dir).parent / f".{Path(site_dir).name}-flower-state"))
        return site_dir, index, state_dir
    if "site-dirs" in rc and "partition-id" in nc:  # simulation runtime: one process, virtual nodes
        index = int(nc["partition-id"])
        dirs = json.loads(str(rc["site-dirs"]))
        return dirs[index], index, str(Path(str(rc["state-root"])) / f"site{index}")
    raise ValueError("this SuperNode has no site: start it with --node-config 'site-dir=\"...\" site-index=K "
                     "state-dir=\"...\"' (fedagentbench fl node does this)")


def _site(msg: Message, context: Context) -> tuple[Site, dict[str, Any]]:
    """The site's runtime with the client's state restored."""
    run = dict(msg.content.config_records[P.RUN])
    site_dir, index, state_dir = node_site(context)
    site = Site.create(site_dir, index, json.loads(str(run[P.SHARED])), json.loads(str(run[P.CLASSES])),
                       state_dir, str(run[P.RUN_KEY]), json.loads(str(run[P.ALGORITHM])))
    client = site.client
    kept = state_from(context.state, P.CLIENT_STATE, client.cfg.device)
    resume = int(run.get(P.RESUME_ROUND, 0))
    if kept is not None:
        client.state, client.local_weights = kept
    elif resume > 0:
        client.load(resume)
        log.info("site %d restored its state from its checkpoint of round <= %d", index, resume)
    else:  # the first message of a fresh run: no earlier run's state may be picked up
        client.clear_saved()
        state_into(context.state, P.CLIENT_STATE, {}, {})
    return site, run


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server which site this node is, which class names it holds and its training size."""
    site_dir, index, _ = node_site(context)
    run = msg.content.config_records[P.RUN]
    info = site_summary(site_dir, float(run[P.VAL_FRACTION]), float(run[P.TEST_FRACTION]))
    reply = ConfigRecord({P.SITE_INDEX: index, P.SITE_NAME: info["name"], P.SITE_CLASSES: info["classes"],
                          P.SITE_TRAIN_SIZE: info["train_size"]})
    return Message(RecordDict({P.SITE: reply}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One local round (one stage of it) through ``SiteClient.fit``; the state goes back into the context."""
    t0 = time.perf_counter()
    site, run = _site(msg, context)
    client = site.client
    weights = state_from_record(msg.content.array_records[P.GLOBAL], client.cfg.device)
    reply = client.fit(int(run[P.ROUND]), weights, message_from(msg.content, P.PAYLOAD, client.cfg.device),
                       int(run.get(P.STAGE, 0)))
    state_into(context.state, P.CLIENT_STATE, client.state, client.local_weights)
    u, s = reply.update, reply.stats
    content = RecordDict({
        P.UPDATE: state_to_record(u.weights),
        P.TRAIN: MetricRecord({"num_samples": u.num_samples, "train_loss": u.train_loss, "images": s.images,
                               "steps": s.steps, "seconds": s.seconds, "loss_sum": s.loss_sum,
                               "has_personal": int(reply.has_personal),
                               "handler_seconds": time.perf_counter() - t0}),
    })
    message_into(content, P.UPLOAD, u.message)
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The global (and personalised) model on this site's val and test splits: metrics and counts."""
    site, run = _site(msg, context)
    weights = state_from_record(msg.content.array_records[P.GLOBAL], site.client.cfg.device)
    found = site.evaluate(weights, bool(run[P.PERSONAL]), bool(run[P.CALIBRATE]))
    content = RecordDict()
    pack_into(content, P.EVAL, found)
    return Message(content, reply_to=msg)
