"""Talks to a running `weft serve` with Triton's own Python clients (HTTP and
gRPC) and compares its answers with onnxruntime's.

    PYTHONPATH=.cache/py python3 scripts/tritonclient_check.py \
        --http HOST:PORT --grpc HOST:PORT --model NAME --onnx MODEL.onnx

The model must have one FP32 input with a static shape (as served). Checks:
server and model metadata, JSON and binary inference over HTTP, raw
inference over gRPC, an unknown model, a wrong datatype and a wrong shape,
unload and load through the repository API. Prints one line per check and
exits non-zero at the first failure.
"""

import argparse
import sys

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

TOLERANCE = 1e-3


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def expect_error(fn, needle, what):
    try:
        fn()
    except InferenceServerException as e:
        msg = str(e)
        check(needle in msg, f"{what} is refused with a message naming `{needle}` ({msg.strip()[:120]})")
        return
    check(False, f"{what} should have been refused")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True)
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--onnx", required=True)
    args = ap.parse_args()

    http = httpclient.InferenceServerClient(url=args.http, network_timeout=600.0, connection_timeout=600.0)
    grpc = grpcclient.InferenceServerClient(url=args.grpc)

    check(http.is_server_live() and http.is_server_ready(), "HTTP: server live and ready")
    check(grpc.is_server_live() and grpc.is_server_ready(), "gRPC: server live and ready")
    check(http.get_server_metadata()["name"] == "weft", "HTTP: server metadata")
    check(http.is_model_ready(args.model) and grpc.is_model_ready(args.model), "both: model ready")

    meta = http.get_model_metadata(args.model)
    gmeta = grpc.get_model_metadata(args.model, as_json=True)
    check(len(meta["inputs"]) == 1 and meta["inputs"][0]["datatype"] == "FP32", "HTTP: model metadata")
    check(gmeta["inputs"][0]["name"] == meta["inputs"][0]["name"], "gRPC: model metadata agrees")
    name = meta["inputs"][0]["name"]
    shape = [int(d) for d in meta["inputs"][0]["shape"]]
    outputs = [o["name"] for o in meta["outputs"]]

    x = np.random.default_rng(7).uniform(-1.0, 1.0, size=shape).astype(np.float32)
    sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    ort_out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {name: x})))

    def compare(got, what):
        for o in outputs:
            err = rel_l2(got(o), ort_out[o])
            check(err < TOLERANCE, f"{what}: output {o} matches onnxruntime (relative L2 {err:.2e})")

    for binary in (False, True):
        inp = httpclient.InferInput(name, shape, "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        req = [httpclient.InferRequestedOutput(o, binary_data=binary) for o in outputs]
        res = http.infer(args.model, [inp], outputs=req)
        compare(res.as_numpy, f"HTTP {'binary' if binary else 'JSON'} inference")

    ginp = grpcclient.InferInput(name, shape, "FP32")
    ginp.set_data_from_numpy(x)
    res = grpc.infer(args.model, [ginp])
    compare(res.as_numpy, "gRPC inference")

    # weft's scheduling parameters: the request's own deadline and priority class.
    params = {"deadline_us": 600_000_000, "priority_class": 2}
    compare(http.infer(args.model, [inp], parameters=params).as_numpy, "HTTP inference with deadline_us")
    compare(grpc.infer(args.model, [ginp], parameters=params).as_numpy, "gRPC inference with deadline_us")
    expect_error(
        lambda: http.infer(args.model, [inp], parameters={"deadline_us": 0}), "deadline_us", "HTTP: a zero deadline"
    )
    expect_error(
        lambda: grpc.infer(args.model, [ginp], parameters={"deadline_us": 2.5}),
        "deadline_us",
        "gRPC: a fractional deadline",
    )
    expect_error(lambda: grpc.infer(args.model, [ginp], priority=1), "priority_class", "gRPC: Triton's priority")

    expect_error(lambda: http.infer("no_such_model", [inp]), "unknown model", "HTTP: an unknown model")
    expect_error(lambda: grpc.infer("no_such_model", [ginp]), "unknown model", "gRPC: an unknown model")
    wrong_type = httpclient.InferInput(name, shape, "FP64")
    wrong_type.set_data_from_numpy(x.astype(np.float64))
    expect_error(lambda: http.infer(args.model, [wrong_type]), "datatype", "HTTP: a wrong datatype")
    bad_shape = [shape[0] * 2] + shape[1:]
    wrong_shape = grpcclient.InferInput(name, bad_shape, "FP32")
    wrong_shape.set_data_from_numpy(np.concatenate([x, x]))
    expect_error(lambda: grpc.infer(args.model, [wrong_shape]), "shape", "gRPC: a wrong shape")

    index = http.get_model_repository_index()
    check(any(m["name"] == args.model and m["state"] == "READY" for m in index), "HTTP: repository index")
    http.unload_model(args.model)
    check(not http.is_model_ready(args.model), "HTTP: unloaded model is not ready")
    expect_error(lambda: http.infer(args.model, [inp]), "unknown model", "HTTP: inference on an unloaded model")
    http.load_model(args.model)
    check(http.is_model_ready(args.model), "HTTP: reloaded model is ready")
    inp = httpclient.InferInput(name, shape, "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    compare(http.infer(args.model, [inp]).as_numpy, "HTTP inference after reload")

    stats_ok = http.is_server_live()
    check(stats_ok, "HTTP: server still live after every check")
    print("tritonclient: all checks passed", flush=True)


if __name__ == "__main__":
    main()
