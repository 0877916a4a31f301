"""Statistics over seeds: mean, sample std, 95% confidence intervals (Student t), and the
pairing of runs with a baseline run for paired differences (ccdl-analyze table --diff-vs,
ccdl-analyze cost; docs/analysis.md).
"""

import collections
import json
import math
import re

import numpy as np

from .traces import IDENTITY_EXCLUDED, TraceError, fmt, key_path, short

# t quantiles t_{0.975, df} for df = 1..30, to double precision: numpy has no t distribution
# and scipy is no dependency (nor exact enough: scipy 1.10's t.ppf is off by up to 1e-9
# relative at df = 5-7). Computed once with mpmath at 40 digits, solving
# 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2 = 0.975 (check: df = 1 is tan(0.475 pi), df = 2 is
# 0.95 sqrt(2 / (1 - 0.95^2))). Beyond 30 degrees of freedom, t_quantile uses the
# Cornish-Fisher expansion of t in the normal quantile z = 1.959963984540054 to order 1/df^4
# (relative error below 1.3e-8 for df >= 31), rather than z itself.
T975 = (12.706204736174705, 4.302652729749464, 3.1824463052837095, 2.7764451051977943,
        2.5705818356363155, 2.44691185114497, 2.3646242515927853, 2.3060041352041667,
        2.2621571627982053, 2.228138851986275, 2.2009851600916397, 2.178812829667229,
        2.1603686564627926, 2.144786687917804, 2.1314495455597755, 2.1199052992212546,
        2.109815577833317, 2.1009220402410387, 2.0930240544083096, 2.085963447265865,
        2.0796138447276804, 2.0738730679040263, 2.0686576104190486, 2.063898561628026,
        2.0595385527532977, 2.055529438642873, 2.0518305164802855, 2.048407141795245,
        2.0452296421327043, 2.042272456301238)
Z975 = 1.959963984540054


def t_quantile(df):
    """The 0.975 quantile of Student's t with df degrees of freedom (NaN for df < 1)."""
    if df < 1:
        return math.nan
    if df <= len(T975):
        return T975[df - 1]
    z, v = Z975, float(df)
    return (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / (92160 * v ** 4))


Summary = collections.namedtuple("Summary", "mean std ci95 n")
Summary.__doc__ = """mean, sample std (ddof = 1), 95% CI half-width t_{0.975, n-1} std / sqrt(n)
and the count n of values; std and ci95 are NaN for fewer than two values, mean for none."""


def summary(values, drop_nan=False):
    """Summary of values. Unpaired tables keep NaN (a run without the metric blanks the cell);
    paired differences drop them (drop_nan: a pair that has no difference is not counted)."""
    v = np.asarray(values, dtype=float)
    if drop_nan:
        v = v[~np.isnan(v)]
    k = len(v)
    if k == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean = float(np.mean(v))
    if k < 2:
        return Summary(mean, math.nan, math.nan, k)
    std = float(np.std(v, ddof=1))
    return Summary(mean, std, t_quantile(k - 1) * std / math.sqrt(k), k)


# ---------------------------------------------------------------- baselines for pairing


def parse_selection(text):
    """'mode=allreduce,n=16' -> [(key path, value text)]. A value may hold commas (a list such
    as phases=[gossip,allreduce]): a comma splits only before the next KEY=."""
    if not text or not text.strip():
        raise TraceError("--diff-vs", "expected KEY=VALUE[,KEY=VALUE...]")
    out = []
    for part in re.split(r",(?=[^,=\[\]]+=)", text):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise TraceError("--diff-vs", f"{part!r}: expected KEY=VALUE")
        out.append((key_path(key.strip()), value.strip()))
    return out


def matches(value, text):
    """A run's key value against a value given on the command line, as the tables print it
    ('-' for none); numbers compare as numbers (0.50 = 0.5)."""
    if fmt(value) == text:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return False


def selection_text(selection):
    return ",".join(f"{short(k)}={v}" for k, v in selection)


ALWAYS = ("seed", "workers")


def pair_keys(baselines, selection):
    """The keys a run and its baseline agree on: seed and n (always: a baseline of another
    seed or size is no pair), and every other spec key the baseline runs vary in, but the
    selection's own keys and the ones that never tell runs apart (name, trace.path, ...)."""
    chosen = {k for k, _ in selection}
    keys = sorted({k for r in baselines for k in r.flat} - chosen - set(IDENTITY_EXCLUDED) - set(ALWAYS))
    vary = [k for k in keys if len({_text(r.value(k)) for r in baselines}) > 1]
    return [k for k in ALWAYS if k not in chosen] + vary


def _text(value):
    return json.dumps(value, sort_keys=True)


def pair(runs, selection, required=True):
    """(baselines, {id(run): baseline run}) for every run that is not a baseline itself.
    A baseline is a run matching every KEY=VALUE of the selection; a run's baseline is the one
    with the same values of pair_keys. TraceError naming the run when it has none or several
    (and, if required, when no run is a baseline)."""
    baselines = [r for r in runs if all(matches(r.value(k), v) for k, v in selection)]
    if not baselines:
        if required:
            raise TraceError("--diff-vs", f"no run has {selection_text(selection)} (no baseline)")
        return [], {}
    keys = pair_keys(baselines, selection)
    index = {}
    for b in baselines:
        index.setdefault(tuple(_text(b.value(k)) for k in keys), []).append(b)
    base_ids = {id(b) for b in baselines}
    out = {}
    for r in runs:
        if id(r) in base_ids:
            continue
        want = tuple(_text(r.value(k)) for k in keys)
        found = index.get(want, [])
        where = ", ".join(f"{short(k)}={fmt(r.value(k))}" for k in keys)
        if not found:
            raise TraceError(r.path, f"run {r.name}: no baseline run with {selection_text(selection)}, {where}")
        if len(found) > 1:
            raise TraceError(r.path, f"run {r.name}: {len(found)} baseline runs with "
                                     f"{selection_text(selection)}, {where} ({', '.join(b.name for b in found)}): "
                                     f"give --diff-vs the key that tells them apart")
        out[id(r)] = found[0]
    return baselines, out
