#!/usr/bin/python3
"""summarize.py: the table of results/transformer/README.md from the runs' traces."""
import sys

import h5py
import numpy as np

RUNS = [
    ("de-allreduce", "All-Reduce (exact average every step)"),
    ("de-ring", "ring, one gossip round per step"),
    ("de-ring-quarter", "ring, controlled to 1/4 of de-ring's max Xi"),
    ("de-exponential", "exponential graph, one round per step"),
    ("de-ring-moments", "ring, Adam moments gossiped too"),
]


def row(name, what):
    try:
        f = h5py.File(f"{name}.h5", "r")
    except OSError:
        return f"| {what} | `{name}` | not run | | | | | | |"
    e, s = f["epochs"], f["steps"]
    done = "" if f.attrs["completed"] else " (unfinished)"
    best = int(np.nanargmax(e["val_bleu"][()]))
    return ("| {} | `{}`{} | {:.2f} | {:.2f} | {:.2f} (epoch {}) | {:.3f} / {:.1f} | {:.3g} | {:.3g} | {:.2f} |"
            .format(what, name, done, e["val_bleu"][-1], e["test_bleu"][-1], e["test_bleu"][best],
                    best + 1, e["test_loss"][-1], e["test_ppl"][-1], np.nanmax(s["xi"][()]),
                    np.nanmean(s["xi"][()]), np.mean(s["rounds"][()])))


def main():
    print("| run | trace | val BLEU | test BLEU | test BLEU at best val | test loss / ppl | max Xi | mean Xi | rounds/step |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, what in RUNS:
        print(row(name, what))
    return 0


if __name__ == "__main__":
    sys.exit(main())
