"""The ``fedagentbench`` command.

Each sub-command lives in its own module that exposes ``register(subparsers)``; adding a command is
one module plus one line in :data:`COMMANDS`. Errors a user can fix are printed as one line, not a
traceback, and every way a command can end has its own exit code (:mod:`fedagentbench.cli.exit_codes`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from fedagentbench.cli import exit_codes

#: Sub-command modules, in help order.
COMMANDS: tuple[str, ...] = (
    "fedagentbench.cli.run_cmd",
    "fedagentbench.cli.envs_cmd",
    "fedagentbench.cli.train_cmd",
    "fedagentbench.cli.fl_cmd",
    "fedagentbench.cli.eval_cmd",
    "fedagentbench.cli.llm_cmd",
)


class UserError(Exception):
    """A problem with the user's input; printed as one line with exit code 2 (:data:`exit_codes.USAGE`)."""

log = logging.getLogger("fedagentbench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedagentbench",
        description="Agent-driven federated learning for medical imaging, and its benchmark.",
        epilog=exit_codes.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
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
    from graphs.models import ProviderUnavailable

    try:
        return int(args.func(args) or 0)
    except ProviderUnavailable as exc:
        return _fail(args, exc, exit_codes.PROVIDER)
    except (UserError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as exc:
        return _fail(args, exc, exit_codes.USAGE)
    except KeyboardInterrupt:
        print(f"fedagentbench {args.command}: interrupted", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except Exception as exc:
        log.debug("harness error", exc_info=True)
        hint = "" if args.verbose else " (run with -v for the traceback)"
        return _fail(args, f"internal error: {type(exc).__name__}: {exc}{hint}", exit_codes.HARNESS)


def _fail(args: argparse.Namespace, message: object, code: int) -> int:
    print(f"fedagentbench {args.command}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
