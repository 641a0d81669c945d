#!/usr/bin/env python3
"""Plots a serving benchmark's JSON rows (the serve_load example's output):
goodput and p99 latency against offered load, per policy and model.

    PYTHONPATH=.cache/py-plot python3 scripts/plot_serve_load.py RESULTS.json OUT.svg

matplotlib comes from .cache/py-plot (scripts/bench-bundles installs it).
"""
import json
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path, out):
    rows = json.load(open(path))
    fig, (ax_good, ax_p99) = plt.subplots(1, 2, figsize=(10, 4))
    series = sorted({(r["policy"], r["model"]) for r in rows})
    for policy, model in series:
        pts = sorted((r["load"], r) for r in rows if r["policy"] == policy and r["model"] == model)
        loads = [load for load, _ in pts]
        style = "-o" if "FIFO" in policy else "--s"
        label = f"{policy}, {model}"
        ax_good.plot(loads, [r["goodput"] for _, r in pts], style, label=label)
        ax_p99.plot(loads, [r["p99_ms"] for _, r in pts], style, label=label)
    slo = max(r["slo_ms"] for r in rows)
    ax_p99.axhline(slo, color="grey", linewidth=0.8, linestyle=":", label=f"largest SLO ({slo:.0f} ms)")
    ax_good.set_xlabel("offered load (x time-only FIFO capacity)")
    ax_good.set_ylabel("goodput (answered within SLO, requests/s)")
    ax_p99.set_xlabel("offered load (x time-only FIFO capacity)")
    ax_p99.set_ylabel("p99 latency at the client (ms)")
    ax_p99.set_yscale("log")
    ax_good.legend(fontsize=7)
    ax_p99.legend(fontsize=7)
    fig.suptitle("weft serve over loopback, per model and policy")
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
