"""
Exact statistics of an array larger than memory, on a Dask cluster
==================================================================

``BatchNormalizer.fit`` of a Dask array computes each chunk's (count, mean, M2) with fastnorm's
kernels in the worker that generates or holds the chunk, and merges the chunks' states with the
compensated merge of ``partial_fit`` in a tree reduction: only the state, 48 bytes per feature,
leaves a worker. This example fits a 32 GiB array (more than this machine's memory), generated
lazily with a fixed seed, on a local cluster of 1 and then 2 single-threaded worker processes. It
checks the statistics against the distribution they were drawn from and against an in-memory fit
of one chunk, shows that the transform stays lazy, times dask-ml's ``StandardScaler.fit`` on a
smaller array for comparison, and draws the throughput per worker.

Run ``python examples/plot_dask_statistics.py`` (about 3 minutes here; needs
``pip install "fastnorm[dask]"``, and dask-ml for the comparison); ``FASTNORM_EXAMPLE_QUICK=1``
runs a reduced version (a 1 GiB array) for a quick check.
"""

import os
import time

import dask.array as da
import distributed
import numpy as np

from fastnorm import BatchNormalizer

QUICK = os.environ.get("FASTNORM_EXAMPLE_QUICK") == "1"
VIRTUAL_GIB = 1 if QUICK else 32
DASK_ML_GIB = 0.25 if QUICK else 4
N_FEATURES = 256
CHUNK_ROWS = 16384 if QUICK else 65536  # 32 or 128 MiB chunks
WORKERS = (1, 2)
LOC = np.linspace(-1000.0, 1000.0, N_FEATURES)  # each feature its own centre and scale
SCALE = np.geomspace(1e-3, 1e3, N_FEATURES)


def lazy_array(gib, seed):
    """Uniform on [LOC, LOC + SCALE) per feature, generated chunk by chunk where it is used."""
    rows = int(gib * 2**30) // (8 * N_FEATURES)
    U = da.random.default_rng(seed).random((rows, N_FEATURES), chunks=(CHUNK_ROWS, N_FEATURES))
    return U * SCALE + LOC


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main():
    X = lazy_array(VIRTUAL_GIB, seed=0)
    X_small = lazy_array(DASK_ML_GIB, seed=1)
    print(
        f"X: {X.shape[0]:,} x {X.shape[1]} float64 = {X.nbytes / 2**30:.0f} GiB in "
        f"{X.numblocks[0]} chunks of {CHUNK_ROWS * N_FEATURES * 8 / 2**20:.0f} MiB (lazy)"
    )
    try:
        from dask_ml.preprocessing import StandardScaler
    except ImportError:
        StandardScaler = None
        print("dask-ml is not installed: no comparison")
    seconds = {}
    for n_workers in WORKERS:
        with (
            distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster),
        ):
            BatchNormalizer().fit(X[:8])  # loads the compiled kernels in the workers
            bn, seconds["fastnorm", n_workers] = timed(BatchNormalizer().fit, X)
            if StandardScaler is not None:
                _, seconds["dask-ml", n_workers] = timed(StandardScaler().fit, X_small)
            # the transform is a lazy Dask array with X's chunks: nothing is computed here
            Z = bn.transform(X)
            first = Z.blocks[0].compute()
        print(f"{n_workers} worker(s): fastnorm {seconds['fastnorm', n_workers]:.1f} s")

    # uniform on [loc, loc + scale): mean loc + scale / 2, variance scale**2 / 12
    n = X.shape[0]
    z_mean = (bn.mean_ - (LOC + SCALE / 2)) / (SCALE * np.sqrt(1 / 12 / n))
    print(
        f"n_samples_seen_ = {bn.n_samples_seen_:,}; |mean_ - expected| / standard error: "
        f"max {np.abs(z_mean).max():.2f}"
    )
    print(
        f"var_ / (scale**2 / 12): min {np.min(bn.var_ / (SCALE**2 / 12)):.5f}, "
        f"max {np.max(bn.var_ / (SCALE**2 / 12)):.5f}"
    )
    chunk = X.blocks[0].compute()
    on_chunk = BatchNormalizer().fit(da.from_array(chunk, chunks=(4096, 64)))
    in_memory = BatchNormalizer().fit(chunk)
    print(
        f"one chunk, Dask (4096 x 64 sub-chunks) vs in memory: max relative difference of var_ "
        f"{np.max(np.abs(on_chunk.var_ / in_memory.var_ - 1)):.1e}"
    )
    print(
        f"transform: {type(Z).__name__} with X's chunks: {Z.chunks == X.chunks}; first chunk's "
        f"column means within {np.abs(first.mean(axis=0)).max():.3f} of 0"
    )

    print(f"\n{'':10s}{'workers':>8s}{'GiB':>6s}{'seconds':>9s}{'GiB/s':>8s}{'per worker':>12s}")
    rates = {}
    for (name, k), s in seconds.items():
        gib = VIRTUAL_GIB if name == "fastnorm" else DASK_ML_GIB
        rates[name, k] = gib / s / k
        print(f"{name:10s}{k:8d}{gib:6g}{s:9.1f}{gib / s:8.2f}{rates[name, k]:12.2f}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return seconds
    names = sorted({name for name, _ in rates})
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(WORKERS)
    for i, k in enumerate(WORKERS):
        ax.bar(
            np.arange(len(names)) + i * width,
            [rates[name, k] for name in names],
            width,
            label=f"{k} worker(s)",
        )
    ax.set_xticks(np.arange(len(names)) + width * (len(WORKERS) - 1) / 2, names)
    ax.set_ylabel("GiB/s per worker (chunks generated in the workers)")
    ax.set_title(f"statistics of a lazily generated {VIRTUAL_GIB} GiB array")
    ax.legend()
    fig.tight_layout()
    plt.show()  # sphinx-gallery collects the figure; no file is written
    return seconds


if __name__ == "__main__":
    main()
