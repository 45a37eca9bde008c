"""``python -m fl_core.flower.link_main -- <flower-superlink arguments>``: Flower's SuperLink, watched.

Runs Flower's own ``flower-superlink`` unchanged, plus :func:`fl_core.flower.watchdog.watch_parent`,
so that a SuperLink started by a launcher that is killed does not outlive it.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``flower-superlink`` with ``argv`` (a leading ``--`` is dropped)."""
    rest = list(sys.argv[1:] if argv is None else argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    from flwr.superlink.cli import flower_superlink

    from fl_core.flower.watchdog import watch_parent

    watch_parent()
    sys.argv = ["flower-superlink", *rest]
    return int(flower_superlink() or 0)


if __name__ == "__main__":
    sys.exit(main())
