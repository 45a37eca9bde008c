"""``python -m fl_core.flower.link_main [--fork-server DIR] -- <flower-superlink arguments>``.

Runs Flower's own ``flower-superlink`` unchanged, plus :func:`fl_core.flower.watchdog.watch_parent`,
so that a SuperLink started by a launcher that is killed does not outlive it. ``--fork-server DIR``
also starts :mod:`fl_core.flower.zygote` for ``flwr-serverapp``, so that each run's ServerApp
process is forked from a warm parent instead of importing torch afresh (deployment only: a
simulation's SuperLink starts ``flwr-simulation`` instead, which it leaves as Flower's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``flower-superlink`` with the arguments after ``--``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fl_core.flower.link_main", add_help=False)
    parser.add_argument("--fork-server", default=None, metavar="DIR",
                        help="start the ServerApp fork server (fl_core.flower.zygote), its stand-in in DIR")
    ours, rest = parser.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if ours.fork_server:
        from fl_core.flower import zygote

        zygote.install(Path(ours.fork_server), "flwr-serverapp")
    from flwr.superlink.cli import flower_superlink

    from fl_core.flower.watchdog import watch_parent

    watch_parent()
    sys.argv = ["flower-superlink", *rest]
    return int(flower_superlink() or 0)


if __name__ == "__main__":
    sys.exit(main())
