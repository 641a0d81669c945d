"""The demo's client: sends requests to a running `weft serve` with Triton's
HTTP client, prints each model's latency and SLO attainment as the client
saw them, then an excerpt of the server's Prometheus metrics.

    PYTHONPATH=.cache/py python3 scripts/demo_client.py \
        --http HOST:PORT --metrics HOST:PORT --requests N MODEL...
"""

import argparse
import sys
import time
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    client = httpclient.InferenceServerClient(url=args.http)
    deadline = time.time() + 120
    while True:
        try:
            if client.is_server_ready():
                break
        except Exception:  # not listening yet
            pass
        if time.time() > deadline:
            sys.exit("demo client: the server did not become ready in 120 s")
        time.sleep(0.2)
    rng = np.random.default_rng(1)
    for model in args.models:
        meta = client.get_model_metadata(model)
        inputs = []
        for spec in meta["inputs"]:
            shape = [int(d) for d in spec["shape"]]
            x = httpclient.InferInput(spec["name"], shape, spec["datatype"])
            x.set_data_from_numpy(rng.standard_normal(shape).astype(np.float32), binary_data=True)
            inputs.append(x)
        latencies = []
        refused = 0
        for _ in range(args.requests):
            start = time.perf_counter()
            try:
                client.infer(model, inputs)
            except InferenceServerException as e:
                # A refusal (429/503) is an answer too; anything else is not.
                if e.status() not in ("429", "503"):
                    raise
                refused += 1
                continue
            latencies.append((time.perf_counter() - start) * 1e3)
        if not latencies:
            sys.exit(f"demo client: every request to {model} was refused")
        latencies.sort()
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"{model}: {len(latencies)} of {args.requests} requests answered, {refused} refused; "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (client-side)"
        )
    text = urllib.request.urlopen(f"http://{args.metrics}/metrics", timeout=10).read().decode()
    wanted = ("nv_inference_request_success", "nv_inference_request_duration_us", "weft_slo_attainment",
              "weft_bundle")
    print("metrics excerpt:")
    for line in text.splitlines():
        if line.startswith(wanted):
            print("  " + line)


if __name__ == "__main__":
    main()
