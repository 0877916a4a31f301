"""`ccdl-analyze`: figures and tables from traces (docs/analysis.md)."""

import argparse
import os
import re
import sys
import warnings

from . import stats, tables, traces
from .traces import TraceError, key_path, short

USAGE = """\
ccdl-analyze plot INPUT... [--out DIR] [--overlay-by KEYS] [--label KEYS] [--no-per-run]
                  [--allow-incomplete]
ccdl-analyze table INPUT... [--by KEYS] [--metrics LIST] [--rows KEYS --cols KEYS]
                  [--diff-vs KEY=VALUE[,KEY=VALUE...]] [--out PREFIX] [--allow-incomplete]
ccdl-analyze cost INPUT... (--network NAME[,NAME...] | --netbench FILE | --latency S --bandwidth B/S)...
                  [--diff-vs KEY=VALUE[,...]] [--out PREFIX] [--allow-incomplete]
ccdl-analyze gap-table TOPOLOGY.jsonl|- [--out PREFIX]
ccdl-analyze consensus-plot BENCH.h5|BENCH.jsonl... [--out FILE.png] [--title T] [--theta]"""

DESCRIPTION = """\
INPUT is a trace (.h5), a sweep directory (its manifest.json lists the traces; see
ccdl-sweep) or a directory of traces. KEYS is a comma-separated list of spec key paths or
short names (n, factor, dec_phase, mode, topology, H, seed, ...).
Exit codes: 0 ok, 2 bad input (a bad trace is named on one line)."""


def keys_arg(text):
    return [key_path(k.strip()) for k in text.split(",") if k.strip()] if text else []


def safe(text):
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", text).strip("_") or "all"


def write(path, text):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def cmd_plot(a):
    from . import figures

    runs = traces.load_all(a.inputs, figures.NEED, a.allow_incomplete)
    os.makedirs(a.out, exist_ok=True)
    written = []
    if not a.no_per_run:
        for r in runs:
            p = os.path.join(a.out, f"{safe(r.name)}.png")
            figures.run_figure(r, p)
            written.append(p)
    if len(runs) > 1:
        by = keys_arg(a.overlay_by)
        label_keys = keys_arg(a.label)
        if not label_keys and len({r.name for r in runs}) < len(runs):  # names do not tell runs apart
            label_keys = [k for k in traces.varying_keys(runs) if k not in by]
        # a run without a value for a key (e.g. the All-Reduce baseline has no dec_phase)
        # joins every group that agrees on its other keys, as the baseline to compare with
        groups = {}
        for r in runs:
            if all(r.value(k) is not None for k in by):
                groups.setdefault(tuple(traces.fmt(r.value(k)) for k in by), [])
        for r in runs:
            mine = tuple(traces.fmt(r.value(k)) if r.value(k) is not None else None for k in by)
            homes = [g for g in groups if all(m is None or m == v for m, v in zip(mine, g))]
            for g in homes or [tuple(v or "-" for v in mine)]:
                groups.setdefault(g, []).append(r)
        for gk, members in sorted(groups.items()):
            title = ", ".join(f"{short(k)} = {v}" for k, v in zip(by, gk)) or "all runs"
            name = "overlay" + ("-" + safe("-".join(f"{short(k)}{v}" for k, v in zip(by, gk))) if by else "")
            p = os.path.join(a.out, name + ".png")
            figures.overlay_figure(members, [r.label(label_keys) for r in members], p, title)
            written.append(p)
    for p in written:
        print(p)
    return 0


