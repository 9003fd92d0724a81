"""Kernel benchmarks: every operation x shape x forward / forward+backward x float32 / float64.

The grid comes from ``fastnorm._bench.kernel_cases`` (``OP_SHAPES``, ``SHAPE_KINDS``), the module
whose ``CASES`` table ``python -m fastnorm bench`` prints; ``KernelTable*`` times that table's rows
themselves. Shape labels carry the profile's actual shape. Cells an operation does not have
(instance norm of a 2-D input, ...) are skipped in ``setup`` and show as n/a.
"""

import numba

from fastnorm._bench import kernel_cases as kc
from fastnorm.functional import set_num_threads

from ._common import PROFILE, QUICK, interleaved_min, torch_threads, warm_up
from ._suites import case_table, make_time_class, make_track_class, peer_unit


def _label(kind):
    if kind == "out-of-cache":
        return "out-of-cache 256 MB (n, 1024)"
    layout = " channels-last" if kind == "nhwc" else ""
    return f"{kind} {kc.grid_shape(kind, 'float32', PROFILE)}{layout}"


KINDS = {_label(k): k for k in kc.SHAPE_KINDS if kc.grid_shape(k, "float32", PROFILE)}
GRID_PARAMS = [list(kc.OP_SHAPES), list(KINDS), list(kc.MODES), list(kc.DTYPES)]
GRID_NAMES = ["op", "shape", "mode", "dtype"]


def _grid_case(op, shape, mode, dtype):
    return kc.grid_case(op, KINDS[shape], mode, dtype, PROFILE)


KernelGrid = make_time_class("KernelGrid", _grid_case, GRID_PARAMS, GRID_NAMES)
KernelGridTrack = make_track_class(
    "KernelGridTrack",
    _grid_case,
    GRID_PARAMS,
    GRID_NAMES,
    peers=("numpy", "torch"),
    preallocated=("torch",),
)

# the CLI's table: in the quick profile only its rows of at most 8 MB moved (renorm, ghost batch
# norm and batch norm at (128, 512)), the large rows are the grid's full profile
TABLE = case_table(kc.CASES, max_bytes=8 << 20 if QUICK else None)
TABLE_PARAMS = [list(TABLE)]
KernelTable = make_time_class("KernelTable", TABLE.get, TABLE_PARAMS, ["case"])
KernelTableTrack = make_track_class(
    "KernelTableTrack",
    TABLE.get,
    TABLE_PARAMS,
    ["case"],
    peers=("numpy", "torch"),
    preallocated=("torch",),
)

# thread scaling: forward+backward of each operation on its main CNN / MLP shape, float32
MAIN = {
    "batch": "nchw",
    "group": "nchw",
    "instance": "nchw",
    "layer": "mlp-large",
    "rms": "mlp-large",
}
ALL_THREADS = numba.config.NUMBA_NUM_THREADS


class ThreadScaling:
    """fastnorm with 1 thread and with all of Numba's threads (PyTorch gets the same count)."""

    params = [list(MAIN), sorted({1, ALL_THREADS})]
    param_names = ["op", "threads"]
    timeout = 600
    number = 1
    repeat = (3, 7, 30.0)

    def setup(self, op, threads):
        case = kc.grid_case(op, MAIN[op], "fwd+bwd", "float32", PROFILE)
        self.previous = set_num_threads(threads), torch_threads(threads)
        self.impls = {lib: fn for lib, fn in case.make().items() if fn is not None}
        warm_up(self.impls)

    def teardown(self, op, threads):
        set_num_threads(self.previous[0])
        if self.previous[1] is not None:
            torch_threads(self.previous[1])

    def time_fastnorm(self, op, threads):
        self.impls["fastnorm"]()

    def track_vs_torch(self, op, threads):
        if "torch" not in self.impls:
            return float("nan")
        best = interleaved_min({"fastnorm": self.impls["fastnorm"], "torch": self.impls["torch"]})
        return best["torch"] / best["fastnorm"]

    track_vs_torch.unit = peer_unit("torch")
