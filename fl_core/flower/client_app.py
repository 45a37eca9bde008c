"""The Flower ClientApp: a SuperNode's messages -> :class:`fl_core.flower.site.Site`.

Which folder a node trains on comes from its node config (``site-dir``, ``site-index``,
``state-dir``; set by ``fedagentbench fl node``), so a SuperNode sees only its own hospital's data.
Under the simulation runtime, where every virtual node runs in one process, the folders come from
the run config instead (``site-dirs``, indexed by the node's ``partition-id``).

Message types: ``query`` (the site's folder name and class names, before the run), ``train`` and
``evaluate``. Record names are in :mod:`fl_core.flower.protocol`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from algorithms.base import ServerContext
from fl_core.flower import protocol as P
from fl_core.flower.records import pack_into, state_from_record, state_to_record, unpack_from
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
    run = msg.content.config_records[P.RUN]
    site_dir, index, state_dir = node_site(context)
    site = Site.create(site_dir, index, json.loads(str(run[P.SHARED])), json.loads(str(run[P.CLASSES])),
                       state_dir)
    return site, dict(run)


def _saved(site: Site, run: dict[str, Any], context: Context) -> dict[str, Any]:
    """The client's state: from the context (kept by the SuperNode between messages) or, first thing
    after a restart of the run, from the site's own checkpoint."""
    saved = unpack_from(context.state, P.CLIENT_STATE)
    if not saved and int(run.get(P.RESUME_ROUND, 0)) > 0:
        saved = site.load_state(int(run[P.RESUME_ROUND]), str(run[P.RUN_KEY]))
        log.info("site %d resumed its state from its checkpoint of round <= %s", site.index, run[P.RESUME_ROUND])
    return saved


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server which site this node is, and which class names it holds (no image)."""
    site_dir, index, _ = node_site(context)
    run = msg.content.config_records[P.RUN]
    info = site_summary(site_dir, float(run[P.VAL_FRACTION]), float(run[P.TEST_FRACTION]))
    reply = ConfigRecord({P.SITE_INDEX: index, P.SITE_NAME: info["name"], P.SITE_CLASSES: info["classes"],
                          P.SITE_TRAIN_SIZE: info["train_size"]})
    return Message(RecordDict({P.SITE: reply}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One local round with the algorithm's client hooks; personal state stays in ``context.state``."""
    t0 = time.perf_counter()
    site, run = _site(msg, context)
    saved = _saved(site, run, context)
    rnd = int(run[P.ROUND])
    server = ServerContext(rnd, site.info, int(run[P.NUM_CLIENTS]), tuple(json.loads(str(run[P.SAMPLED]))),
                           tuple(json.loads(str(run[P.CLIENT_SIZES]))))
    global_state = state_from_record(msg.content.array_records[P.GLOBAL])
    update, stats, saved = site.train(rnd, global_state, unpack_from(msg.content, P.PAYLOAD), saved, server)
    pack_into(context.state, P.CLIENT_STATE, saved)
    site.save_state(rnd, str(run[P.RUN_KEY]), saved)
    content = RecordDict({
        P.UPDATE: state_to_record(update.state),
        P.TRAIN: MetricRecord({"num_samples": update.num_samples, "train_loss": update.train_loss,
                               "images": stats.images, "steps": stats.steps, "seconds": stats.seconds,
                               "loss_sum": stats.loss_sum, "handler_seconds": time.perf_counter() - t0}),
    })
    pack_into(content, P.UPLOAD, update.payload)
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The global (and personalised) model on this site's val and test splits: metrics and counts."""
    site, run = _site(msg, context)
    saved = _saved(site, run, context)
    found = site.evaluate(state_from_record(msg.content.array_records[P.GLOBAL]), saved)
    content = RecordDict()
    pack_into(content, P.EVAL, found)
    return Message(content, reply_to=msg)