def cmd_table(a):
    metrics = [m.strip() for m in a.metrics.split(",")] if a.metrics else list(tables.DEFAULT_METRICS)
    for m in metrics:
        if m not in tables.METRICS:
            raise TraceError("--metrics", f"unknown metric {m!r} (one of {', '.join(tables.METRICS)})")
    runs = traces.load_all(a.inputs, tables.needs(metrics), a.allow_incomplete)
    rows_k, cols_k = keys_arg(a.rows), keys_arg(a.cols)
    if bool(rows_k) != bool(cols_k):
        raise TraceError("--rows/--cols", "give both")
    keys = rows_k + cols_k if rows_k else keys_arg(a.by)
    if not a.by and not rows_k:
        keys = [k for k in traces.varying_keys(runs) if k != "seed"]
    for k in keys:
        if all(r.value(k) is None for r in runs):
            raise TraceError(k, "no trace's spec has this key")
    merged = [k for k in traces.varying_keys(runs) if k != "seed" and k not in keys]
    if merged:
        print(f"ccdl-analyze: note: runs differing in {', '.join(merged)} are averaged together",
              file=sys.stderr)
    base, paired = None, None
    if a.diff_vs is not None:
        selection = stats.parse_selection(a.diff_vs)
        baselines, base = stats.pair(runs, selection)
        paired = stats.selection_text(selection)
        rows = tables.diff_rows(runs, keys, metrics, base)
        same = ", ".join(short(k) for k in stats.pair_keys(baselines, selection))
        md = (f"paired differences run - baseline ({paired}, same {same}): mean ± std over seeds, "
              f"ci95 the 95% CI half-width (Student t); the {len(baselines)} baseline runs left out\n\n"
              + tables.markdown(rows, keys, metrics, paired=True))
    else:
        rows = tables.group_rows(runs, keys, metrics)
        md = tables.markdown(rows, keys, metrics)
    if rows_k:
        md = tables.pivot(rows, keys, rows_k, cols_k, metrics[0], paired) + "\n" + md
    print(md, end="")
    if a.out:
        write(a.out + ".md", md)
        write(a.out + ".csv", tables.csv_text(rows, keys, metrics, base=base))
        print(f"wrote {a.out}.md and {a.out}.csv", file=sys.stderr)
    return 0


def cmd_cost(a):
    from . import cost

    profs = cost.profiles(a.network, a.netbench, a.latency, a.bandwidth)
    runs = traces.load_all(a.inputs, cost.NEED, a.allow_incomplete)
    selection = stats.parse_selection(a.diff_vs or "mode=allreduce")
    md, csv = cost.tables(runs, profs, selection, required=a.diff_vs is not None)
    print(md, end="")
    if a.out:
        write(a.out + ".md", md)
        write(a.out + ".csv", csv)
        print(f"wrote {a.out}.md and {a.out}.csv", file=sys.stderr)
    return 0


def cmd_gap_table(a):
    from . import topology

    md, csv = topology.gap_tables(topology.read_gaps(a.input))
    print(md, end="")
    if a.out:
        write(a.out + ".md", md)
        write(a.out + ".csv", csv)
    return 0


