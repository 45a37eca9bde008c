"""``python -m fl_core.flower.node_main [--poll-interval S] -- <flower-supernode arguments>``.

Flower's own ``flower-supernode``, with one setting Flower does not expose: a SuperNode with no
message waits a fixed 3 s before it asks the SuperLink again (``flwr.supernode.start_client_internal``,
1.42.0), which on loopback is most of the fixed cost of every exchange. This entry point caps that
wait at ``--poll-interval`` seconds (0.1 by default) and otherwise runs Flower's command unchanged:
same flags, same process tree (the SuperNode starts its ``flower-superexec``, which starts one
``flwr-clientapp`` process per message). With ``--poll-interval 3`` it behaves exactly as Flower's.
``--fork-server DIR`` also starts :mod:`fl_core.flower.zygote`, so that those per-message processes
are forked from a warm parent instead of importing torch afresh.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path
from typing import Any

__all__ = ["main"]


class _CappedSleep(types.ModuleType):
    """The ``time`` module as the SuperNode loop sees it, with ``sleep`` capped."""

    def __init__(self, cap: float) -> None:
        super().__init__("time")
        self._cap = cap

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self._cap))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def main(argv: list[str] | None = None) -> int:
    """Patch the SuperNode's poll wait, then run ``flower-supernode`` with the remaining arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fl_core.flower.node_main", add_help=False)
    parser.add_argument("--poll-interval", type=float, default=0.1)
    parser.add_argument("--fork-server", default=None, metavar="DIR",
                        help="start the ClientApp fork server (fl_core.flower.zygote) with its socket in DIR")
    ours, rest = parser.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not ours.poll_interval > 0:
        parser.error("--poll-interval must be > 0 seconds")
    if ours.fork_server:
        from fl_core.flower import zygote

        zygote.install(Path(ours.fork_server), "flwr-clientapp")
    from fl_core.flower.watchdog import watch_parent

    watch_parent()
    from flwr.supernode import start_client_internal
    from flwr.supernode.cli import flower_supernode

    start_client_internal.time = _CappedSleep(ours.poll_interval)  # type: ignore[assignment]
    sys.argv = ["flower-supernode", *rest]
    result = flower_supernode()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
