#!/usr/bin/env python3
"""Replaces a model's ConstantOfShape weight stubs with seeded random weights.

The `light_*` models in onnx's backend test data keep the architecture of the
real models but replace every weight by `ConstantOfShape(shape)` filled with
one value, to keep the wheel small. A network of constant weights gives every
channel the same value, which would hide indexing bugs in an importer or a
compiler, so each stub becomes a random initializer instead:

* convolution and Gemm weights: normal with variance 1/fan_in, so activations
  keep their scale through the depth of the network (He's 2/fan_in would let
  ResNet's residual sums grow until the final softmax saturates);
* biases and BatchNormalization bias and mean: small normals;
* BatchNormalization scale: uniform in [0.5, 1.0]; variance: uniform in
  [0.5, 1.5], so it is strictly positive.

The role of a stub is read from the node and input slot that consume it, not
from its name. The random stream is seeded from the tensor's name, so a stub's
values do not change when another is added or removed.

usage: randomize_weights.py IN.onnx OUT.onnx
"""

import hashlib
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def seed_for(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def role_of(graph: onnx.GraphProto, tensor: str) -> str:
    """How the first consumer uses `tensor`: '<op_type>:<input index>'."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == tensor:
                return f"{node.op_type}:{i}"
    return "unused"


def random_weight(name: str, shape: tuple, role: str) -> np.ndarray:
    rng = np.random.default_rng(seed_for(name))
    if role in ("Conv:1", "Gemm:1", "MatMul:1", "ConvTranspose:1"):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
        if role == "Gemm:1":
            # Gemm's weight may be stored [out, in] (transB=1) or [in, out];
            # both of these models use transB=1, whose fan-in is shape[1].
            fan_in = int(shape[-1])
        w = rng.normal(0.0, np.sqrt(1.0 / max(fan_in, 1)), size=shape)
    elif role == "BatchNormalization:1":
        w = rng.uniform(0.5, 1.0, size=shape)
    elif role == "BatchNormalization:4":
        w = rng.uniform(0.5, 1.5, size=shape)
    else:
        # Biases, BatchNormalization bias (input 2) and mean (input 3).
        w = rng.normal(0.0, 0.05, size=shape)
    return w.astype(np.float32)


def randomize(model: onnx.ModelProto) -> int:
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    keep_nodes = []
    replaced = 0
    used_shapes = set()
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in inits:
            shape = tuple(int(d) for d in numpy_helper.to_array(inits[node.input[0]]))
            out = node.output[0]
            w = random_weight(out, shape, role_of(graph, out))
            graph.initializer.append(numpy_helper.from_array(w, out))
            if model.ir_version < 4:
                # Before IR 4 every initializer must also be a graph input.
                graph.input.append(helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, list(shape)))
            used_shapes.add(node.input[0])
            replaced += 1
        else:
            keep_nodes.append(node)
    del graph.node[:]
    graph.node.extend(keep_nodes)
    # The shape tensors feed nothing now.
    still_used = {name for n in graph.node for name in n.input}
    dead = {name for name in used_shapes if name not in still_used}
    kept = [t for t in graph.initializer if t.name not in dead]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    kept_inputs = [i for i in graph.input if i.name not in dead]
    del graph.input[:]
    graph.input.extend(kept_inputs)
    return replaced


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    src, dst = sys.argv[1], sys.argv[2]
    model = onnx.load(src)
    n = randomize(model)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    print(f"randomize_weights: {n} ConstantOfShape weights replaced -> {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
