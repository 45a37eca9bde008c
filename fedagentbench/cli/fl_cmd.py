"""``fedagentbench fl serve`` / ``fedagentbench fl node``: Flower's SuperLink and a site's SuperNode.

Thin wrappers over Flower's own ``flower-superlink`` and ``flower-supernode`` with this project's
settings: no ``uv sync`` of the app per run (a hospital has no package index), the ClientApp of
``fl_core.flower``, one node per site with only that site's prepared folder in its node config, and
the shorter polling of :mod:`fl_core.flower.node_main`. A run is then submitted to the SuperLink with
``fedagentbench train --engine flower-deployment`` (which starts its own SuperLink and nodes on
127.0.0.1) or with ``flwr run`` against a SuperLink started here.

``--insecure`` (no TLS, no node authentication) is for local testing only. For real use give the
SuperLink ``--ssl-ca-certfile/--ssl-certfile/--ssl-keyfile`` and ``--enable-supernode-auth``, and
each node ``--root-certificates`` and ``--auth-supernode-private-key``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fedagentbench.cli import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fl", help="Flower processes: a SuperLink (serve) or one site's SuperNode (node)")
    fl = p.add_subparsers(dest="fl_command", required=True, metavar="ROLE")

    s = fl.add_parser("serve", help="start a Flower SuperLink (the coordinator) in the foreground")
    s.add_argument("--host", default="127.0.0.1", help="address the SuperLink's HTTP API binds to")
    s.add_argument("--port", type=int, default=9093)
    s.add_argument("--database", default=None, help="state file (default: in memory)")
    s.add_argument("--simulation", action="store_true", help="run apps with Flower's simulation runtime")
    _tls(s, server=True)
    s.set_defaults(func=_serve)

    n = fl.add_parser("node", help="start one site's Flower SuperNode in the foreground")
    n.add_argument("--superlink", required=True, metavar="HOST:PORT", help="the SuperLink's address")
    n.add_argument("--site-dir", required=True, help="this site's prepared folder (<class>/<image>); the only "
                   "data the node can read")
    n.add_argument("--site-index", type=int, required=True,
                   help="this site's position in the run's site list (0-based): seeds and splits derive from it")
    n.add_argument("--state-dir", default=None, help="the site's own folder for its checkpoints "
                   "(default: .<site>-flower-state beside --site-dir)")
    n.add_argument("--port", type=int, default=9094, help="port of this node's runtime API (one per node)")
    n.add_argument("--poll-interval", type=float, default=0.1,
                   help="seconds between requests for messages (Flower's own: 3)")
    n.add_argument("--no-fork-server", action="store_true",
                   help="start each ClientApp process afresh instead of forking it from a warm parent")
    _tls(n, server=False)
    n.set_defaults(func=_node)


def _tls(p: argparse.ArgumentParser, server: bool) -> None:
    p.add_argument("--insecure", action="store_true", help="no TLS and no node authentication: local testing only")
    if server:
        p.add_argument("--ssl-ca-certfile")
        p.add_argument("--ssl-certfile")
        p.add_argument("--ssl-keyfile")
        p.add_argument("--enable-supernode-auth", action="store_true")
    else:
        p.add_argument("--root-certificates", help="CA certificate that signed the SuperLink's certificate")
        p.add_argument("--auth-supernode-private-key", help="this node's private key (node authentication)")


def _security(args: argparse.Namespace, server: bool) -> list[str]:
    if args.insecure:
        return ["--insecure"]
    if server:
        files = [args.ssl_ca_certfile, args.ssl_certfile, args.ssl_keyfile]
        if not all(files):
            raise UserError("give --ssl-ca-certfile, --ssl-certfile and --ssl-keyfile (TLS), or --insecure for "
                            "local testing only")
        out = ["--ssl-ca-certfile", files[0], "--ssl-certfile", files[1], "--ssl-keyfile", files[2]]
        return out + (["--enable-supernode-auth"] if args.enable_supernode_auth else [])
    if not args.root_certificates:
        raise UserError("give --root-certificates (TLS), or --insecure for local testing only")
    out = ["--root-certificates", args.root_certificates]
    return out + (["--auth-supernode-private-key", args.auth_supernode_private_key]
                  if args.auth_supernode_private_key else [])


def serve_command(args: argparse.Namespace) -> list[str]:
    """The SuperLink command line these arguments stand for."""
    cmd = [sys.executable, "-m", "fl_core.flower.link_main", "--", "--isolation", "subprocess",
           "--host", args.host, "--port", str(args.port), "--disable-runtime-dependency-installation",
           *_security(args, server=True)]
    if args.database:
        cmd += ["--database", args.database]
    return cmd + (["--simulation"] if args.simulation else [])


def node_command(args: argparse.Namespace) -> list[str]:
    """The SuperNode command line these arguments stand for."""
    site = Path(args.site_dir).resolve()
    if not site.is_dir():
        raise UserError(f"--site-dir {args.site_dir!r} is not a folder; give the site's prepared folder")
    if args.site_index < 0:
        raise UserError("--site-index must be >= 0")
    state = Path(args.state_dir).resolve() if args.state_dir else site.parent / f".{site.name}-flower-state"
    host = args.superlink.rsplit(":", 1)
    if len(host) != 2 or not host[1].isdigit():
        raise UserError(f"--superlink {args.superlink!r}: write HOST:PORT, e.g. 127.0.0.1:9093")
    ours = ["--poll-interval", str(args.poll_interval)]
    if not args.no_fork_server:
        ours += ["--fork-server", str(state / "fork-server")]
    node_config = f'site-dir="{site}" site-index={args.site_index} state-dir="{state}"'
    return [sys.executable, "-m", "fl_core.flower.node_main", *ours, "--", *_security(args, server=False),
            "--superlink", args.superlink, "--port", str(args.port), "--node-config", node_config]


def _exec(cmd: list[str]) -> int:
    from fl_core.flower.processes import venv_env

    sys.stdout.flush()
    os.execve(cmd[0], cmd, venv_env())
    return 0  # pragma: no cover


def _serve(args: argparse.Namespace) -> int:
    return _exec(serve_command(args))


def _node(args: argparse.Namespace) -> int:
    return _exec(node_command(args))
