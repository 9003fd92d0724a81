"""Shared by the asv benchmarks: the profile switch, interleaved peer timing, the roofline.

``FASTNORM_BENCH_PROFILE=quick|full`` (default quick), as scikit-learn's ``SKLBENCH_PROFILE``:
quick keeps each shape kind at CI size, full adds the large and out-of-cache shapes. The shapes
are part of the parameter labels, so results of the two profiles never share a key.
"""

import os
import time

import numpy as np

PROFILE = os.environ.get("FASTNORM_BENCH_PROFILE", "quick")
if PROFILE not in ("quick", "full"):
    raise ValueError(f"FASTNORM_BENCH_PROFILE must be 'quick' or 'full', got {PROFILE!r}")
QUICK = PROFILE == "quick"
# interleaved rounds of each track_ benchmark, and the shortest timed sample (seconds)
ROUNDS = 3 if QUICK else 7
MIN_SAMPLE = 0.005 if QUICK else 0.05
PEERS = ("numpy", "torch", "sklearn")


def calls_per_sample(fn, min_sample=MIN_SAMPLE):
    """How many calls make one sample last ``min_sample`` (fast calls are mostly timer noise)."""
    start = time.perf_counter()
    fn()
    per_call = time.perf_counter() - start
    return max(1, int(min_sample / max(per_call, 1e-7)))


def interleaved_min(fns, rounds=ROUNDS):
    """Best per-call time of each callable, timed A, B, A, B, ...: drifts of a noisy machine
    (clock, neighbours) hit both sides alike instead of whichever ran second."""
    numbers = {name: calls_per_sample(fn) for name, fn in fns.items()}
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            n = numbers[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / n)
    return best


def stream_copy_bandwidth(n_bytes=1 << 27 if QUICK else 1 << 28, repeat=5):
    """Bytes per second of an out-of-cache copy (read + write counted): the roofline's yardstick.
    128 MB per array in the quick profile, 256 MB in the full one: both far beyond any cache."""
    src = np.ones(n_bytes // 8)
    dst = np.zeros_like(src)  # written once: its pages are mapped before the timing
    np.copyto(dst, src)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * n_bytes / best


def warm_up(impls):
    """Call each implementation once: compiles (or loads from Numba's cache), touches outputs."""
    for fn in impls.values():
        fn()


def torch_threads(n):
    """Set PyTorch's thread count when it is installed; returns the previous one (or None)."""
    try:
        import torch
    except ImportError:
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    return previous


def match_threads():
    """Give the peers Numba's thread count, so ratios compare like with like."""
    import numba

    torch_threads(numba.get_num_threads())
