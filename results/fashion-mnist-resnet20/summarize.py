"""summarize.py: the finding-by-finding tables of README.md from table.csv, diff.csv and
cost.csv (ccdl-analyze output beside this script). Markdown to stdout.

"Full control" (every phase controlled to 1/4 of its uncontrolled max Xi) is not a run of
the grid: its cost is composed from the dec-phase-k runs at factor 1/4, phase k of each
(their phase-k rows of cost.csv), per seed, and labelled as composed."""
import os

import numpy as np
import pandas as pd

here = os.path.dirname(os.path.abspath(__file__))
table = pd.read_csv(os.path.join(here, "table.csv"))
diff = pd.read_csv(os.path.join(here, "diff.csv"))
cost = pd.read_csv(os.path.join(here, "cost.csv"))
MODE, PHASES, DEC, METRIC, FACTOR = ("communication.mode", "communication.phases",
                                     "communication.dec_phase", "communication.control.metric",
                                     "communication.control.factor")


def frac(f):
    f = float(f)
    return "1" if f == 1 else f"1/{round(1 / f)}" if f < 1 and abs(1 / f - round(1 / f)) < 1e-9 else f"{f:g}"


def label(r):
    if r[MODE] == "allreduce" and r[PHASES] in ("-", "[]") or r[PHASES] == "[allreduce,allreduce,allreduce]":
        return "All-Reduce"
    if r[PHASES] == "[controlled,gossip,gossip]":
        if r[METRIC] == "estimate":
            return f"guideline, Theta (c {float(r[FACTOR]):g})"
        return "ring D-SGD" if float(r[FACTOR]) == 1 else f"guideline, Xi ({frac(r[FACTOR])})"
    return f"dec-phase-{int(r[DEC])}, {frac(r[FACTOR])}"


def pm(mean, sd, ci=None, digits=2):
    s = f"{mean:.{digits}f} ± {sd:.{digits}f}" if pd.notna(sd) else f"{mean:.{digits}f}"
    return s + (f" (CI ±{ci:.{digits}f})" if ci is not None and pd.notna(ci) else "")


for df in (table, diff):
    df["config"] = [label(r) for _, r in df.iterrows()]
    df["n"] = df["workers"]
out = []

out.append("### Every configuration (mean ± std over 3 seeds, 95% CI half-width in brackets)\n")
out.append("| n | configuration | test acc % | train loss | max Xi p1 / p2 / p3 | rounds/step p1 / p2 / p3 | GB/worker |")
out.append("|---|---|---|---|---|---|---|")
for _, r in table.iterrows():
    xi = " / ".join(f"{r[f'max_xi_p{k}_mean']:.2f}" for k in (1, 2, 3))
    rd = " / ".join(f"{r[f'rounds_p{k}_mean']:.1f}" for k in (1, 2, 3))
    out.append(f"| {r['n']} | {r['config']} | {pm(r['test_acc_mean'], r['test_acc_std'], r['test_acc_ci95'])} | "
               f"{pm(r['train_loss_mean'], r['train_loss_std'], digits=3)} | {xi} | {rd} | {r['gb_sent_mean']:.3f} |")

out.append("\n### Paired differences against All-Reduce (same seed and n): run − All-Reduce\n")
out.append("| n | configuration | Δ test acc (points) | 95% CI | Δ train loss | 95% CI | Δ GB/worker |")
out.append("|---|---|---|---|---|---|---|")
for _, r in diff.iterrows():
    lo, hi = r["test_acc_diff_mean"] - r["test_acc_diff_ci95"], r["test_acc_diff_mean"] + r["test_acc_diff_ci95"]
    out.append(f"| {r['n']} | {r['config']} | {r['test_acc_diff_mean']:+.2f} ± {r['test_acc_diff_std']:.2f} | "
               f"[{lo:+.2f}, {hi:+.2f}] | {r['train_loss_diff_mean']:+.3f} | ±{r['train_loss_diff_ci95']:.3f} | "
               f"{r['gb_sent_diff_mean']:+.3f} |")

