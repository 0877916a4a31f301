"""Figures from traces: one 2x2 panel per run, and overlays of several runs (paper Fig. 1-2).

Panels: (a) consensus distance Xi (solid) and its estimate Theta (dotted) per step on a log
scale, with the consensus target (dashed) and phase boundaries; (b) gossip rounds per step
(All-Reduce steps shaded, capped steps marked); (c) training loss per epoch; (d) test
accuracy of the averaged model per epoch.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

NEED = {"steps": ["step", "xi", "theta", "target", "rounds", "capped", "phase"],
        "epochs": ["epoch", "train_loss", "test_acc"]}


def _positive(a):
    a = np.asarray(a, dtype=float).copy()
    a[~(a > 0)] = np.nan  # log axes: 0 (All-Reduce) and NaN (not measured) leave gaps
    return a


def _phase_lines(ax, run):
    phase = run.steps["phase"]
    step = run.steps["step"]
    for i in np.nonzero(np.diff(phase) != 0)[0]:
        ax.axvline(step[i + 1], color="0.75", lw=0.8, zorder=0)


def _axes():
    fig, axs = plt.subplots(2, 2, figsize=(11, 7.5))
    (a, b), (c, d) = axs
    a.set(yscale="log", xlabel="step", ylabel="consensus distance", title="(a) Ξ (solid), Θ (dotted), target (dashed)")
    b.set(xlabel="step", ylabel="gossip rounds per step", title="(b) communication")
    c.set(xlabel="epoch", ylabel="training loss", yscale="log", title="(c) training loss")
    d.set(xlabel="epoch", ylabel="test accuracy (%)", title="(d) test accuracy of x̄")
    for ax in axs.flat:
        ax.grid(True, which="major", alpha=0.3)
    return fig, (a, b, c, d)


def _draw(axes, run, color, label, theta=True):
    a, b, c, d = axes
    s = run.steps
    step = s["step"]
    if len(step):
        a.plot(step, _positive(s["xi"]), color=color, lw=1.0, label=label)
        if theta:
            a.plot(step, _positive(s["theta"]), color=color, lw=0.8, ls=":", alpha=0.8)
        if np.any(np.isfinite(s["target"])):
            a.plot(step, _positive(s["target"]), color=color, lw=1.2, ls="--")
        rounds = s["rounds"].astype(float)
        shown = np.where(rounds >= 0, rounds, np.nan)
        b.plot(step, shown, color=color, lw=0.8, label=label, drawstyle="steps-post")
        ar = rounds < 0
        if np.any(ar):
            b.fill_between(step, 0, 1, where=ar, transform=b.get_xaxis_transform(), color=color,
                           alpha=0.08, step="post", lw=0)
        capped = s["capped"] > 0
        if np.any(capped):
            b.plot(step[capped], shown[capped], "x", color=color, ms=4)
    e = run.epochs
    x = e["epoch"] + 1
    c.plot(x, e["train_loss"], color=color, marker="." if len(x) < 40 else None, label=label)
    d.plot(x, 100 * e["test_acc"], color=color, marker="." if len(x) < 40 else None, label=label)


def run_figure(run, path, title=None):
    fig, axes = _axes()
    _draw(axes, run, "C0", run.name)
    _phase_lines(axes[0], run)
    _phase_lines(axes[1], run)
    acc = 100 * run.epochs["test_acc"][-1] if len(run.epochs["test_acc"]) else float("nan")
    fig.suptitle(title or f"{run.name}: n = {run.attrs.get('n', '?')}, final test accuracy {acc:.2f}%")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def overlay_figure(runs, labels, path, title):
    fig, axes = _axes()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (run, label) in enumerate(zip(runs, labels)):
        _draw(axes, run, colors[i % len(colors)], label, theta=False)
    _phase_lines(axes[0], runs[0])
    axes[0].set_title("(a) Ξ (solid), target (dashed)")
    handles, names = axes[3].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(3, len(names)), fontsize="small",
               frameon=False)
    fig.suptitle(title)
    rows = (len(names) + 2) // 3
    fig.tight_layout(rect=(0, 0.03 * rows + 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
