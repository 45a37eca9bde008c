"""Learnability table: is each modality's synthetic task learnable but not trivial?

Trains the small CNN of ``envs.synth.learnability`` centrally on CPU (about a minute per modality
at the default setting) and prints modality, difficulty, image count, seconds and balanced accuracy.
The target band is 0.75-0.9: well above chance, with room for FL algorithms to differ.

Usage:
    python benchmarks/learnability.py [--modality M ...] [--difficulty D] [--n-per-class N] [--epochs E]
"""

from __future__ import annotations

import argparse

from envs.concepts import CONCEPTS, MODALITIES
from envs.synth import DEFAULT_DIFFICULTY
from envs.synth.learnability import learnability

#: Images per class and epochs for about one minute per modality on one CPU core.
BUDGET: dict[str, tuple[int, int]] = {m: (max(200, 1500 // len(CONCEPTS[m])), 8) for m in MODALITIES}


def main() -> None:
    """Print the learnability table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modality", action="append", choices=MODALITIES)
    ap.add_argument("--difficulty", type=float, default=None)
    ap.add_argument("--n-per-class", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print(f"{'modality':<16}{'difficulty':>11}{'n':>7}{'seconds':>9}{'bal.acc':>9}{'acc':>7}")
    for m in args.modality or MODALITIES:
        n, epochs = BUDGET[m]
        d = DEFAULT_DIFFICULTY[m] if args.difficulty is None else args.difficulty
        r = learnability(m, n_per_class=args.n_per_class or n, epochs=args.epochs or epochs, seed=args.seed,
                         difficulty=d, threads=args.threads)
        print(f"{m:<16}{d:>11.2f}{r.n_train + r.n_test:>7}{r.seconds:>9.1f}{r.balanced_accuracy:>9.3f}"
              f"{r.accuracy:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
