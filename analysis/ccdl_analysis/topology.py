"""Topology tables and the consensus-averaging figure (paper Table 10 and Fig. 8).

Inputs (docs/analysis.md):

* spectral gaps: JSON lines, as printed by `ccdl topology --kinds ... --n ... --json`, one
  object per line: {"kind": str, "n": int, "degree": number, "spectral_gap": number, "p": number}
  (`p` optional). Blank lines and lines starting with '#' are skipped.
* consensus averaging: the HDF5 file of `ccdl consensus-bench`: one group per topology
  holding a 1-D float64 dataset `xi` (Xi after r = 0, 1, ..., R gossip rounds; r = 0 before
  any gossip) and optionally `theta` (same length); the kind is the group's attribute `kind`
  or else its name, n its attribute `n` or else the root's; `p` (optional) is the mixing
  rate. The same as JSON lines {"kind", "n", "xi": [...], "p"?} is accepted too.
"""

import csv
import io
import json
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .traces import TraceError, fmt, isolated, regular  # noqa: E402


def _json_lines(path, required):
    if path != "-":
        regular(path)  # a FIFO would block open()
    try:
        text = open(path, encoding="utf-8").read() if path != "-" else sys.stdin.read()
    except OSError as e:
        raise TraceError(path, f"cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise TraceError(path, "not a text file of JSON lines") from None
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            row = json.loads(line)
        except RecursionError:
            raise TraceError(path, f"line {i}: not JSON (nested too deeply)") from None
        except ValueError as e:
            raise TraceError(path, f"line {i}: not JSON ({e})") from None
        if not isinstance(row, dict):
            raise TraceError(path, f"line {i}: expected a JSON object")
        for key, kind in required.items():
            if key not in row:
                raise TraceError(path, f"line {i}: missing key {key!r}")
            if not isinstance(row[key], kind) or isinstance(row[key], bool):
                raise TraceError(path, f"line {i}: {key}: expected {kind.__name__ if isinstance(kind, type) else 'a number'}")
        rows.append(row)
    if not rows:
        raise TraceError(path, "no rows")
    return rows


NUMBER = (int, float)


def read_gaps(path):
    rows = _json_lines(path, {"kind": str, "n": int, "degree": NUMBER, "spectral_gap": NUMBER})
    seen = set()
    for r in rows:
        if (r["kind"], r["n"]) in seen:
            raise TraceError(path, f"{r['kind']} n={r['n']} given twice")
        seen.add((r["kind"], r["n"]))
    return rows


def gap_tables(rows):
    """(markdown, csv): Markdown has one row per topology, spectral gap and degree per n."""
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    ns = sorted({r["n"] for r in rows})
    at = {(r["kind"], r["n"]): r for r in rows}
    head = ["topology"] + [f"gap n={n}" for n in ns] + [f"p n={n}" for n in ns] + [f"degree n={n}" for n in ns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in kinds:
        cells = [k]
        for key, f in (("spectral_gap", "{:.4g}"), ("p", "{:.4g}"), ("degree", "{}")):
            for n in ns:
                r = at.get((k, n))
                v = r.get(key) if r else None
                cells.append("-" if v is None else f.format(fmt(v) if key == "degree" else v))
        lines.append("| " + " | ".join(cells) + " |")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "n", "degree", "spectral_gap", "p"])
    for r in rows:
        w.writerow([r["kind"], r["n"], fmt(r["degree"]), repr(float(r["spectral_gap"])),
                    "" if r.get("p") is None else repr(float(r["p"]))])
    return "\n".join(lines) + "\n", buf.getvalue()


def _scalar(v):
    v = np.asarray(v).reshape(-1)
    return v[0] if len(v) else None


def _text(v):
    v = _scalar(v) if not isinstance(v, (str, bytes)) else v
    return v.decode() if isinstance(v, bytes) else str(v)


