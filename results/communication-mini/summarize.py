"""summarize.py: the modeled-time tables of README.md, from table9-cost.csv and
table13-cost.csv (ccdl-analyze cost): per configuration (runs without their seed) and
network, the mean over seeds of the whole run's modeled time, its communication part, the GB
each worker sent, and total time relative to the paired All-Reduce run."""
import os
import re

import pandas as pd

here = os.path.dirname(os.path.abspath(__file__))
out = []
for table in ("table9", "table13"):
    df = pd.read_csv(os.path.join(here, f"{table}-cost.csv"))
    df = df[df["phase"].astype(str) == "all"].copy()
    df["config"] = df["run"].map(lambda r: re.sub(r"-s\d+$", "", r))
    out.append(f"### {table} (mini): modeled seconds per run, mean over 3 seeds\n")
    nets = list(dict.fromkeys(df["profile"]))
    head = "| config | " + " | ".join(f"{n}: total s (comm s) | {n}: x All-Reduce" for n in nets) + " | GB/worker |"
    out += [head, "|" + "---|" * (2 * len(nets) + 2)]
    for config, g in df.groupby("config", sort=False):
        cells = []
        for n in nets:
            h = g[g["profile"] == n]
            ratio = h["total_ratio"].mean()
            cells.append(f"{h['total_s'].mean():.3g} ({h['comm_s'].mean():.3g})")
            cells.append("-" if pd.isna(ratio) else f"{ratio:.2f}")
        out.append(f"| {config} | " + " | ".join(cells) + f" | {g['gb_per_worker'].mean():.3f} |")
    out.append("")
print("\n".join(out))
