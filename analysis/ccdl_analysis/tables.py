"""Tables over runs: mean +- std over seeds per group of spec keys (the paper's Table 2 style).

Every metric is one number per run; a group's cell is the mean and the sample standard
deviation (ddof = 1; none for a single run) of that number over the group's runs.
"""

import csv
import io
import math

import numpy as np

from .traces import fmt, short, sort_key


def _final(run, group, col):
    values = run.__dict__[group][col]
    return float(values[-1]) if len(values) else math.nan  # no rows yet (--allow-incomplete)


def _best(values):
    return float(np.max(values)) if len(values) else math.nan


def _nanmean(values):
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else math.nan


def _rounds(run):
    r = run.steps["rounds"].astype(float)
    return float(np.mean(np.maximum(r, 0.0))) if len(r) else math.nan


def _phase(col, k):
    def f(run):
        rows = run.phases
        idx = np.nonzero(rows["phase"] == k)[0]
        return float(rows[col][idx[0]]) if len(idx) else math.nan
    return f


# name -> (needed columns, function of a Run, format, description)
METRICS = {
    "test_acc": ({"epochs": ["test_acc"]}, lambda r: 100.0 * _final(r, "epochs", "test_acc"), "{:.2f}",
                 "top-1 test accuracy of the averaged model after the last epoch, %"),
    "best_acc": ({"epochs": ["test_acc"]}, lambda r: 100.0 * _best(r.epochs["test_acc"]), "{:.2f}",
                 "best top-1 test accuracy over epochs, %"),
    "test_loss": ({"epochs": ["test_loss"]}, lambda r: _final(r, "epochs", "test_loss"), "{:.4f}",
                  "test loss after the last epoch"),
    "train_loss": ({"epochs": ["train_loss"]}, lambda r: _final(r, "epochs", "train_loss"), "{:.4f}",
                   "mean training loss of the last epoch"),
    "rounds": ({"steps": ["rounds"]}, _rounds, "{:.2f}",
               "gossip rounds per step over the run (All-Reduce and local steps count 0)"),
    "xi_mean": ({"steps": ["xi"]}, lambda r: _nanmean(r.steps["xi"]), "{:.4g}",
                "mean consensus distance over all steps"),
    "wall_s": ({"epochs": ["wall_s"]}, lambda r: _final(r, "epochs", "wall_s"), "{:.1f}",
               "wall-clock seconds of the run"),
}
for _k in (1, 2, 3):
    METRICS[f"rounds_p{_k}"] = ({"phases": ["phase", "mean_rounds"]}, _phase("mean_rounds", _k), "{:.2f}",
                                f"mean gossip rounds per step in phase {_k} (/phases/mean_rounds)")
    METRICS[f"max_xi_p{_k}"] = ({"phases": ["phase", "max_xi"]}, _phase("max_xi", _k), "{:.4g}",
                                f"maximum consensus distance in phase {_k} (/phases/max_xi)")
DEFAULT_METRICS = ("test_acc", "train_loss", "rounds")


def needs(metrics):
    out = {}
    for m in metrics:
        for g, cols in METRICS[m][0].items():
            out.setdefault(g, [])
            out[g] += [c for c in cols if c not in out[g]]
    return out


def mean_std(values):
    v = np.asarray(values, dtype=float)
    mean = float(np.mean(v))
    std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    return mean, std


def group_rows(runs, keys, metrics):
    """[(key values, runs, {metric: (mean, std)})] sorted by the key values."""
    groups = {}
    for r in runs:
        groups.setdefault(tuple(fmt(r.value(k)) for k in keys), []).append(r)
    rows = []
    for members in groups.values():
        values = tuple(members[0].value(k) for k in keys)
        stats = {m: mean_std([METRICS[m][1](r) for r in members]) for m in metrics}
        rows.append((values, members, stats))
    rows.sort(key=lambda row: tuple(sort_key(v) for v in row[0]))
    return rows


def cell(metric, mean, std):
    f = METRICS[metric][2]
    if math.isnan(mean):
        return "-"
    return f.format(mean) + ("" if math.isnan(std) else " ± " + f.format(std))


def markdown(rows, keys, metrics):
    head = [short(k) for k in keys] + ["runs"] + list(metrics)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for values, members, stats in rows:
        cells = [fmt(v) for v in values] + [str(len(members))]
        cells += [cell(m, *stats[m]) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows, keys, metrics, seed_key="seed"):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(keys) + ["runs", "seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")])
    for values, members, stats in rows:
        seeds = " ".join(fmt(r.value(seed_key)) for r in members)
        out = [fmt(v) for v in values] + [len(members), seeds]
        for m in metrics:
            mean, std = stats[m]
            out += [repr(mean), "" if math.isnan(std) else repr(std)]
        w.writerow(out)
    return buf.getvalue()


def pivot(rows, keys, row_keys, col_keys, metric):
    """Markdown with row_keys down and col_keys across (the paper's layout) for one metric."""
    index = {k: i for i, k in enumerate(keys)}
    rvals, cvals, cells = {}, {}, {}
    for values, members, stats in rows:
        rv = tuple(values[index[k]] for k in row_keys)
        cv = tuple(values[index[k]] for k in col_keys)
        rk, ck = tuple(map(fmt, rv)), tuple(map(fmt, cv))  # lists are values too: key by text
        rvals.setdefault(rk, rv)
        cvals.setdefault(ck, cv)
        cells[(rk, ck)] = cell(metric, *stats[metric])
    order = lambda d: sorted(d, key=lambda k: tuple(sort_key(v) for v in d[k]))  # noqa: E731
    rset, cset = order(rvals), order(cvals)
    head = [" ".join(short(k) for k in row_keys)] + [
        " ".join(f"{short(k)}={v}" for k, v in zip(col_keys, ck)) for ck in cset]
    lines = [f"{metric}: " + METRICS[metric][3], "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rk in rset:
        lines.append("| " + " ".join(rk) + " | " + " | ".join(cells.get((rk, ck), "") for ck in cset) + " |")
    return "\n".join(lines) + "\n"