def read_consensus(path):
    """[{"kind", "n", "xi", "theta"|None, "p"|None}] from the bench's HDF5 file or JSON lines."""
    regular(path)
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except Exception:  # noqa: BLE001
        is_hdf5 = False
    if not is_hdf5:
        rows = _json_lines(path, {"kind": str, "n": int, "xi": list})
        try:
            return [dict(r, xi=np.asarray(r["xi"], dtype=float), theta=None) for r in rows]
        except (TypeError, ValueError):
            raise TraceError(path, "xi: expected a list of numbers") from None
    return isolated(_read_consensus_h5, path)  # HDF5 may crash or hang on a damaged file


def _read_consensus_h5(path):
    try:
        return _consensus_curves(path)
    except TraceError:
        raise
    except Exception as e:  # noqa: BLE001 (a damaged file: HDF5 fails in many ways)
        raise TraceError(path, f"unreadable ({' '.join(str(e).split())[:120] or type(e).__name__})") from None


def _consensus_curves(path):
    curves = []
    with h5py.File(path, "r") as f:
        root_n = _scalar(f.attrs["n"]) if "n" in f.attrs else None

        def visit(name, obj):
            if not (isinstance(obj, h5py.Group) and isinstance(obj.get("xi"), h5py.Dataset)):
                return
            a = obj.attrs
            n = _scalar(a["n"]) if "n" in a else root_n
            if n is None:
                raise TraceError(path, f"/{name}: no attribute 'n' (on the group or the root)")
            p = float(_scalar(a["p"])) if "p" in a else None
            theta = np.asarray(obj["theta"][()], dtype=float) if isinstance(obj.get("theta"), h5py.Dataset) else None
            curves.append({"kind": _text(a["kind"]) if "kind" in a else name.split("/")[-1], "n": int(n),
                           "xi": np.asarray(obj["xi"][()], dtype=float), "theta": theta,
                           "p": p if p is not None and np.isfinite(p) else None})
        if isinstance(f.get("xi"), h5py.Dataset):
            raise TraceError(path, "/xi at the root: put each curve in its own group")
        f.visititems(visit)
    if not curves:
        raise TraceError(path, "no group holds an 'xi' dataset")
    for c in curves:
        if c["xi"].ndim != 1 or len(c["xi"]) < 2:
            raise TraceError(path, f"{c['kind']} n={c['n']}: xi must be 1-D with at least 2 rounds")
    return curves


def consensus_figure(curves, out, title, theta=False):
    ns = sorted({c["n"] for c in curves})
    fig, axs = plt.subplots(1, len(ns), figsize=(5.2 * len(ns), 4.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    kinds = list(dict.fromkeys(c["kind"] for c in curves))
    for ax, n in zip(axs[0], ns):
        for c in (c for c in curves if c["n"] == n):
            color = colors[kinds.index(c["kind"]) % len(colors)]
            r = np.arange(len(c["xi"]))
            xi = np.where(c["xi"] > 0, c["xi"], np.nan)
            ax.plot(r, xi, color=color, label=c["kind"])
            if theta and c.get("theta") is not None and len(c["theta"]) == len(r):
                ax.plot(r, np.where(c["theta"] > 0, c["theta"], np.nan), color=color, ls=":", lw=0.8)
            if c.get("p") is not None and 0 < c["p"] <= 1 and c["xi"][0] > 0:
                ax.plot(r, c["xi"][0] * (1 - c["p"]) ** (r / 2.0), color=color, ls="--", lw=0.8)
        ax.set(yscale="log", xlabel="gossip rounds", ylabel="consensus distance Ξ", title=f"n = {n}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    notes = (["dotted: Θ"] if theta and any(c.get("theta") is not None for c in curves) else []) + \
        (["dashed: Ξ₀ (1 − p)^(r/2)"] if any(c.get("p") for c in curves) else [])
    fig.suptitle(title + (f"  ({'; '.join(notes)})" if notes else ""))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
