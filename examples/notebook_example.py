#!/usr/bin/python3
"""The notebook API's worked example (docs/analysis.md, Notebook API) as a script: one PNG of
(a) the consensus distance Xi per step, one curve per run, and (b) the final test accuracy
(mean and std over seeds) against the consensus-target factor, one curve per (n, dec_phase),
with the runs that have no factor (All-Reduce) as dashed lines: paper Table 2 as a figure.

    examples/notebook_example.py runs/t2 --out t2.png     # a sweep directory, or traces
    examples/notebook_example.py runs/x --by topology     # other keys (short names or paths)

Needs h5py, numpy, matplotlib and pandas: /usr/bin/python3 has them.
"""

import argparse
import os
import sys

# in the source tree ccdl_analysis is analysis/ (installed, it is on sys.path already)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "analysis"))
sys.dont_write_bytecode = True  # the source tree stays clean

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # no display: the figure goes to a file
import matplotlib.pyplot as plt  # noqa: E402

import ccdl_analysis  # noqa: E402


def text(value):
    if value is None or value != value:  # None, NaN: no value
        return "-"
    if isinstance(value, float) and value.is_integer():  # an integer key with gaps is float
        return str(int(value))
    return str(value)


def groups(frame, keys, **kw):
    """(label, rows) per group of keys; one key is grouped by alone (pandas warns on a list
    of one, whose group values change from a scalar to a tuple in a later version)."""
    for values, g in frame.groupby(keys[0] if len(keys) == 1 else keys, **kw):
        values = values if len(keys) > 1 else (values,)
        yield ", ".join(f"{k} = {text(v)}" for k, v in zip(keys, values)), g


def figure(f, x, by, out):
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))

    # (a) one curve per run (by trace: run names repeat across sweeps); Xi = 0 (All-Reduce
    # steps) has no place on a log axis
    for _, s in f.steps.groupby("trace", sort=False):
        a.plot(s["step"], s["xi"].where(s["xi"] > 0), lw=0.8, label=s["run"].iat[0])
    a.set(yscale="log", xlabel="step", ylabel="consensus distance Ξ", title="(a) Ξ per step")
    if len(f.runs) <= 12:  # a legend of a large sweep would hide the curves
        a.legend(fontsize="x-small", ncol=2)

    # (b) the last /epochs row of each run is its final accuracy; a point is a group of
    # runs equal in the keys by and x, i.e. the seeds of one grid point
    final = f.epochs.groupby("trace", sort=False).tail(1)
    final = final.assign(acc=100 * final["test_acc"])
    # (dropna=False: runs without a value of a key in by make curves of their own, "-")
    for name, g in groups(final[final[x].notna()], by, dropna=False):
        stats = g.groupby(x)["acc"].agg(["mean", "std"])  # std NaN for a single seed
        b.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                   label=name)
    # runs without a value of x (x cannot affect them: the factor of All-Reduce) are
    # baselines, one per mode and value of the keys in by that they have (n, not dec_phase)
    base = final[final[x].isna()]
    keys = ["mode"] + [k for k in by if base[k].notna().any()]
    for name, g in groups(base, keys):
        b.axhline(g["acc"].mean(), ls="--", color="0.4", lw=1, label=name)
    b.set(xlabel=x, ylabel="final test accuracy (%)", title=f"(b) mean ± std over seeds by {', '.join(by)}")
    b.legend(fontsize="small")

    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="traces, sweep directories or directories of traces")
    p.add_argument("--out", default="notebook_example.png", help="the PNG to write")
    p.add_argument("--x", default="factor", help="key along the x axis of (b) (default: factor)")
    p.add_argument("--by", default="n,dec_phase", help="one curve per value of these keys, comma-separated "
                                                      "(default: n,dec_phase)")
    a = p.parse_args()
    try:
        f = ccdl_analysis.load(a.inputs)
    except ccdl_analysis.TraceError as e:
        sys.exit(f"notebook_example: {e}")
    by = [k for k in a.by.split(",") if k]
    for key in [a.x] + by:
        if key not in f.runs.columns:
            sys.exit(f"notebook_example: {key}: no run's spec has this key")
    figure(f, a.x, by, a.out)
    print(a.out)


if __name__ == "__main__":
    main()
