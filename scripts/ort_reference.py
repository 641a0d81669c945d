#!/usr/bin/env python3
"""Runs an ONNX model on onnxruntime's CPU provider and saves its outputs.

This is the reference side of tests/models.rs: weft's outputs are compared
with these. Inputs and outputs are .npy files, which both numpy and the Rust
tests read and write.

usage: ort_reference.py MODEL.onnx OUT_DIR NAME=PATH.npy [NAME=PATH.npy ...]

Each output is written to OUT_DIR/<sanitized name>.npy, where the name has
every character outside [A-Za-z0-9_.-] replaced by '_' (ONNX names such as
`gpu_0/softmax_1` contain slashes). A manifest OUT_DIR/outputs.txt lists
`<onnx name>\t<file name>` per output, in the model's output order.

Optimisations are disabled (ORT_DISABLE_ALL) so onnxruntime computes what the
graph says, not a fused approximation of it. Needs onnxruntime and numpy on
PYTHONPATH: scripts/fetch-models installs them into .cache/py.
"""

import os
import re
import sys


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def main(argv: list) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        print(f"ort_reference: {e}; run scripts/fetch-models and set PYTHONPATH=.cache/py", file=sys.stderr)
        return 3
    model, out_dir = argv[1], argv[2]
    feeds = {}
    for arg in argv[3:]:
        name, sep, path = arg.partition("=")
        if not sep:
            print(f"ort_reference: input `{arg}` is not NAME=PATH.npy", file=sys.stderr)
            return 2
        feeds[name] = np.load(path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    expected = [i.name for i in sess.get_inputs()]
    missing = [n for n in expected if n not in feeds]
    if missing:
        print(f"ort_reference: missing inputs {missing} (model takes {expected})", file=sys.stderr)
        return 2
    names = [o.name for o in sess.get_outputs()]
    results = sess.run(names, {n: feeds[n] for n in expected})
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "outputs.txt"), "w") as manifest:
        for name, value in zip(names, results):
            file = sanitize(name) + ".npy"
            np.save(os.path.join(out_dir, file), np.ascontiguousarray(value))
            manifest.write(f"{name}\t{file}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
