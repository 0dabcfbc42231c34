"""PyTorch's convolution kernels, timed for `npm run bench:kernels` (bench/kernel-bench-torch.ts starts this).

Reads one JSON request per line on stdin, {"n", "h", "w", "cin", "cout", "k", "pad", "direction", "seconds"},
and answers {"kind": "time", "seconds": per call} on stdout: the median of 3 samples of at least `seconds`/3 each,
one thread (torch.set_num_threads(1): one core, like one of our workers). PyTorch runs NCHW (its native layout
for these kernels: oneDNN on this build), float32; the three directions are aten.convolution_backward's.
"""
import json
import statistics
import sys
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(0)


def timed(fn, seconds):
    fn()
    samples = []
    for _ in range(3):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 3:
                break
        samples.append(elapsed / calls)
    return statistics.median(samples)


def measure(req):
    n, h, w, cin, cout, k = (req[key] for key in ("n", "h", "w", "cin", "cout", "k"))
    pad = (k - 1) // 2 if req["pad"] == "same" else 0
    x = torch.randn(n, cin, h, w)
    weight = torch.randn(cout, cin, k, k) * (2.0 / (cin * k * k)) ** 0.5
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, weight, padding=pad)
    dy = torch.randn_like(y)
    direction = req["direction"]
    if direction == "forward":
        def fn():
            with torch.no_grad():
                torch.nn.functional.conv2d(x, weight, padding=pad)
    else:
        mask = (True, False, False) if direction == "input-grad" else (False, True, False)

        def fn():
            torch.ops.aten.convolution_backward(dy, x, weight, None, (1, 1), (pad, pad), (1, 1), False, (0, 0), 1, mask)
    return timed(fn, req["seconds"])


def main():
    print(json.dumps({"kind": "ready", "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            print(json.dumps({"kind": "time", "seconds": measure(json.loads(line))}), flush=True)
        except Exception as err:  # answer, never die: the bench goes on without this point
            print(json.dumps({"kind": "error", "message": f"{type(err).__name__}: {err}"}), flush=True)


if __name__ == "__main__":
    main()
