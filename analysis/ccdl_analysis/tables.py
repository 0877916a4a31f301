"""Tables over runs: mean +- std over seeds per group of spec keys (the paper's Table 2 style).

Every metric is one number per run; a group's cell is the mean and the sample standard
deviation (ddof = 1; none for a single run) of that number over the group's runs, next to
the half-width of its 95% confidence interval (Student t, stats.summary). With a baseline
(--diff-vs, diff_rows) the cells are the same statistics of the paired differences
run - baseline.
"""

import csv
import io
import math

import numpy as np

from .stats import summary
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
    "gb_sent": ({"steps": ["bytes_mean"]}, lambda r: float(np.sum(r.steps["bytes_mean"])) / 1e9, "{:.3f}",
                "GB (1e9 bytes) each worker sent over the run, mean over workers (/steps/bytes_mean)"),
    "messages": ({"steps": ["messages_mean"]}, lambda r: float(np.sum(r.steps["messages_mean"])), "{:.0f}",
                 "messages each worker sent over the run, mean over workers (/steps/messages_mean)"),
}
for _k in (1, 2, 3):
    METRICS[f"rounds_p{_k}"] = ({"phases": ["phase", "mean_rounds"]}, _phase("mean_rounds", _k), "{:.2f}",
                                f"mean gossip rounds per step in phase {_k} (/phases/mean_rounds)")
    METRICS[f"max_xi_p{_k}"] = ({"phases": ["phase", "max_xi"]}, _phase("max_xi", _k), "{:.4g}",
                                f"maximum consensus distance in phase {_k} (/phases/max_xi)")
    METRICS[f"gb_sent_p{_k}"] = ({"phases": ["phase", "bytes_mean"]},
                                 lambda r, f=_phase("bytes_mean", _k): f(r) / 1e9, "{:.3f}",
                                 f"GB each worker sent in phase {_k} (/phases/bytes_mean)")
DEFAULT_METRICS = ("test_acc", "train_loss", "rounds")


def needs(metrics):
    out = {}
    for m in metrics:
        for g, cols in METRICS[m][0].items():
            out.setdefault(g, [])
            out[g] += [c for c in cols if c not in out[g]]
    return out


def metric_values(runs, metric):
    return [METRICS[metric][1](r) for r in runs]


def _grouped(runs, keys):
    groups = {}
    for r in runs:
        groups.setdefault(tuple(fmt(r.value(k)) for k in keys), []).append(r)
    return [(tuple(members[0].value(k) for k in keys), members) for members in groups.values()]


def _sorted(rows):
    return sorted(rows, key=lambda row: tuple(sort_key(v) for v in row[0]))


def group_rows(runs, keys, metrics):
    """[(key values, runs, {metric: stats.Summary})] sorted by the key values."""
    return _sorted([(values, members, {m: summary(metric_values(members, m)) for m in metrics})
                    for values, members in _grouped(runs, keys)])


def diff_rows(runs, keys, metrics, base):
    """Paired differences: [(key values, runs, {metric: Summary of run - baseline})] over the
    runs that have a baseline (base: {id(run): baseline run}, stats.pair); the baselines
    themselves are left out. A pair whose difference is NaN (a metric one of them lacks,
    --allow-incomplete) is not counted for that metric."""
    rows = []
    for values, members in _grouped([r for r in runs if id(r) in base], keys):
        stats = {}
        for m in metrics:
            mine = np.asarray(metric_values(members, m), dtype=float)
            theirs = np.asarray(metric_values([base[id(r)] for r in members], m), dtype=float)
            stats[m] = summary(mine - theirs, drop_nan=True)
        rows.append((values, members, stats))
    return _sorted(rows)


def cell(metric, s):
    f = METRICS[metric][2]
    if math.isnan(s.mean):
        return "-"
    return f.format(s.mean) + ("" if math.isnan(s.std) else " ± " + f.format(s.std))


def ci_cell(metric, s):
    return "-" if math.isnan(s.ci95) else "±" + METRICS[metric][2].format(s.ci95)


def markdown(rows, keys, metrics, paired=False):
    """One row per group: its keys, runs (pairs), then per metric mean ± std and the 95% CI
    half-width (`<metric> ci95`); paired: of the differences run - baseline (`Δ<metric>`)."""
    head = [short(k) for k in keys] + ["pairs" if paired else "runs"]
    for m in metrics:
        head += [f"Δ{m}" if paired else m, f"Δ{m} ci95" if paired else f"{m} ci95"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for values, members, stats in rows:
        cells = [fmt(v) for v in values] + [str(len(members))]
        for m in metrics:
            cells += [cell(m, stats[m]), ci_cell(m, stats[m])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows, keys, metrics, seed_key="seed", base=None):
    """CSV at full precision: the group keys by path, runs, seeds, and per metric _mean, _std,
    _ci95 (empty where undefined). With base (paired): runs are pairs, baselines lists the
    baseline runs by name in the order of seeds, and per metric _diff_mean, _diff_std,
    _diff_ci95 and _pairs (the pairs counted for that metric)."""
    def num(v):
        return "" if math.isnan(v) else repr(v)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if base is None:
        head = list(keys) + ["runs", "seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std", "ci95")]
    else:
        head = list(keys) + ["pairs", "seeds", "baselines"] + [
            f"{m}_{s}" for m in metrics for s in ("diff_mean", "diff_std", "diff_ci95", "pairs")]
    w.writerow(head)
    for values, members, stats in rows:
        seeds = " ".join(fmt(r.value(seed_key)) for r in members)
        out = [fmt(v) for v in values] + [len(members), seeds]
        if base is not None:
            out.append(" ".join(base[id(r)].name for r in members))
        for m in metrics:
            s = stats[m]
            out += [repr(s.mean), num(s.std), num(s.ci95)] + ([] if base is None else [s.n])
        w.writerow(out)
    return buf.getvalue()


def pivot(rows, keys, row_keys, col_keys, metric, paired=None):
    """Markdown with row_keys down and col_keys across (the paper's layout) for one metric
    (paired: the text of the baseline selection; the cells are differences run - baseline)."""
    index = {k: i for i, k in enumerate(keys)}
    rvals, cvals, cells = {}, {}, {}
    for values, members, stats in rows:
        rv = tuple(values[index[k]] for k in row_keys)
        cv = tuple(values[index[k]] for k in col_keys)
        rk, ck = tuple(map(fmt, rv)), tuple(map(fmt, cv))  # lists are values too: key by text
        rvals.setdefault(rk, rv)
        cvals.setdefault(ck, cv)
        cells[(rk, ck)] = cell(metric, stats[metric])
    order = lambda d: sorted(d, key=lambda k: tuple(sort_key(v) for v in d[k]))  # noqa: E731
    rset, cset = order(rvals), order(cvals)
    head = [" ".join(short(k) for k in row_keys)] + [
        " ".join(f"{short(k)}={v}" for k, v in zip(col_keys, ck)) for ck in cset]
    title = f"{metric}: " + METRICS[metric][3]
    if paired:
        title = f"Δ{metric}: run - baseline ({paired}) of the " + METRICS[metric][3]
    lines = [title, "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rk in rset:
        lines.append("| " + " ".join(rk) + " | " + " | ".join(cells.get((rk, ck), "") for ck in cset) + " |")
    return "\n".join(lines) + "\n"
