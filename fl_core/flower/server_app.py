"""The Flower ServerApp: reads the run folder's spec and runs :class:`fl_core.flower.server.FlowerServer`.

The ServerApp runs in its own process (started by the SuperLink), so an error here would only show
in Flower's logs; it is also written to the run folder's ``flower_error.txt``, where the launcher
(:mod:`fl_core.flower.launch`) reads it and raises it to the caller. Its pid goes to
``flower_serverapp.pid``: a ServerApp that dies without a word (killed, out of memory) is noticed by
the launcher from that pid within seconds, not after the SuperLink's run heartbeat gives up (~60 s).
It also runs the parent watchdog (:func:`fl_core.flower.watchdog.watch_parent`), like the SuperLink
and SuperNode wrappers: their group kill does not reach it, so a SIGKILLed launcher, whose own
clean-up never runs, left it training on (tests/test_fl_flower_interrupts.py).
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fl_core.flower.options import load_spec
from fl_core.flower.server import FlowerServer
from fl_core.flower.site import build_algorithm
from fl_core.flower.watchdog import watch_parent

__all__ = ["ERROR_FILE", "PID_FILE", "app"]

ERROR_FILE = "flower_error.txt"
PID_FILE = "flower_serverapp.pid"

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the FL job whose spec file the run config's ``spec`` names."""
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    spec = Path(str(context.run_config["spec"]))
    cfg, options, raw = load_spec(spec)
    error = Path(cfg.out_dir) / ERROR_FILE
    error.unlink(missing_ok=True)
    (Path(cfg.out_dir) / PID_FILE).write_text(str(os.getpid()))
    watch_parent()
    try:
        FlowerServer(grid, cfg, options, build_algorithm(raw["algorithm"])).run()
    except BaseException as exc:
        error.write_text(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        raise