def cmd_consensus_plot(a):
    from . import topology

    curves = [c for path in a.inputs for c in topology.read_consensus(path)]
    topology.consensus_figure(curves, a.out, a.title, a.theta)
    print(a.out)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="ccdl-analyze", usage=USAGE, description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    pl = sub.add_parser("plot", help="PNG per run (Xi/Theta/target, rounds, loss, accuracy) and overlays")
    pl.add_argument("inputs", nargs="+")
    pl.add_argument("--out", default="figures", help="output directory (default: figures)")
    pl.add_argument("--overlay-by", help="one overlay per value of these keys (default: one of all runs)")
    pl.add_argument("--label", help="keys shown in legends (default: run names, or the varying keys "
                                    "when names repeat)")
    pl.add_argument("--no-per-run", action="store_true", help="overlays only")
    pl.add_argument("--allow-incomplete", action="store_true", help="use traces with completed = 0")
    tb = sub.add_parser("table", help="mean ± std and 95%% CI over seeds per group, or paired differences "
                                        "against a baseline (Markdown to stdout, CSV)")
    tb.add_argument("inputs", nargs="+")
    tb.add_argument("--by", help="group keys (default: every varying key but seed)")
    tb.add_argument("--metrics", help=f"comma-separated, default {','.join(tables.DEFAULT_METRICS)}; "
                                      f"any of {', '.join(tables.METRICS)}")
    tb.add_argument("--rows", help="pivot: keys down (with --cols: keys across; first metric)")
    tb.add_argument("--cols")
    tb.add_argument("--diff-vs", metavar="KEY=VALUE[,...]",
                    help="paired differences run - baseline: the baseline of a run is the run with these "
                         "values, the same seed and the same values of the keys the baselines vary in (n, ...); "
                         "mean ± std, 95%% CI and pairs per group (baselines left out)")
    tb.add_argument("--out", help="also write PREFIX.md and PREFIX.csv")
    tb.add_argument("--allow-incomplete", action="store_true")
    co = sub.add_parser("cost", help="modeled wall time per run and phase on a network (latency, bandwidth) "
                                     "from the trace's bytes and messages, and against the All-Reduce run")
    co.add_argument("inputs", nargs="+")
    co.add_argument("--network", action="append", metavar="NAME[,NAME...]",
                    help="named networks (assumed round figures): ethernet-1g (50 us, 125e6 B/s), "
                         "ethernet-10g (20 us, 1.25e9 B/s), infiniband-hdr (1.5 us, 25e9 B/s); one table each")
    co.add_argument("--netbench", action="append", metavar="FILE",
                    help="a network measured by `ccdl netbench --json` (keys latency_s, bandwidth_Bps)")
    co.add_argument("--latency", type=float, metavar="SECONDS", help="seconds per message (with --bandwidth)")
    co.add_argument("--bandwidth", type=float, metavar="BYTES_PER_S", help="bytes per second (with --latency)")
    co.add_argument("--diff-vs", metavar="KEY=VALUE[,...]",
                    help="baseline of the differences (default mode=allreduce: the All-Reduce run of the same "
                         "seed and n; runs without one are an error only when this is given)")
    co.add_argument("--out", help="also write PREFIX.md and PREFIX.csv")
    co.add_argument("--allow-incomplete", action="store_true")
    gt = sub.add_parser("gap-table", help="Table 10: spectral gap and degree per topology and n")
    gt.add_argument("input", help="JSON lines from `ccdl topology --json` (- for stdin)")
    gt.add_argument("--out", help="also write PREFIX.md and PREFIX.csv")
    cp = sub.add_parser("consensus-plot", help="Xi per gossip round per topology (paper Fig. 8)")
    cp.add_argument("inputs", nargs="+", help="HDF5 files from `ccdl consensus-bench` (or JSON lines)")
    cp.add_argument("--out", default="consensus.png")
    cp.add_argument("--title", default="consensus averaging")
    cp.add_argument("--theta", action="store_true", help="also draw the estimate Theta (dotted)")
    a = p.parse_args(argv)
    handlers = {"plot": cmd_plot, "table": cmd_table, "cost": cmd_cost, "gap-table": cmd_gap_table,
                "consensus-plot": cmd_consensus_plot}
    if a.command not in handlers:
        p.print_usage(sys.stderr)
        return 2
    for stream in (sys.stdout, sys.stderr):
        try:  # names and messages quote file contents: never fail to print them
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    # numpy and matplotlib warn on stderr about odd data (empty slices, no positive values on
    # a log axis): the tables and figures show such data as blanks, without the warnings
    warnings.simplefilter("ignore")
    try:
        return handlers[a.command](a)
    except TraceError as e:
        print(f"ccdl-analyze: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # writing an output (a directory where a file goes, a full disk)
        where = f"{e.filename}: " if e.filename else ""
        print(" ".join(f"ccdl-analyze: {where}{e.strerror or e}".split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 (the last resort: one line, no traceback)
        text = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        print(f"ccdl-analyze: internal error: {text}", file=sys.stderr)
        return 1
