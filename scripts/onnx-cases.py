#!/usr/bin/env python3
"""Writes ONNX's own backend node test cases as files weft can run.

    PYTHONPATH=.cache/py python3 scripts/onnx-cases.py OUT_DIR

The cases come from the installed `onnx` package
(`onnx.backend.test.case.node.collect_testcases()`), so they follow the onnx
version installed rather than a vendored copy. Each case becomes a directory:

    OUT_DIR/<case>/model.onnx
    OUT_DIR/<case>/<k>/input_<i>.npy, output_<i>.npy   (data set k)
    OUT_DIR/<case>/manifest.tsv   lines `input|output <TAB> k <TAB> name <TAB> file`

A case whose values cannot be written as `.npy` (sequences, optionals,
strings, and the element types NumPy has no `.npy` code for: bfloat16, the
float8/float4/int4/int2 families) is listed in OUT_DIR/unwritable.tsv with
the reason instead. OUT_DIR/.weft-ok, written last, holds the onnx version;
the test that reads the cases regenerates them when it differs.
"""

import os
import shutil
import sys
import warnings

import numpy as np
import onnx
import onnx.numpy_helper
from onnx.backend.test.case.node import collect_testcases

# Element kinds `.npy` stores portably: bool, signed and unsigned integers,
# IEEE floats. ml_dtypes' types (bfloat16, float8, int4, …) report kind 'V'.
NPY_KINDS = "biuf"


def as_array(value):
    """`value` as an ndarray where it is a tensor: data sets hold NumPy
    scalars for 0-d tensors and TensorProtos for some element types."""
    if isinstance(value, np.generic):
        return np.asarray(value)
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    return value


def unwritable(value):
    """Why `value` cannot be a `.npy` file, or None."""
    if not isinstance(value, np.ndarray):
        return f"a {type(value).__name__} value (not a tensor)"
    if value.dtype.kind not in NPY_KINDS or value.dtype.itemsize > 8:
        return f"element type {value.dtype} has no .npy encoding weft reads"
    return None


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: onnx-cases.py OUT_DIR")
    out = sys.argv[1]
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with warnings.catch_warnings():
        # Some generators overflow on purpose (Cast to narrow types).
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    written = 0
    skipped = []
    seen = set()
    for case in cases:
        if case.name in seen or case.model is None:
            continue
        seen.add(case.name)
        model = case.model
        initializers = {t.name for t in model.graph.initializer}
        inputs = [i.name for i in model.graph.input if i.name not in initializers]
        outputs = [o.name for o in model.graph.output]
        why = None
        data_sets = [
            ([as_array(v) for v in ins], [as_array(v) for v in outs]) for ins, outs in case.data_sets
        ]
        for ins, outs in data_sets:
            for v in list(ins) + list(outs):
                why = why or unwritable(v)
            if len(ins) != len(inputs) or len(outs) != len(outputs):
                why = why or "data sets do not match the graph's inputs and outputs"
        if why:
            skipped.append((case.name, why))
            continue
        cdir = os.path.join(tmp, case.name)
        os.makedirs(cdir)
        onnx.save(model, os.path.join(cdir, "model.onnx"))
        lines = []
        for k, (ins, outs) in enumerate(data_sets):
            ddir = os.path.join(cdir, str(k))
            os.makedirs(ddir)
            for kind, names, values in (("input", inputs, ins), ("output", outputs, outs)):
                for i, (name, value) in enumerate(zip(names, values)):
                    fname = f"{k}/{kind}_{i}.npy"
                    # (np.ascontiguousarray would make a 0-d array 1-d.)
                    np.save(os.path.join(cdir, fname), np.require(value, requirements="C"))
                    lines.append(f"{kind}\t{k}\t{name}\t{fname}\n")
        with open(os.path.join(cdir, "manifest.tsv"), "w") as f:
            f.writelines(lines)
        written += 1
    with open(os.path.join(tmp, "unwritable.tsv"), "w") as f:
        f.writelines(f"{name}\t{why}\n" for name, why in skipped)
    with open(os.path.join(tmp, ".weft-ok"), "w") as f:
        f.write(onnx.__version__)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print(f"onnx-cases: wrote {written} cases, {len(skipped)} unwritable, to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
