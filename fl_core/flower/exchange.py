"""Send one message per site and wait for the replies, by the engine's failure policy.

Why not ``Grid.send_and_receive``: it sleeps a fixed 3 s between checks and cannot tell a dead node
from a slow one. Here the server polls every ``poll_interval`` seconds and gives up on a site when
its reply is an error, when the SuperLink no longer lists its node, or at ``round_timeout``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from flwr.app import Message
from flwr.serverapp import Grid

__all__ = ["Exchange", "SiteFailure", "exchange"]

log = logging.getLogger(__name__)


class SiteFailure(RuntimeError):
    """Too few sites replied to go on (the message names them and says what to check)."""


@dataclass
class Exchange:
    """Replies by site index, and the sites that failed with the reason."""

    replies: dict[int, Message] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def exchange(grid: Grid, messages: dict[int, Message], timeout: float, poll: float) -> Exchange:
    """Push ``messages`` (site index -> message) and collect replies until all came or ``timeout``."""
    ids = list(grid.push_messages(list(messages.values())))
    pending = {mid: site for mid, site in zip(ids, messages)}
    node_of = {site: msg.metadata.dst_node_id for site, msg in messages.items()}
    out = Exchange()
    deadline = time.monotonic() + timeout
    while pending:
        for reply in grid.pull_messages(list(pending)):
            site = pending.pop(reply.metadata.reply_to_message_id)
            if reply.has_error():
                out.failed[site] = f"its ClientApp failed: {reply.error.reason}"
            else:
                out.replies[site] = reply
        if not pending:
            break
        online = set(grid.get_node_ids())
        for mid, site in list(pending.items()):
            if node_of[site] not in online:
                out.failed[site] = "its SuperNode went offline"
                del pending[mid]
        if time.monotonic() > deadline:
            for site in pending.values():
                out.failed[site] = f"no reply within round_timeout={timeout:g} s"
            break
        time.sleep(poll)
    return out
