"""The closing table of issue 18: each public-dataset replica registered from the CLI and organised.

For every replica in ``tests/replicas.py``: its layout, images, images organised, share filed under
the right class, junk skipped (OS litter, masks, non-image files, unused tables), the refusals the
first argument-less organise call gave (then settled with the user's named choice), and whether
the source and the registered raw copy hash the same afterwards.

Usage: PYTHONPATH=. python benchmarks/real_layouts.py [--out /tmp/real_layouts]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.readonly import make_writable
from tests.replicas import BUILDERS, register_and_organise


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="/tmp/real_layouts")
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        make_writable(out)
        shutil.rmtree(out)
    logging.disable(logging.INFO)
    rows = ["| replica | layout | images | organised | right class | junk skipped | refusals | raw untouched |",
            "|---|---|---|---|---|---|---|---|"]
    for name, builder in BUILDERS.items():
        rep = builder(out / "downloads")
        o = register_and_organise(rep, out / "env", name)
        n = len(rep.truth)
        extra = f" (+{rep.unlabelled} unlabelled, reported)" if rep.unlabelled else ""
        refused = ", ".join(o.refusals) + f" -> settled by {rep.choice}" if o.refusals else "none"
        rows.append(f"| {name} | {rep.layout} | {n}{extra} | {len(o.organised)} | {o.right / n:.0%} | "
                    f"{o.junk_skipped} | {refused} | {'yes' if o.source_untouched and o.raw_untouched else 'NO'} |")
    logging.disable(logging.NOTSET)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
