"""fastnorm against an earlier commit of itself and PyTorch, in one interleaved run.

    python -m benchmarks.before_after --before /path/to/old/checkout [--threads 1 --threads 2]
        [-k FILTER] [--cold-start] [--json run.json]

The earlier checkout's ``fastnorm`` package is copied as ``fastnorm_before`` (its imports are
relative) and imported next to the current one, so that both are timed in the same process,
interleaved with PyTorch (A, B, C, A, B, C, ...): a slow spell of a shared machine lands on all
of them. Rows: the bench's kernel table, the small shapes of the speed issue (fwd+bwd on
(128, 512) and (64, 768), one forward on (32, 64) for the per-call overhead), batch norm at 2^17
features and on small feature maps, batch norm's eval-mode forward, and the MLP rows.
``--cold-start`` also times first calls on an empty compile cache in fresh processes, the two
versions alternating.
"""

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import fastnorm
from fastnorm._bench import kernel_cases, mlp_cases, runner

# (name, op, channel axis) of the small-shape rows
SMALL_OPS = (
    ("batch_norm", "batch", 1),
    ("layer_norm", "layer", None),
    ("group_norm 32", "group", 1),
    ("rms_norm", "rms", None),
)
SMALL = (
    [
        (f"{name} fwd+bwd {shape}", op, shape, "fwd+bwd", axis)
        for shape in ((128, 512), (64, 768))
        for name, op, axis in SMALL_OPS
    ]
    + [
        (f"{name} fwd (32, 64), per call", op, (32, 64), "fwd", axis)
        for name, op, axis in SMALL_OPS
    ]
    + [
        ("batch_norm fwd+bwd (256, 512)", "batch", (256, 512), "fwd+bwd", 1),
        ("batch_norm fwd+bwd (32, 64, 8, 8)", "batch", (32, 64, 8, 8), "fwd+bwd", 1),
    ]
)
# batch norm in eval mode (running statistics from one training step), nn.BatchNorm.forward
EVAL_ROWS = {
    "batch_norm eval fwd (32, 64), per call": (32, 64),
    "batch_norm eval fwd (4096, 1024)": (4096, 1024),
}
MLP_ROWS = (
    "MLP epoch 50k x 256, (512, 512) BN, Adam, batch 128",
    "MLP epoch 20k x 256, (128, 128) BN, batch 32",
    "MLP predict_proba 50k x 256, (512, 512) BN",
    "MLP predict_proba 64 x 256, (512, 512) BN",
)
LIBS = ("before", "after", "torch", "before out=", "after out=", "torch out=")

FIRST_CALLS = {
    "first batch_norm fwd+bwd": (
        "import numpy as np, {pkg}.functional as F\n"
        "x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)\n"
        "y, ctx = F.batch_norm_forward(x, training=True)\n"
        "ctx.backward(np.ones_like(y))\n"
    ),
    "first MLPClassifier(BN).fit": (
        "import numpy as np\n"
        "from {pkg}.neural_network import MLPClassifier\n"
        "x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)\n"
        "MLPClassifier(hidden_layer_sizes=(16,), normalization='batch', max_iter=2)"
        ".fit(x, x[:, 0] > 0)\n"
    ),
}


