#!/usr/bin/env python3
"""PyTorch side of `moeseg bench frrn` (bench/model_bench.cpp spawns it; also runs alone):
times FRRN-A forward (eval, no grad) and forward+backward (train mode, cross-entropy loss) on the
CPU with the network of tools/fixtures/make_model_fixtures.py (the reference's architecture),
and prints machine-readable lines:
    torch_forward_s <median seconds>
    torch_fwdbwd_s <median seconds>
    torch_forward_rss_mib <ru_maxrss growth during the forward runs>
    torch_fwdbwd_rss_mib <ru_maxrss growth up to the end of the forward+backward runs>
Memory is the growth of the process's peak resident set (getrusage ru_maxrss) over the
baseline after the model and the input exist: it includes allocator slack and freed-but-cached
memory, so it is an upper estimate of what the tensors needed.
usage: frrn_torch_bench.py --threads N --batch B --height H --width W --classes C --reps R [--width-mult M]
"""
import argparse
import pathlib
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools" / "fixtures"))
from make_model_fixtures import FRRN  # noqa: E402


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def median_time(fn, reps):
    fn()   # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--classes", type=int, default=38)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--width-mult", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = FRRN(a.classes, "A", a.width_mult)
    x = torch.rand(a.batch, 3, a.height, a.width)
    target = torch.randint(0, a.classes, (a.batch, a.height, a.width))
    base = rss_mib()

    def forward():
        net.eval()
        with torch.no_grad():
            net(x)

    def fwdbwd():
        net.train()
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), target).backward()

    tf = median_time(forward, a.reps)
    rf = rss_mib() - base
    tb = median_time(fwdbwd, a.reps)
    rb = rss_mib() - base
    print(f"torch_version {torch.__version__}")
    print(f"torch_forward_s {tf:.6f}")
    print(f"torch_fwdbwd_s {tb:.6f}")
    print(f"torch_forward_rss_mib {rf:.1f}")
    print(f"torch_fwdbwd_rss_mib {rb:.1f}")


if __name__ == "__main__":
    main()
