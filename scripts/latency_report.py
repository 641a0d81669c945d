#!/usr/bin/env python3
"""Merges weft-bench's latency-weft.json and torch_latency.py's
latency-torch.json into a markdown table for docs/results/.

    python3 scripts/latency_report.py --weft DIR/latency-weft.json \\
        --torch DIR/latency-torch.json --out OUT/latency.md

Ratios are weft's median over PyTorch's median (below 1: weft is faster).
A missing or unreadable file leaves its columns empty and says so; the
script itself only fails on bad arguments.
"""

import argparse
import json
import os
import sys

ORDER = ["resnet18", "resnet50", "squeezenet", "ppocr_cls", "minilm_l3"]
DASH = "—"


def load(path):
    if not path or not os.path.exists(path):
        return None, f"{path} is missing"
    try:
        with open(path) as f:
            return json.load(f), None
    except (OSError, ValueError) as e:
        return None, f"{path}: {e}"


def us(x):
    if x is None or x != x:  # None or NaN
        return DASH
    return f"{x:,.1f}" if x < 10000 else f"{x:,.0f}"


def ratio(a, b):
    if a is None or b is None or a != a or b != b or b <= 0:
        return DASH
    return f"{a / b:.2f}×"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def side_header(label, data, note):
    if data is None:
        return [f"- **{label}**: not available ({note})"]
    lines = [
        f"- **{label}**: device {data.get('device') or 'unknown'}, driver {data.get('driver') or 'unknown'}, "
        f"commit `{data.get('commit') or 'unknown'}`, {data.get('reps', '?')} timed requests after "
        f"{data.get('warmup', '?')} warm-up"
    ]
    if data.get("versions"):
        v = data["versions"]
        lines.append(
            "  - versions: "
            + ", ".join(f"{k} {v[k]}" for k in ("torch", "torch_cuda", "cudnn", "torchvision", "transformers") if v.get(k))
        )
    if data.get("settings"):
        st = data["settings"]
        lines.append("  - settings: " + ", ".join(f"{k}={st[k]}" for k in st))
    if data.get("method"):
        lines.append(f"  - method: {data['method']}")
    if data.get("command"):
        lines.append(f"  - command: `{data['command']}`")
    if data.get("date_utc") or (data.get("meta") or {}).get("date_utc"):
        lines.append(f"  - date: {data.get('date_utc') or data['meta']['date_utc']}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weft", required=True, help="latency-weft.json from weft-bench latency")
    ap.add_argument("--torch", required=True, help="latency-torch.json from scripts/torch_latency.py")
    ap.add_argument("--out", required=True, help="markdown file to write")
    args = ap.parse_args()

    weft, weft_note = load(args.weft)
    torch, torch_note = load(args.torch)
    wrows = {r["model"]: r for r in (weft or {}).get("rows", [])}
    trows = {r["model"]: r for r in (torch or {}).get("rows", [])}
    models = [m for m in ORDER if m in wrows or m in trows]
    models += sorted((set(wrows) | set(trows)) - set(models))

    out = ["# Batch-1 latency: weft against PyTorch eager and CUDA graphs", ""]
    out += side_header("weft", weft, weft_note)
    out += side_header("PyTorch", torch, torch_note)
    if weft and torch and weft.get("device") != torch.get("device"):
        out += ["", f"**Warning: different devices** (weft {weft.get('device')}, PyTorch {torch.get('device')})."]
    if weft and torch and weft.get("commit") != torch.get("commit"):
        out += ["", f"Note: the two files name different commits ({weft.get('commit')} / {torch.get('commit')})."]
    out += [
        "",
        "Batch 1, fp32 on both sides (PyTorch with TF32 off), one request at a time, median over the timed "
        "requests. weft: the engine's latency from submit to result (`weft::Engine`, inputs uploaded and outputs "
        "downloaded per request); PyTorch: CUDA events around each request. Ratio = weft median / PyTorch median: "
        "below 1× weft is faster. Random weights on both sides (timing only).",
        "",
        "| model | weft kernels | weft median µs | weft p99 µs | torch eager median µs | torch graphs median µs "
        "| weft/eager | weft/graphs | stand-in |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for m in models:
        w, t = wrows.get(m), trows.get(m)
        wm = w.get("median_us") if w else None
        wp = w.get("p99_us") if w else None
        eager = (t or {}).get("eager") or {}
        graphs = (t or {}).get("graphs") or {}
        em, gm = eager.get("median_us"), graphs.get("median_us")
        stand_in = (t or {}).get("stand_in") or (DASH if t else "")
        kernels = w.get("kernels", DASH) if w else DASH
        if w and w.get("check") and not w["check"].get("ok", True):
            kernels = f"{kernels} (check FAILED)"
        out.append(
            f"| {m} | {kernels} | {us(wm)} | {us(wp)} | {us(em)} | {us(gm)} | {ratio(wm, em)} | {ratio(wm, gm)} "
            f"| {cell(stand_in)} |"
        )
        if t is not None and not graphs:
            notes.append(f"- {m}: no CUDA graph timing: {cell('; '.join(t.get('graphs_errors') or ['not captured']))}")
        elif t and t.get("graphs_captured") and t["graphs_captured"] != "the same call as eager":
            notes.append(f"- {m}: the CUDA graph captured {t['graphs_captured']}")
    for name in (weft or {}).get("skipped", []):
        notes.append(f"- {name}: weft skipped it (model file missing on the GPU machine)")
    for e in (weft or {}).get("errors", []):
        notes.append(f"- {e['model']}: weft error: {cell(e['error'])}")
    for e in (torch or {}).get("errors", []):
        notes.append(f"- {e['model']}: PyTorch error: {cell(e['error'])}")

    out += [
        "",
        "Details (µs; enqueue = host time to issue one request's work: `Engine::submit` for weft):",
        "",
        "| model | weft p99 | weft enqueue | eager p99 | eager enqueue | graphs p99 | PyTorch model |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for m in models:
        w, t = wrows.get(m) or {}, trows.get(m) or {}
        eager, graphs = t.get("eager") or {}, t.get("graphs") or {}
        out.append(
            f"| {m} | {us(w.get('p99_us'))} | {us(w.get('enqueue_median_us'))} | {us(eager.get('p99_us'))} "
            f"| {us(eager.get('enqueue_median_us'))} | {us(graphs.get('p99_us'))} | {cell(t.get('torch_model', DASH))} |"
        )
    if notes:
        out += ["", "Notes:", ""] + notes
    out += [
        "",
        "Commands (scripts/gpu-suite run does all three):",
        "",
        "```",
        "weft-bench latency --out DIR          # or: weft-bench all --out DIR",
        "python3 scripts/torch_latency.py --out DIR",
        "python3 scripts/latency_report.py --weft DIR/latency-weft.json --torch DIR/latency-torch.json "
        "--out latency.md",
        "```",
        "",
    ]
    text = "\n".join(out)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