def import_before(checkout, cache_root):
    """The checkout's package imported as ``fastnorm_before`` (copied once per checkout, so its
    Numba cache survives between runs)."""
    commit = subprocess.run(
        ["git", "-C", checkout, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    root = os.path.join(cache_root, commit[:12])
    target = os.path.join(root, "fastnorm_before")
    if not os.path.isdir(target):
        shutil.copytree(
            os.path.join(checkout, "fastnorm"),
            target,
            ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"),
        )
    sys.path.insert(0, root)
    import fastnorm_before._bench.kernel_cases as before_kernels
    import fastnorm_before._bench.mlp_cases as before_mlp

    return commit, root, before_kernels, before_mlp


def paired_cases(before_kernels, before_mlp):
    """(name, make_after, make_before) for every row both versions can build."""
    rows = [row[:5] for row in kernel_cases.TABLE] + SMALL
    pairs = []
    for name, op, shape, mode, axis in rows:
        if op in kernel_cases.FASTNORM_ONLY:
            continue
        after = kernel_cases.make_case(name, op, shape, mode, axis)
        before = before_kernels.make_case(name, op, shape, mode, axis)
        pairs.append((name, after.make, before.make))
    before_package = importlib.import_module(before_kernels.__name__.split(".")[0])
    for name, shape in EVAL_ROWS.items():
        pairs.append((name, _eval_make(fastnorm, shape, True), _eval_make(before_package, shape)))
    old = {c.name: c for c in before_mlp.CASES}
    for case in mlp_cases.CASES:
        if case.name in MLP_ROWS and case.name in old:
            pairs.append((case.name, case.make, old[case.name].make))
    return pairs


def _eval_make(package, shape, with_torch=False):
    """``make`` of an eval-mode batch-norm row: ``package``'s layer (and PyTorch's functional
    call on the same running statistics)."""

    def make():
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        layer = package.nn.BatchNorm(shape[1])
        layer.forward(x)  # one training step: running statistics that are not the defaults
        layer.eval()

        def run():
            layer.forward(x)

        run.layer = layer  # for the tests
        impls = {"fastnorm": run}
        torch = sys.modules.get("torch") if with_torch else None
        if torch is not None:
            stats = [torch.from_numpy(b.copy()) for b in (layer.running_mean, layer.running_var)]
            params = [torch.from_numpy(layer.params[k].copy()) for k in ("weight", "bias")]
            xt = torch.from_numpy(x)

            def torch_eval():
                with torch.no_grad():
                    torch.nn.functional.batch_norm(xt, *stats, *params, training=False)

            impls["torch"] = torch_eval
        return impls

    return make


def measure_pair(make_after, make_before, repeat):
    after, before = make_after(), make_before()
    impls = {
        "before": before.get("fastnorm"),
        "after": after.get("fastnorm"),
        "torch": after.get("torch"),
        "before out=": before.get("fastnorm out="),
        "after out=": after.get("fastnorm out="),
        "torch out=": after.get("torch out="),
    }
    impls = {k: v for k, v in impls.items() if v is not None}
    return runner.summarize(runner.interleaved_samples(impls, repeat))


def _ms(stats, lib):
    if lib not in stats:
        return f"{'-':>18}"
    s = stats[lib]
    return f"{s['min'] * 1e3:8.3f} ({s['median'] * 1e3:7.3f}){'~' if s['noisy'] else ' '}"


def _ratio(stats, lib, base, width=9):
    value = runner.ratio(stats, lib, base)
    return (
        f"{'~' if value is None and lib in stats else '-':>{width}}"
        if value is None
        else (f"{value:{width - 1}.2f}x")
    )


def format_row(name, stats):
    return (
        f"{name:<52} {_ms(stats, 'before')}{_ms(stats, 'after')}{_ms(stats, 'torch')}"
        f"{_ratio(stats, 'before', 'after')}{_ratio(stats, 'torch', 'after')}"
        f"{_ratio(stats, 'torch out=', 'after out=', 11)}"
    )


HEADER = (
    f"{'case':<52} {'before':>17} {'after':>17} {'torch':>17} {'speed-up':>9} {'torch/fn':>9}"
    f" {'out= t/fn':>10}"
)


def cold_start(root, repeat):
    """Seconds of each first call on an empty Numba cache, before and after alternating."""
    results = {}
    for name, code in FIRST_CALLS.items():
        times = {"before": [], "after": []}
        for _ in range(repeat):
            for lib, pkg in (("before", "fastnorm_before"), ("after", "fastnorm")):
                with tempfile.TemporaryDirectory() as cache:
                    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
                    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
                    script = (
                        f"import time\nimport {pkg}\nstart = time.perf_counter()\n"
                        + code.format(pkg=pkg)
                        + "print(time.perf_counter() - start)\n"
                    )
                    out = subprocess.run(
                        [sys.executable, "-c", script], env=env, capture_output=True, text=True
                    )
                    if out.returncode:
                        raise RuntimeError(out.stderr)
                    times[lib].append(float(out.stdout.split()[-1]))
        results[name] = times
        print(
            f"{name:<32} before {min(times['before']):6.2f} s (max {max(times['before']):.2f})"
            f"   after {min(times['after']):6.2f} s (max {max(times['after']):.2f})"
        )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="a git checkout of the earlier commit")
    parser.add_argument("--threads", type=int, action="append", help="repeatable; default 1, 2")
    parser.add_argument("-k", "--filter", default="", help="only rows whose name contains this")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cold-start", action="store_true")
    parser.add_argument("--json", help="write every row's statistics to this file")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.before, "fastnorm", "__init__.py")):
        parser.error(f"argument --before: {args.before!r} is not a checkout of fastnorm")
    torch = runner.import_peers_first()
    cache_root = os.path.join(tempfile.gettempdir(), "fastnorm-before")
    commit, root, before_kernels, before_mlp = import_before(args.before, cache_root)
    pairs = [p for p in paired_cases(before_kernels, before_mlp) if args.filter in p[0]]
    print(f"before: {commit}; times in ms, min (median) of interleaved repetitions")
    record = {"before": commit, "rows": {}}
    if pairs:  # untimed: the allocator settles (see runner.run)
        measure_pair(pairs[0][1], pairs[0][2], 1)
    for n in args.threads or [1, 2]:
        print(f"\n{n} thread{'s' if n > 1 else ''}\n{HEADER}")
        with runner.thread_count(n, torch):
            for name, make_after, make_before in pairs:
                stats = measure_pair(make_after, make_before, args.repeat)
                record["rows"].setdefault(str(n), {})[name] = stats
                print(format_row(name, stats), flush=True)
    if args.cold_start:
        print("\nfirst calls on an empty Numba cache (fresh processes, alternating)")
        record["cold_start"] = cold_start(root, 2)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
