"""The ``fedagentbench`` command.

Each sub-command lives in its own module that exposes ``register(subparsers)``; adding a command is
one module plus one line in :data:`COMMANDS`. Errors a user can fix are printed as one line, not a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

#: Sub-command modules, in help order.
COMMANDS: tuple[str, ...] = (
    "fedagentbench.cli.run_cmd",
    "fedagentbench.cli.envs_cmd",
    "fedagentbench.cli.train_cmd",
    "fedagentbench.cli.eval_cmd",
    "fedagentbench.cli.llm_cmd",
)


class UserError(Exception):
    """A problem with the user's input; printed as one line with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedagentbench",
        description="Agent-driven federated learning for medical imaging, and its benchmark.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"fedagentbench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
