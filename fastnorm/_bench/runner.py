"""Run benchmark cases side by side and print one table: times, ratios, roofline fraction."""

import importlib
import time

import numpy as np

GROUPS = {
    "kernels": "fastnorm._bench.kernel_cases",
    "preprocessing": "fastnorm._bench.preprocessing_cases",
    "mlp": "fastnorm._bench.mlp_cases",
}
LIBRARIES = ("fastnorm", "numpy", "torch", "sklearn")


def load_cases(groups=None):
    cases = []
    for group in groups or GROUPS:
        try:
            module = importlib.import_module(GROUPS[group])
        except ModuleNotFoundError as exc:
            if exc.name != GROUPS[group]:
                raise
            continue
        cases.extend(module.CASES)
    return cases


def best_time(fn, repeat, min_sample=0.05, warm_up=0.3):
    """Best per-call time over ``repeat`` samples; fast calls are looped so that one sample
    lasts at least ``min_sample`` seconds (a single 0.1 ms call is mostly timer noise)."""
    time.sleep(0.3)  # let the previous library's spinning worker threads go idle
    # then run for ``warm_up`` seconds: compilation, page faults, caches, and a CPU that clocked
    # down while idle (figures in docs/developer.rst)
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - start < warm_up:
        fn()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    number = max(1, int(min_sample / max(per_call, 1e-7)))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def stream_copy_bandwidth(n_bytes=1 << 28, repeat=7):
    """Bytes per second of a large copy (read + write counted), the roofline's yardstick."""
    src = np.ones(n_bytes // 8)
    dst = np.empty_like(src)
    return 2 * n_bytes / best_time(lambda: np.copyto(dst, src), repeat)


def match_torch_threads():
    try:
        import numba
        import torch
    except ImportError:
        return
    torch.set_num_threads(numba.get_num_threads())


def run(cases, repeat=None, libraries=LIBRARIES, echo=print):
    match_torch_threads()
    bandwidth = stream_copy_bandwidth()
    echo(f"stream copy: {bandwidth / 1e9:.1f} GB/s")
    rows = []
    for case in cases:
        impls = case.make()
        times = {
            lib: best_time(impls[lib], repeat or case.repeat)
            for lib in libraries
            if impls.get(lib) is not None
        }
        del impls
        row = {"case": case.name, "target": case.target, **times}
        if case.bytes_moved and "fastnorm" in times:
            row["roofline"] = case.bytes_moved / times["fastnorm"] / bandwidth
        rows.append(row)
        echo(format_row(row))
    return bandwidth, rows


HEADER = (
    f"{'case':<48} {'fastnorm':>10} {'numpy':>10} {'torch':>10} {'sklearn':>10} "
    f"{'torch/fn':>9} {'numpy/fn':>9} {'skl/fn':>8} {'roofline':>9}  target"
)


def _ms(t):
    return f"{t * 1e3:9.2f}ms" if t is not None else f"{'-':>11}"


def _ratio(row, lib):
    if lib in row and "fastnorm" in row:
        return f"{row[lib] / row['fastnorm']:8.2f}x"
    return f"{'-':>9}"


def format_row(row):
    roof = f"{row['roofline'] * 100:8.0f}%" if "roofline" in row else f"{'-':>9}"
    return (
        f"{row['case']:<48} {_ms(row.get('fastnorm'))}{_ms(row.get('numpy'))}"
        f"{_ms(row.get('torch'))}{_ms(row.get('sklearn'))} {_ratio(row, 'torch')}"
        f"{_ratio(row, 'numpy')}{_ratio(row, 'sklearn')[1:]} {roof}  {row['target']}"
    )
