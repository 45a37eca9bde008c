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

__all__ = ["Exchange", "Outstanding", "SiteFailure", "exchange"]

log = logging.getLogger(__name__)


class SiteFailure(RuntimeError):
    """Too few sites replied to go on (the message names them and says what to check)."""


@dataclass
class Exchange:
    """Replies by site index, and the sites that failed with the reason."""

    replies: dict[int, Message] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


@dataclass
class Outstanding:
    """Messages pushed and not answered yet, each under a key: a site index in a round, a node id
    while the server still asks nodes which site they are."""

    pending: dict[str, int] = field(default_factory=dict)  # message id -> key
    node_of: dict[int, int] = field(default_factory=dict)  # key -> node id

    def push(self, grid: Grid, messages: dict[int, Message]) -> None:
        ids = list(grid.push_messages(list(messages.values())))
        self.pending.update(zip(ids, messages))
        self.node_of.update({key: msg.metadata.dst_node_id for key, msg in messages.items()})

    def collect(self, grid: Grid, out: Exchange, online: set[int] | None = None) -> None:
        """One look: replies that came go to ``out.replies``; an error reply, or a node the SuperLink
        no longer lists (``online``, asked for when not given), to ``out.failed`` with the reason."""
        for reply in grid.pull_messages(list(self.pending)) if self.pending else ():
            key = self.pending.pop(reply.metadata.reply_to_message_id)
            if reply.has_error():
                out.failed[key] = f"its ClientApp failed: {reply.error.reason}"
            else:
                out.replies[key] = reply
        if not self.pending:
            return
        online = set(grid.get_node_ids()) if online is None else online
        for mid, key in list(self.pending.items()):
            if self.node_of[key] not in online:
                out.failed[key] = "its SuperNode went offline"
                del self.pending[mid]


def exchange(grid: Grid, messages: dict[int, Message], timeout: float, poll: float) -> Exchange:
    """Push ``messages`` (site index -> message) and collect replies until all came or ``timeout``."""
    waiting, out = Outstanding(), Exchange()
    waiting.push(grid, messages)
    deadline = time.monotonic() + timeout
    while True:
        waiting.collect(grid, out)
        if not waiting.pending:
            return out
        if time.monotonic() > deadline:
            for site in waiting.pending.values():
                out.failed[site] = f"no reply within round_timeout={timeout:g} s"
            return out
        time.sleep(poll)
