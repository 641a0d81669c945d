"""Summarises scripts/bench-bundles' tables: distinct bundle modules over
all plans and modes, before (default form) and after (best form).

Usage: python3 scripts/bench_bundles.py OUT_DIR  (writes OUT_DIR/report.md
and OUT_DIR/bundles.svg, and prints the report)."""

import csv
import sys
from pathlib import Path


def modules(out, forms):
    """Distinct modules (bodies, block size) of every plan run with `forms`."""
    seen = {}
    for tsv in sorted(Path(out).glob(f"*-{forms}/bundles.tsv")):
        for row in csv.DictReader(tsv.open(), delimiter="\t"):
            if row["registers"] == "-":
                sys.exit(f"{tsv}: no ptxas figures (install ptxas: scripts/setup-cuda)")
            seen.setdefault((row["bodies"], row["block_threads"]), row)
    return list(seen.values())


def summary(rows):
    n = len(rows)
    reg = [int(r["registers"]) / max(1, int(r["max_body_registers"])) for r in rows]
    occ = [int(r["blocks_per_sm"]) / max(1, int(r["max_body_blocks_per_sm"])) for r in rows]
    spills = sum(1 for r in rows if int(r["spill_bytes"]) > 0)
    # weft pack's own verdict (BundleFigures::keeps_occupancy).
    kept = sum(1 for r in rows if r["keeps_occupancy"] == "yes")
    within_raw = sum(1 for x in reg if x <= 1.1)
    return {
        "modules": n,
        "kept": kept,
        "within_1.1x_registers_raw": within_raw,
        "at_solo_blocks_per_sm": sum(1 for x in occ if x >= 1.0),
        "spilling": spills,
        "reg": sorted(reg),
        "occ": sorted(occ),
        "median_reg": sorted(reg)[n // 2] if n else float("nan"),
        "worst_occ": min(occ) if occ else float("nan"),
    }


def main():
    out = Path(sys.argv[1])
    before, after = summary(modules(out, "default")), summary(modules(out, "best"))
    lines = [
        "| | default form (before) | best form (after) |",
        "|---|---|---|",
    ]
    for key, label in [
        ("modules", "distinct modules"),
        ("kept", "keep the heaviest body's occupancy (blocks/SM, allocated registers within 1.1x, no spills)"),
        ("at_solo_blocks_per_sm", "at the heaviest body's blocks per SM"),
        ("within_1.1x_registers_raw", "within 1.1x its registers (as ptxas reports)"),
        ("spilling", "spilling"),
    ]:
        lines.append(f"| {label} | {before[key]} | {after[key]} |")
    lines.append(f"| median registers / heaviest body's | {before['median_reg']:.2f} | {after['median_reg']:.2f} |")
    lines.append(f"| worst blocks per SM / heaviest body's | {before['worst_occ']:.2f} | {after['worst_occ']:.2f} |")
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    print(report)

    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in [
        (axes[0], "reg", "module registers / heaviest body's"),
        (axes[1], "occ", "module blocks per SM / heaviest body's"),
    ]:
        for s, label in [(before, "default form"), (after, "best form")]:
            xs = s[key]
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=f"{label} ({s['modules']} modules)")
        ax.axvline(1.0, color="grey", linewidth=0.8)
        ax.set_title(title)
        ax.set_ylabel("fraction of modules (cumulative)")
        ax.legend(loc="lower right" if key == "reg" else "upper left", fontsize=8)
    fig.suptitle("weft bundle modules vs their heaviest body compiled alone (ptxas 13.0, sm_90)")
    fig.tight_layout()
    fig.savefig(out / "bundles.svg")


if __name__ == "__main__":
    main()