# communication: the guideline against All-Reduce and against (composed) full control
cost["seed"] = cost["run"].str.extract(r"-s(\d+)$")[0].astype(int)
nets = list(dict.fromkeys(cost["profile"]))


def per_seed(run_prefix, phase="all"):
    rows = cost[cost["run"].str.startswith(run_prefix) & (cost["phase"].astype(str) == phase)]
    return rows.groupby(["profile", "seed"])[["total_s", "comm_s", "gb_per_worker", "messages_per_worker", "steps"]].sum()


schemes = {"All-Reduce": per_seed("ar-n32-"), "ring D-SGD": per_seed("gossip-n32-exact-const-f1-"),
           "guideline, Xi (1/4)": per_seed("gossip-n32-exact-const-f0.25-"),
           "guideline, Theta (c 0.3)": per_seed("gossip-n32-est-adapt-f0.3-")}
full = sum(per_seed(f"ctrl-n32-dec{k}-exact-const-f0.25-", str(k)) for k in (1, 2, 3))
schemes["full control 1/4 (composed)"] = full
out.append("\n### Communication of the guideline (n = 32, mean over seeds)\n")
out.append("Per worker over the run; modeled time = measured compute + alpha-beta communication "
           "(ccdl-analyze cost). Full control is composed from phase k of the dec-phase-k runs at 1/4.\n")
# gossip rounds per step over the run: the phases' mean rounds (table.csv) weighted by their
# step counts (cost.csv); full control takes phase k from the dec-phase-k run at 1/4
steps = {k: cost[(cost["run"] == "ar-n32-s1") & (cost["phase"].astype(str) == str(k))]["steps"].iloc[0] for k in (1, 2, 3)}
n32 = table[table["n"] == 32].set_index("config")


def run_rounds(configs):
    return sum(steps[k] * n32.loc[configs[k - 1], f"rounds_p{k}_mean"] for k in (1, 2, 3)) / sum(steps.values())


rounds = {name: run_rounds([name] * 3) for name in schemes if name in n32.index}
if all(f"dec-phase-{k}, 1/4" in n32.index for k in (1, 2, 3)):
    rounds["full control 1/4 (composed)"] = run_rounds([f"dec-phase-{k}, 1/4" for k in (1, 2, 3)])
total_steps = sum(steps.values())
head = "| scheme | gossip rounds/step | MB/worker/step | GB/worker | messages/worker | " + " | ".join(f"{n}: modeled s (comm s)" for n in nets) + " |"
out += [head, "|---|---|---|---|---|" + "---|" * len(nets)]
for name, df in schemes.items():
    if df.empty:
        continue
    first = df.xs(nets[0], level="profile")
    cells = [f"{df.xs(n, level='profile')['total_s'].mean():.1f} ({df.xs(n, level='profile')['comm_s'].mean():.1f})" for n in nets]
    out.append(f"| {name} | {rounds.get(name, float('nan')):.2f} | {1000 * first['gb_per_worker'].mean() / total_steps:.2f} | {first['gb_per_worker'].mean():.3f} | {first['messages_per_worker'].mean():.0f} | " + " | ".join(cells) + " |")
g, ar = schemes["guideline, Xi (1/4)"], schemes["All-Reduce"]
if not g.empty and not ar.empty:
    out.append("")
    for n in nets:
        rat = (g.xs(n, level="profile")["total_s"] / ar.xs(n, level="profile")["total_s"]).dropna()
        rf = (g.xs(n, level="profile")["total_s"] / full.xs(n, level="profile")["total_s"]).dropna() if not full.empty else pd.Series(dtype=float)
        out.append(f"* {n}: guideline (Xi) / All-Reduce modeled time {rat.mean():.2f} "
                   f"(per seed {', '.join(f'{v:.2f}' for v in rat)}); guideline / full control "
                   f"{rf.mean():.2f}")
print("\n".join(out))
