"""Every public entry point against every kind of bad input, as one table.

Each row is ``(id, call, exception type, regex)``: ``call()`` must raise exactly that kind of
error (a ``TypeError`` for a value of the wrong kind, a ``ValueError`` for one out of range or of
the wrong shape, scikit-learn's ``NotFittedError`` before ``fit``, ``RuntimeError`` for
``backward`` before ``forward``) with a message that names the argument and says what is
accepted: never a raw Numba/NumPy error, an ``IndexError``/``AttributeError``/``KeyError``, a
crash or a hang. The id starts with the entry-point family (``functional/``, ``nn/``,
``optim/``, ``loss/``, ``preprocessing/``, ``mlp/``, ``cli/``); a new entry point is new rows.

Below the table: calls that must *not* fail (float16 for the transformers), and checks that a
bad call leaves fitted state untouched.
"""

import contextlib
import copy
import io
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from fastnorm import (
    BatchNormalizer,
    GroupNormalizer,
    InstanceNormalizer,
    LayerNormalizer,
    MLPClassifier,
    MLPRegressor,
)
from fastnorm import functional as F
from fastnorm.__main__ import main
from fastnorm.nn import (
    GELU,
    SGD,
    Adam,
    AdamW,
    BatchNorm,
    CrossEntropyLoss,
    Dropout,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    Linear,
    MSELoss,
    ReLU,
    RMSNorm,
    Sequential,
)

CASES = []


def case(case_id, call, exc, match):
    CASES.append(pytest.param(call, exc, match, id=case_id))


X4 = np.random.default_rng(0).standard_normal((4, 3, 5))  # (N, C, L): 3 channels
C = 3
BAD_DTYPES = {
    "complex": np.complex128,
    "object": object,
    "str": "U3",
    "bool": bool,
    "float16": np.float16,
}
DTYPE_MSG = r"\binput\b.*dtype.*float32 or float64"
GRAD_MSG = r"grad_out must be an? .*array.*shape \(4, 3, 5\)"


# ------------------------------------------------------------------------------- functional


def trailing(x):
    return np.shape(x)[-1:] or 5


OPS = {
    "batch_norm": lambda x, **kw: F.batch_norm(x, None, None, training=True, **kw),
    "layer_norm": lambda x, **kw: F.layer_norm(x, trailing(x), **kw),
    "group_norm": lambda x, **kw: F.group_norm(x, 1, **kw),
    "instance_norm": lambda x, **kw: F.instance_norm(x, **kw),
    "rms_norm": lambda x, **kw: F.rms_norm(x, trailing(x), **kw),
}
FORWARDS = {
    "batch_norm_forward": lambda x, **kw: F.batch_norm_forward(x, None, None, training=True, **kw),
    "layer_norm_forward": lambda x, **kw: F.layer_norm_forward(x, trailing(x), **kw),
    "group_norm_forward": lambda x, **kw: F.group_norm_forward(x, 1, **kw),
    "instance_norm_forward": lambda x, **kw: F.instance_norm_forward(x, **kw),
    "rms_norm_forward": lambda x, **kw: F.rms_norm_forward(x, trailing(x), **kw),
}

for name, op in {**OPS, **FORWARDS}.items():
    fam = f"functional/{name}"
    for dname, dtype in BAD_DTYPES.items():
        case(
            f"{fam}: x {dname}",
            lambda op=op, dtype=dtype: op(X4.astype(dtype)),
            TypeError,
            DTYPE_MSG,
        )
    case(f"{fam}: x None", lambda op=op: op(None), TypeError, DTYPE_MSG)
    case(f"{fam}: x 'abc'", lambda op=op: op("abc"), TypeError, DTYPE_MSG)
    ndim_bad = np.float64(1.0) if "layer" in name or "rms" in name else np.ones(5)
    case(
        f"{fam}: x too few dims",
        lambda op=op, x=ndim_bad: op(x),
        ValueError,
        r"\binput\b must have at least [12] dimensions",
    )
    for bad, exc in (("1e-5", TypeError), (-1.0, ValueError), (np.nan, ValueError)):
        case(
            f"{fam}: eps={bad!r}",
            lambda op=op, bad=bad: op(X4, eps=bad),
            exc,
            r"\beps must be .*real number",
        )
    case(f"{fam}: eps=True", lambda op=op: op(X4, eps=True), TypeError, r"\beps must be")
    case(
        f"{fam}: out wrong shape",
        lambda op=op: op(X4, out=np.empty((4, 3))),
        ValueError,
        r"\bout must have shape \(4, 3, 5\) and dtype float64",
    )
    case(
        f"{fam}: out wrong dtype",
        lambda op=op: op(X4, out=np.empty((4, 3, 5), np.float32)),
        ValueError,
        r"\bout must have shape \(4, 3, 5\) and dtype float64",
    )
    case(
        f"{fam}: out a list",
        lambda op=op: op(X4, out=X4.tolist()),
        TypeError,
        r"\bout must be a NumPy array",
    )
    case(
        f"{fam}: out read-only",
        lambda op=op: op(X4, out=np.broadcast_to(np.empty(5), (4, 3, 5))),
        ValueError,
        r"\bout is read-only",
    )

for name, op in {"batch_norm": F.batch_norm, "instance_norm": F.instance_norm}.items():
    fam = f"functional/{name}"
    train = {"training": True} if name == "batch_norm" else {}
    for arg in ("weight", "bias", "running_mean", "running_var"):
        kw = {"running_mean": np.zeros(C), "running_var": np.ones(C), **train}
        case(
            f"{fam}: {arg} wrong shape",
            lambda op=op, kw=kw, arg=arg: op(X4, **{**kw, arg: np.ones(C + 1)}),
            ValueError,
            rf"\b{arg} must have shape \(num_features,\) = \(3,\)",
        )
        case(
            f"{fam}: {arg} str dtype",
            lambda op=op, kw=kw, arg=arg: op(X4, **{**kw, arg: np.array(["a"] * C)}),
            TypeError,
            rf"\b{arg} must be (a real-valued array|float32 or float64)",
        )
    for arg in ("running_mean", "running_var"):
        case(
            f"{fam}: {arg} a list",
            lambda op=op, arg=arg, train=train: op(
                X4,
                **{"running_mean": np.zeros(C), "running_var": np.ones(C), arg: [0.0] * C},
                **train,
            ),
            TypeError,
            rf"\b{arg} must be a NumPy array",
        )
    case(
        f"{fam}: running_mean without running_var",
        lambda op=op, train=train: op(X4, np.zeros(C), None, **train),
        ValueError,
        r"running_mean and running_var must be given together",
    )
    for bad, exc in (("0.1", TypeError), (1.5, ValueError), (np.nan, ValueError)):
        case(
            f"{fam}: momentum={bad!r}",
            lambda op=op, bad=bad, train=train: op(
                X4, np.zeros(C), np.ones(C), momentum=bad, **train
            ),
            exc,
            r"\bmomentum must be a real number in \[0.0, 1.0\]",
        )
    for bad, exc in (("1", TypeError), (1.0, TypeError), (7, ValueError)):
        case(
            f"{fam}: axis={bad!r}",
            lambda op=op, bad=bad, train=train: op(X4, axis=bad, **train),
            exc,
            r"\baxis\b",
        )
    flag = "training" if name == "batch_norm" else "use_input_stats"
    case(
        f"{fam}: {flag}='no'",
        lambda op=op, flag=flag: op(X4, np.zeros(C), np.ones(C), **{flag: "no"}),
        TypeError,
        rf"\b{flag} must be a bool",
    )
case(
    "functional/batch_norm: eval without running stats",
    lambda: F.batch_norm(X4, None, None, training=False),
    ValueError,
    r"running_mean and running_var are required when training=False",
)
case(
    "functional/batch_norm: one value per channel",
    lambda: F.batch_norm(np.ones((1, 3)), None, None, training=True),
    ValueError,
    r"Expected more than 1 value per channel when training",
)
case(
    "functional/instance_norm: use_input_stats=False without running stats",
    lambda: F.instance_norm(X4, use_input_stats=False),
    ValueError,
    r"running_mean and running_var are required when use_input_stats=False",
)
case(
    "functional/instance_norm: one spatial element",
    lambda: F.instance_norm(np.ones((4, 3, 1))),
    ValueError,
    r"Expected more than 1 spatial element",
)

for bad, exc, msg in (
    ("2", TypeError, r"\bnum_groups must be an integer >= 1"),
    (1.0, TypeError, r"\bnum_groups must be an integer >= 1"),
    (0, ValueError, r"\bnum_groups=0 must be a positive divisor of the number of channels \(3\)"),
    (2, ValueError, r"\bnum_groups=2 must be a positive divisor of the number of channels \(3\)"),
    (None, TypeError, r"\bnum_groups must be an integer >= 1"),
):
    case(
        f"functional/group_norm: num_groups={bad!r}",
        lambda bad=bad: F.group_norm(X4, bad),
        exc,
        msg,
    )
for arg in ("weight", "bias"):
    case(
        f"functional/group_norm: {arg} wrong shape",
        lambda arg=arg: F.group_norm(X4, 1, **{arg: np.ones(2)}),
        ValueError,
        rf"\b{arg} must have shape \(num_channels,\) = \(3,\)",
    )
case(
    "functional/group_norm: axis=0",
    lambda: F.group_norm(X4, 1, axis=0),
    ValueError,
    r"\baxis must be 1 \(channels first\) or -1",
)

for name, op in {"layer_norm": F.layer_norm, "rms_norm": F.rms_norm}.items():
    fam = f"functional/{name}"
    for bad, exc in (
        ("5", TypeError),
        ("abc", TypeError),
        ((5.5,), TypeError),
        (5.0, TypeError),
        (None, TypeError),
        ((True,), TypeError),
        ((), ValueError),
        ((4,), ValueError),
        ((2, 3, 5, 5), ValueError),
        ((0,), ValueError),
    ):
        case(
            f"{fam}: normalized_shape={bad!r}",
            lambda op=op, bad=bad: op(X4, bad),
            exc,
            r"\bnormalized_shape\b.*(int|trailing dimensions|at least one)",
        )
    case(
        f"{fam}: weight wrong shape",
        lambda op=op: op(X4, (5,), np.ones(4)),
        ValueError,
        r"\bweight must have shape normalized_shape = \(5,\)",
    )
    case(
        f"{fam}: weight complex",
        lambda op=op: op(X4, (5,), np.ones(5, complex)),
        TypeError,
        r"\bweight must be a real-valued array",
    )
case(
    "functional/rms_norm: eps='x'",
    lambda: F.rms_norm(X4, (5,), eps="x"),
    TypeError,
    r"\beps must be None or a real number",
)


# backward of every context type, and the public spellings
def _contexts():
    x_cols = np.random.default_rng(1).standard_normal((4, 3))
    x4 = np.random.default_rng(1).standard_normal((4, 3, 5))
    return {
        "batch_norm columns": (F.batch_norm_forward(x_cols, None, None, training=True), (4, 3)),
        "batch_norm runs": (F.batch_norm_forward(x4, None, None, training=True), (4, 3, 5)),
        "group_norm": (F.group_norm_forward(x4, 1), (4, 3, 5)),
        "instance_norm eval": (
            F.instance_norm_forward(x4, np.zeros(3), np.ones(3), use_input_stats=False),
            (4, 3, 5),
        ),
        "layer_norm": (F.layer_norm_forward(x4, (5,)), (4, 3, 5)),
        "rms_norm": (F.rms_norm_forward(x4, (5,)), (4, 3, 5)),
    }


CONTEXT_NAMES = list(_contexts())


def ctx_backward(which, grad, spelling="ctx"):
    (_, ctx), shape = _contexts()[which]
    g = grad(shape) if callable(grad) else grad
    if spelling == "ctx":
        return ctx.backward(g)
    rows = which in ("layer_norm", "rms_norm")
    return (F.rows_norm_backward if rows else F.channel_norm_backward)(ctx, g)


for which in CONTEXT_NAMES:
    shape_re = r"\(4, 3(, 5)?\)"
    for spelling in ("ctx", "function"):
        fam = f"functional/{'ctx.backward' if spelling == 'ctx' else 'norm_backward'}"
        for gname, grad, exc in (
            ("None", None, TypeError),
            ("wrong shape", lambda s: np.ones(s[:-1]), ValueError),
            ("complex", lambda s: np.ones(s, complex), TypeError),
            ("str", lambda s: np.full(s, "a"), TypeError),
            ("bool", lambda s: np.ones(s, bool), TypeError),
            ("scalar", 1.0, ValueError),
        ):
            case(
                f"{fam}: {which} grad_out {gname}",
                lambda which=which, grad=grad, spelling=spelling: ctx_backward(
                    which, grad, spelling
                ),
                exc,
                rf"grad_out must be an? .*array.*shape {shape_re}",
            )
for fn in (F.channel_norm_backward, F.rows_norm_backward):
    case(
        f"functional/norm_backward: {fn.__name__} ctx None",
        lambda fn=fn: fn(None, np.ones((4, 3))),
        TypeError,
        r"\bctx must be a context returned by .*_forward",
    )
case(
    "functional/norm_backward: channel_norm_backward of a layer_norm context",
    lambda: F.channel_norm_backward(F.layer_norm_forward(X4, (5,))[1], X4),
    TypeError,
    r"\bctx must be a context returned by batch_norm_forward, group_norm_forward",
)
case(
    "functional/norm_backward: rows_norm_backward of a batch_norm context",
    lambda: F.rows_norm_backward(F.batch_norm_forward(X4, None, None, training=True)[1], X4),
    TypeError,
    r"\bctx must be a context returned by layer_norm_forward or rms_norm_forward",
)


# ------------------------------------------------------------------------------- nn layers


def forwarded(layer, x=None):
    layer.forward(X4.astype(np.float32) if x is None else x)
    return layer


NORM_LAYERS = {
    "BatchNorm": lambda **kw: BatchNorm(3, **kw),
    "InstanceNorm": lambda **kw: InstanceNorm(3, **kw),
    "GroupNorm": lambda **kw: GroupNorm(1, 3, **kw),
    "LayerNorm": lambda **kw: LayerNorm(5, **kw),
    "RMSNorm": lambda **kw: RMSNorm(5, **kw),
}
AFFINE_ARG = {"LayerNorm": "elementwise_affine", "RMSNorm": "elementwise_affine"}

for name, make in NORM_LAYERS.items():
    fam = f"nn/{name}"
    for dname, dtype in BAD_DTYPES.items():
        case(
            f"{fam}.forward: x {dname}",
            lambda make=make, dtype=dtype: make().forward(X4.astype(dtype)),
            TypeError,
            DTYPE_MSG,
        )
    case(f"{fam}.forward: x None", lambda make=make: make().forward(None), TypeError, DTYPE_MSG)
    case(
        f"{fam}.backward before forward",
        lambda make=make: make().backward(np.ones((4, 3, 5), np.float32)),
        RuntimeError,
        r"backward\(\) called before forward\(\)",
    )
    for gname, grad, exc in (
        ("None", None, TypeError),
        ("wrong shape", np.ones((4, 3)), ValueError),
        ("complex", np.ones((4, 3, 5), complex), TypeError),
        ("str", np.full((4, 3, 5), "a"), TypeError),
        ("list of str", [["a"]], TypeError),
    ):
        case(
            f"{fam}.backward: grad_out {gname}",
            lambda make=make, grad=grad: forwarded(make()).backward(grad),
            exc,
            GRAD_MSG,
        )
    for bad, exc in (("1e-5", TypeError), (-1.0, ValueError), (np.inf, ValueError)):
        case(f"{fam}(eps={bad!r})", lambda make=make, bad=bad: make(eps=bad), exc, r"\beps must be")
    for bad in (np.float16, np.int64, "abc", complex):
        case(
            f"{fam}(dtype={bad!r})",
            lambda make=make, bad=bad: make(dtype=bad),
            TypeError,
            r"\bdtype must be float32 or float64",
        )
    affine = AFFINE_ARG.get(name, "affine")
    case(
        f"{fam}({affine}='yes')",
        lambda make=make, affine=affine: make(**{affine: "yes"}),
        TypeError,
        rf"\b{affine} must be a bool",
    )

for name, cls in {"BatchNorm": BatchNorm, "InstanceNorm": InstanceNorm}.items():
    fam = f"nn/{name}"
    for bad, exc in (("3", TypeError), (3.0, TypeError), (0, ValueError), (True, TypeError)):
        case(
            f"{fam}(num_features={bad!r})",
            lambda cls=cls, bad=bad: cls(bad),
            exc,
            r"\bnum_features must be a.* integer",
        )
    for bad, exc in (("0.1", TypeError), (2, ValueError), (-0.1, ValueError)):
        case(
            f"{fam}(momentum={bad!r})",
            lambda cls=cls, bad=bad: cls(3, momentum=bad),
            exc,
            r"\bmomentum must be None or a real number in \[0.0, 1.0\]",
        )
    case(
        f"{fam}(track_running_stats='yes')",
        lambda cls=cls: cls(3, track_running_stats="yes"),
        TypeError,
        r"\btrack_running_stats must be a bool",
    )
    case(
        f"{fam}(axis='1')",
        lambda cls=cls: cls(3, axis="1"),
        TypeError,
        r"\baxis must be an integer",
    )
    for affine in (True, False):
        case(
            f"{fam}.forward: 4 channels, affine={affine}",
            lambda cls=cls, affine=affine: cls(3, affine=affine).forward(np.ones((4, 4, 5))),
            ValueError,
            r"got an input with 4 channels.*\bnum_features=3 channels are expected",
        )
    case(
        f"{fam}.forward: 1-D input",
        lambda cls=cls: cls(3).forward(np.ones(3)),
        ValueError,
        r"\binput must have at least 2 dimensions",
    )
case(
    "nn/InstanceNorm(axis=0)",
    lambda: InstanceNorm(3, axis=0),
    ValueError,
    r"\baxis must be 1 \(channels first\) or -1",
)
case(
    "nn/BatchNorm.forward: eval without running stats, one sample",
    lambda: BatchNorm(3).forward(np.ones((1, 3))),
    ValueError,
    r"Expected more than 1 value per channel when training",
)

for bad, exc, msg in (
    ("2", TypeError, r"\bnum_groups must be an integer >= 1"),
    (0, ValueError, r"\bnum_groups must be an integer >= 1"),
    (4, ValueError, r"\bnum_groups=4 must divide num_channels=6"),
):
    case(f"nn/GroupNorm(num_groups={bad!r}, 6)", lambda bad=bad: GroupNorm(bad, 6), exc, msg)
for bad, exc in (("6", TypeError), (6.0, TypeError), (-6, ValueError)):
    case(
        f"nn/GroupNorm(2, num_channels={bad!r})",
        lambda bad=bad: GroupNorm(2, bad),
        exc,
        r"\bnum_channels must be an integer >= 1",
    )
case("nn/GroupNorm(axis=2)", lambda: GroupNorm(1, 3, axis=2), ValueError, r"\baxis must be 1")
for affine in (True, False):
    case(
        f"nn/GroupNorm.forward: 4 channels, affine={affine}",
        lambda affine=affine: GroupNorm(2, 6, affine=affine).forward(np.ones((2, 4, 5))),
        ValueError,
        r"\bnum_channels=6\b.*\b4 channels\b",
    )
    case(
        f"nn/GroupNorm.forward: channels last, 4 channels, affine={affine}",
        lambda affine=affine: GroupNorm(2, 6, affine=affine, axis=-1).forward(np.ones((2, 5, 4))),
        ValueError,
        r"\bnum_channels=6\b.*\b4 channels\b",
    )
case(
    "nn/GroupNorm.forward: 1-D input",
    lambda: GroupNorm(1, 3).forward(np.ones(3)),
    ValueError,
    r"\binput must have at least 2 dimensions",
)

for name, cls in {"LayerNorm": LayerNorm, "RMSNorm": RMSNorm}.items():
    fam = f"nn/{name}"
    for bad, exc in (("5", TypeError), ((5.5,), TypeError), ((), ValueError), ((0,), ValueError)):
        case(
            f"{fam}(normalized_shape={bad!r})",
            lambda cls=cls, bad=bad: cls(bad),
            exc,
            r"\bnormalized_shape must be a positive integer or a non-empty sequence",
        )
    case(
        f"{fam}.forward: trailing dims mismatch",
        lambda cls=cls: cls(4).forward(X4),
        ValueError,
        r"\bnormalized_shape=\(4,\) must equal the trailing dimensions",
    )
    case(
        f"{fam}.forward: 0-D input",
        lambda cls=cls: cls(4).forward(np.float32(1.0)),
        ValueError,
        r"\binput must have at least 1 dimensions",
    )

# Linear
for bad, exc in (("3", TypeError), (3.5, TypeError), (0, ValueError), (None, TypeError)):
    for arg in ("in_features", "out_features"):
        case(
            f"nn/Linear({arg}={bad!r})",
            lambda bad=bad, arg=arg: Linear(**{"in_features": 3, "out_features": 2, arg: bad}),
            exc,
            rf"\b{arg} must be an integer >= 1",
        )
case("nn/Linear(bias='no')", lambda: Linear(3, 2, "no"), TypeError, r"\bbias must be a bool")
for bad, exc in (("xavier", ValueError), (None, ValueError), (1, TypeError)):
    case(
        f"nn/Linear(init={bad!r})",
        lambda bad=bad: Linear(3, 2, init=bad),
        exc,
        r"\binit must be one of 'he', 'glorot', 'torch'",
    )
for bad in (np.float16, np.int32, "abc"):
    case(
        f"nn/Linear(dtype={bad!r})",
        lambda bad=bad: Linear(3, 2, dtype=bad),
        TypeError,
        r"\bdtype must be float32 or float64",
    )
LIN_X = r"\binput\b.*(dtype|features|dimensions)"
for xname, x, exc in (
    ("wrong features", np.ones((4, 4)), ValueError),
    ("0-D", np.float32(1.0), ValueError),
    ("None", None, TypeError),
    ("complex", np.ones((4, 3), complex), TypeError),
    ("str", np.full((4, 3), "a"), TypeError),
    ("object", np.ones((4, 3), object), TypeError),
    ("bool", np.ones((4, 3), bool), TypeError),
):
    case(f"nn/Linear.forward: x {xname}", lambda x=x: Linear(3, 2).forward(x), exc, LIN_X)
case(
    "nn/Linear.backward before forward",
    lambda: Linear(3, 2).backward(np.ones((4, 2), np.float32)),
    RuntimeError,
    r"backward\(\) called before forward\(\)",
)
LIN_GRAD = r"grad_out must be an? .*array.*shape \(4, 2\)"
for gname, grad, exc in (
    ("None", None, TypeError),
    ("wrong shape", np.ones((4, 3)), ValueError),
    ("transposed", np.ones((2, 4)), ValueError),
    ("str", np.full((4, 2), "a"), TypeError),
    ("complex", np.ones((4, 2), complex), TypeError),
):
    case(
        f"nn/Linear.backward: grad_out {gname}",
        lambda grad=grad: forwarded(Linear(3, 2), np.ones((4, 3))).backward(grad),
        exc,
        LIN_GRAD,
    )

# Dropout
for bad, exc in (("0.5", TypeError), (1.5, ValueError), (-0.1, ValueError), (None, TypeError)):
    case(
        f"nn/Dropout(p={bad!r})",
        lambda bad=bad: Dropout(bad),
        exc,
        r"\bp must be a real number in \[0.0, 1.0\]",
    )
case("nn/Dropout(p=True)", lambda: Dropout(True), TypeError, r"\bp must be a real number")
for xname, x in (
    ("str", np.full((4, 3), "a")),
    ("None", None),
    ("complex", np.ones((4, 3), complex)),
):
    case(
        f"nn/Dropout.forward: x {xname}",
        lambda x=x: Dropout(0.5).forward(x),
        TypeError,
        r"\binput\b.*dtype",
    )
DROP_GRAD = r"grad_out must be an? .*array.*shape \(4, 3\)"
for gname, grad, exc in (("None", None, TypeError), ("wrong shape", np.ones((3, 4)), ValueError)):
    case(
        f"nn/Dropout.backward: grad_out {gname}",
        lambda grad=grad: forwarded(Dropout(0.5), np.ones((4, 3))).backward(grad),
        exc,
        DROP_GRAD,
    )

# activations
for bad, exc in (("exact", ValueError), (None, ValueError), (True, TypeError)):
    case(
        f"nn/GELU(approximate={bad!r})",
        lambda bad=bad: GELU(bad),
        exc,
        r"\bapproximate must be one of 'none', 'tanh'",
    )
for name, make in {"GELU": GELU, "GELU-tanh": lambda: GELU("tanh"), "ReLU": ReLU}.items():
    fam = "nn/GELU" if name.startswith("GELU") else f"nn/{name}"
    case(
        f"{fam}.backward before forward ({name})",
        lambda make=make: make().backward(np.ones((4, 3))),
        RuntimeError,
        r"backward\(\) called before forward\(\)",
    )
    for xname, x in (("str", np.full((4, 3), "a")), ("None", None), ("object", np.ones(3, object))):
        case(
            f"{fam}.forward: x {xname} ({name})",
            lambda make=make, x=x: make().forward(x),
            TypeError,
            r"\binput\b.*dtype",
        )
    for gname, grad, exc in (("None", None, TypeError), ("wrong shape", np.ones((3,)), ValueError)):
        case(
            f"{fam}.backward: grad_out {gname} ({name})",
            lambda make=make, grad=grad: forwarded(make(), np.ones((4, 3))).backward(grad),
            exc,
            DROP_GRAD,
        )

# Sequential
for bad in (np.ones(3), "Linear", None, [Linear(3, 2), "relu"]):
    case(
        f"nn/Sequential({type(bad).__name__})",
        lambda bad=bad: Sequential(bad) if not isinstance(bad, list) else Sequential(*bad),
        TypeError,
        r"Sequential takes Module instances",
    )
case(
    "nn/Sequential.forward: wrong features",
    lambda: Sequential(Linear(3, 2), ReLU()).forward(np.ones((4, 5))),
    ValueError,
    r"\binput\b.*features",
)
case(
    "nn/Sequential.backward before forward",
    lambda: Sequential(Linear(3, 2), ReLU()).backward(np.ones((4, 2))),
    RuntimeError,
    r"backward\(\) called before forward\(\)",
)
for gname, grad, exc in (("None", None, TypeError), ("wrong shape", np.ones((4, 3)), ValueError)):
    case(
        f"nn/Sequential.backward: grad_out {gname}",
        lambda grad=grad: forwarded(
            Sequential(Linear(3, 2), BatchNorm(2, axis=-1), ReLU()), np.ones((4, 3))
        ).backward(grad),
        exc,
        r"grad_out must be an? .*array.*shape \(4, 2\)",
    )


# ------------------------------------------------------------------------------- optimizers


def params():
    return {"w": np.ones((2, 3), np.float32)}


for cls in (SGD, Adam, AdamW):
    fam = "optim/" + cls.__name__
    for arg, bad, exc in (
        ("lr", "0.1", TypeError),
        ("lr", -0.1, ValueError),
        ("lr", np.nan, ValueError),
        ("weight_decay", -1.0, ValueError),
        ("weight_decay", None, TypeError),
    ):
        case(
            f"{fam}({arg}={bad!r})",
            lambda cls=cls, arg=arg, bad=bad: cls(params(), **{arg: bad}),
            exc,
            rf"\b{arg} must be a real number >= 0",
        )
    case(
        f"{fam}(params=5)",
        lambda cls=cls: cls(5),
        TypeError,
        r"\bparams must be a Module, a dict of arrays or an iterable of arrays",
    )
    case(
        f"{fam}(params=[list])",
        lambda cls=cls: cls([[1.0, 2.0]]),
        TypeError,
        r"parameter '0' is not a numpy array",
    )
    case(
        f"{fam}.step: grad wrong shape",
        lambda cls=cls: cls(params()).step({"w": np.ones(3)}),
        ValueError,
        r"gradient 'w' has shape \(3,\), parameter \(2, 3\)",
    )
    case(
        f"{fam}.step: grads not a dict",
        lambda cls=cls: cls(params()).step([np.ones((2, 3))]),
        TypeError,
        r"\bgrads must be a dict",
    )
    case(
        f"{fam}.step: grad str",
        lambda cls=cls: cls(params()).step({"w": np.full((2, 3), "a")}),
        TypeError,
        r"gradient 'w' must be a real-valued array",
    )
    case(
        f"{fam}.step: no grads for a dict of arrays",
        lambda cls=cls: cls(params()).step(),
        ValueError,
        r"pass the gradients to step\(\)",
    )
for cls in (Adam, AdamW):
    fam = "optim/" + cls.__name__
    for bad, exc in (
        ((0.9,), ValueError),
        (0.9, TypeError),
        ((0.9, 1.0), ValueError),
        (("0.9", 0.99), TypeError),
        ((0.9, -0.1), ValueError),
    ):
        case(
            f"{fam}(betas={bad!r})",
            lambda cls=cls, bad=bad: cls(params(), betas=bad),
            exc,
            r"\bbetas must be a pair of real numbers in \[0, 1\)",
        )
    for bad, exc in (("1e-8", TypeError), (-1.0, ValueError)):
        case(
            f"{fam}(eps={bad!r})",
            lambda cls=cls, bad=bad: cls(params(), eps=bad),
            exc,
            r"\beps must be a real number >= 0",
        )
for arg, bad, exc, msg in (
    ("momentum", -0.5, ValueError, r"\bmomentum must be a real number >= 0"),
    ("momentum", "0.9", TypeError, r"\bmomentum must be a real number >= 0"),
    ("dampening", "0", TypeError, r"\bdampening must be a real number"),
    ("dampening", np.inf, ValueError, r"\bdampening must be a real number"),
    ("nesterov", "yes", TypeError, r"\bnesterov must be a bool"),
):
    case(
        f"optim/SGD({arg}={bad!r})",
        lambda arg=arg, bad=bad: SGD(params(), **{arg: bad}),
        exc,
        msg,
    )
case(
    "optim/SGD(nesterov without momentum)",
    lambda: SGD(params(), nesterov=True),
    ValueError,
    r"Nesterov momentum requires a momentum and zero dampening",
)


# ------------------------------------------------------------------------------- losses

LOGITS = np.zeros((4, 3), np.float32)
for lname, logits, target, exc, msg in (
    ("logits 1-D", np.zeros(3), np.zeros(3, int), ValueError, r"\blogits must be 2-D"),
    ("logits str", np.full((4, 3), "a"), np.zeros(4, int), TypeError, r"\blogits\b.*dtype"),
    ("logits None", None, np.zeros(4, int), TypeError, r"\blogits\b.*dtype"),
    ("logits no classes", np.zeros((4, 0)), np.zeros(4, int), ValueError, r"\blogits\b.*class"),
    ("target float", LOGITS, np.zeros(4), TypeError, r"\btarget must hold integer class"),
    ("target wrong shape", LOGITS, np.zeros(3, int), ValueError, r"\btarget must have shape"),
    ("target out of range", LOGITS, np.full(4, 3), ValueError, r"\btarget values must be in"),
    ("target negative", LOGITS, np.full(4, -1), ValueError, r"\btarget values must be in"),
    ("target None", LOGITS, None, ValueError, r"\btarget must have shape"),
):
    case(
        f"loss/CrossEntropyLoss: {lname}",
        lambda logits=logits, target=target: CrossEntropyLoss()(logits, target),
        exc,
        msg,
    )
for lname, pred, target, exc, msg in (
    ("shape mismatch", np.zeros((4, 1)), np.zeros(4), ValueError, r"\btarget shape"),
    ("target str", np.zeros(4), np.full(4, "a"), TypeError, r"\btarget\b.*dtype"),
    ("prediction str", np.full(4, "a"), np.zeros(4), TypeError, r"\bprediction\b.*dtype"),
    ("prediction None", None, np.zeros(4), TypeError, r"\bprediction\b.*dtype"),
    ("target complex", np.zeros(4), np.zeros(4, complex), TypeError, r"\btarget\b.*dtype"),
):
    case(
        f"loss/MSELoss: {lname}",
        lambda pred=pred, target=target: MSELoss()(pred, target),
        exc,
        msg,
    )
for cls in (CrossEntropyLoss, MSELoss):
    case(
        f"loss/{cls.__name__}.backward before forward",
        lambda cls=cls: cls().backward(),
        RuntimeError,
        r"backward\(\) called before forward\(\)",
    )


# ------------------------------------------------------------------------------- transformers

XT = np.random.default_rng(2).standard_normal((20, 6))
TRANSFORMERS = {
    "BatchNormalizer": BatchNormalizer,
    "LayerNormalizer": LayerNormalizer,
    "GroupNormalizer": lambda **kw: GroupNormalizer(2, **kw),
    "InstanceNormalizer": lambda **kw: InstanceNormalizer(2, **kw),
}
X_MSG = r"\bX\b"
BAD_X = {
    "1-D": (XT[0], ValueError),
    "3-D": (XT[None], ValueError),
    "complex": (XT.astype(complex), ValueError),
    "strings": (np.full((4, 6), "a"), ValueError),
    "None": (None, (TypeError, ValueError)),
    "empty rows": (np.empty((0, 6)), ValueError),
    "empty features": (np.empty((4, 0)), ValueError),
    "a string": ("abc", (TypeError, ValueError)),
}

for name, make in TRANSFORMERS.items():
    fam = f"preprocessing/{name}"
    methods = ["fit", "transform"] + (
        ["partial_fit", "inverse_transform"] if "Batch" in name else []
    )
    for method in methods:
        for xname, (x, exc) in BAD_X.items():
            if method == "fit" or method == "partial_fit":
                call = lambda make=make, method=method, x=x: getattr(make(), method)(x)  # noqa: E731
            else:
                call = lambda make=make, method=method, x=x: getattr(make().fit(XT), method)(x)  # noqa: E731
            case(f"{fam}.{method}: X {xname}", call, exc, X_MSG)
        if method in ("transform", "inverse_transform", "partial_fit"):
            case(
                f"{fam}.{method}: X with 5 features after fit on 6",
                lambda make=make, method=method: getattr(make().fit(XT), method)(XT[:, :5]),
                ValueError,
                r"X has 5 features, but \w+ is expecting 6 features",
            )
        if method in ("transform", "inverse_transform"):
            case(
                f"{fam}.{method} before fit",
                lambda make=make, method=method: getattr(make(), method)(XT),
                NotFittedError,
                r"not fitted yet",
            )
    for bad, exc in (("1e-5", TypeError), (-1.0, ValueError), (np.nan, ValueError)):
        case(
            f"{fam}(eps={bad!r}).fit",
            lambda make=make, bad=bad: make(eps=bad).fit(XT),
            exc,
            r"\beps must be a real number >= 0",
        )
    if "Batch" not in name:
        case(
            f"{fam}.fit: X with NaN",
            lambda make=make: make().fit(np.full((3, 6), np.nan)),
            ValueError,
            r"Input X contains NaN",
        )
for name, cls, arg in (
    ("GroupNormalizer", GroupNormalizer, "n_groups"),
    ("InstanceNormalizer", InstanceNormalizer, "n_channels"),
):
    for bad, exc in (("2", TypeError), (2.0, TypeError), (0, ValueError), (None, TypeError)):
        case(
            f"preprocessing/{name}({arg}={bad!r}).fit",
            lambda cls=cls, bad=bad: cls(bad).fit(XT),
            exc,
            rf"\b{arg} must be an integer >= 1",
        )
    case(
        f"preprocessing/{name}({arg}=4).fit: does not divide 6 features",
        lambda cls=cls: cls(4).fit(XT),
        ValueError,
        rf"\b{arg}=4 must divide the number of features",
    )
case(
    "preprocessing/InstanceNormalizer(6).fit: 1 value per channel",
    lambda: InstanceNormalizer(6).fit(XT),
    ValueError,
    r"\bn_channels=6 must divide the number of features leaving at least 2 values",
)
FAM = "preprocessing/BatchNormalizer"
for arg, bad, exc, msg in (
    ("momentum", 2, ValueError, r"\bmomentum must be None or a real number in \[0.0, 1.0\]"),
    ("momentum", "0.1", TypeError, r"\bmomentum must be None or a real number in \[0.0, 1.0\]"),
    ("copy", "yes", TypeError, r"\bcopy must be a bool"),
    ("copy", 1, TypeError, r"\bcopy must be a bool"),
    ("with_mean", "no", TypeError, r"\bwith_mean must be a bool"),
    ("with_mean", None, TypeError, r"\bwith_mean must be a bool"),
    ("with_std", 0, TypeError, r"\bwith_std must be a bool"),
    ("eps", -1e-5, ValueError, r"\beps must be"),
    ("eps", np.inf, ValueError, r"\beps must be"),
    ("scale", np.ones(5), ValueError, r"\bscale must be a scalar or have shape \(n_features,\)"),
    ("scale", "abc", TypeError, r"\bscale must be a real number or an array"),
    ("scale", np.nan, ValueError, r"\bscale must be finite"),
    ("shift", [1.0, 2.0], ValueError, r"\bshift must be a scalar or have shape \(n_features,\)"),
    ("shift", None, TypeError, r"\bshift must be a real number or an array"),
):
    case(
        f"{FAM}({arg}={bad!r}).fit",
        lambda arg=arg, bad=bad: BatchNormalizer(**{arg: bad}).fit(XT),
        exc,
        msg,
    )
    case(
        f"{FAM}({arg}={bad!r}).partial_fit",
        lambda arg=arg, bad=bad: BatchNormalizer(**{arg: bad}).partial_fit(XT),
        exc,
        msg,
    )
for method in ("transform", "inverse_transform"):
    case(
        f"{FAM}.{method}(copy='no')",
        lambda method=method: getattr(BatchNormalizer().fit(XT), method)(XT, copy="no"),
        TypeError,
        r"\bcopy must be a bool",
    )
for method in ("fit", "partial_fit"):
    case(
        f"{FAM}.{method}: X with inf",
        lambda method=method: getattr(BatchNormalizer(), method)(np.full((3, 6), np.inf)),
        ValueError,
        r"Input X contains infinity",
    )
    for wname, w, exc, msg in (
        ("negative", -np.ones(20), ValueError, r"\bsample_weight must be finite and non-negative"),
        ("nan", np.full(20, np.nan), ValueError, r"\bsample_weight\b.*NaN"),
        ("wrong length", np.ones(19), ValueError, r"\bsample_weight.shape == \(19,\), expected"),
        ("2-D", np.ones((20, 1)), ValueError, r"\bsample_weight must be 1-D"),
        ("str", np.full(20, "a"), ValueError, r"\bsample_weight\b"),
    ):
        case(
            f"{FAM}.{method}: sample_weight {wname}",
            lambda method=method, w=w: getattr(BatchNormalizer(), method)(XT, sample_weight=w),
            exc,
            msg,
        )
# all-zero weights: an error for fit (no data at all), a valid empty chunk for partial_fit
case(
    f"{FAM}.fit: sample_weight all zero",
    lambda: BatchNormalizer().fit(XT, sample_weight=np.zeros(20)),
    ValueError,
    r"Sample weights must contain at least one non-zero",
)
case(
    f"{FAM}.partial_fit: momentum changed to None after a float momentum",
    lambda: BatchNormalizer(momentum=0.1).partial_fit(XT).set_params(momentum=None).partial_fit(XT),
    ValueError,
    r"momentum was changed to None after partial_fit with a float momentum",
)
for mname, other, exc, msg in (
    ("not a normalizer", lambda: XT, TypeError, r"can only merge a BatchNormalizer, got ndarray"),
    ("None", lambda: None, TypeError, r"can only merge a BatchNormalizer, got NoneType"),
    ("unfitted", BatchNormalizer, NotFittedError, r"not fitted yet"),
    (
        "other features",
        lambda: BatchNormalizer().fit(XT[:, :5]),
        ValueError,
        r"cannot merge a normalizer fitted on 5 features into one fitted on 6",
    ),
    (
        "running averages",
        lambda: BatchNormalizer(momentum=0.1).fit(XT),
        ValueError,
        r"merge needs exact statistics",
    ),
    ("a LayerNormalizer", lambda: LayerNormalizer().fit(XT), TypeError, r"can only merge"),
):
    case(
        f"{FAM}.merge: {mname}",
        lambda other=other: BatchNormalizer().fit(XT).merge(other()),
        exc,
        msg,
    )
XS = sp.csr_matrix(np.where(XT > 0.5, XT, 0.0))
for method in ("fit", "partial_fit"):
    case(
        f"{FAM}.{method}: sparse X with with_mean=True",
        lambda method=method: getattr(BatchNormalizer(), method)(XS),
        ValueError,
        r"Cannot center sparse matrices: pass `with_mean=False` instead",
    )
case(
    f"{FAM}.transform: sparse X with with_mean=True",
    lambda: BatchNormalizer().fit(XT).transform(XS),
    ValueError,
    r"Cannot center sparse matrices",
)
case(
    f"{FAM}.transform: sparse X with a shift",
    lambda: BatchNormalizer(with_mean=False, shift=1.0).fit(XS).transform(XS),
    ValueError,
    r"\bshift must be 0 for sparse X",
)
case(
    f"{FAM}.transform: with_std switched on after a fit without it",
    lambda: BatchNormalizer(with_std=False).fit(XT).set_params(with_std=True).transform(XT),
    ValueError,
    r"\bwith_std=True needs a normalizer fitted with with_std=True",
)
case(
    f"{FAM}.get_state: unfitted",
    lambda: BatchNormalizer().get_state(),
    NotFittedError,
    r"not fitted yet",
)


def _state_with(**changes):
    state = BatchNormalizer().fit(XT).get_state()
    state.update(changes)
    return {k: v for k, v in state.items() if v is not None}


for sname, state, msg in (
    ("empty dict", {}, r"state must be a dict made by get_state\(\)"),
    ("not a mapping", [1, 2], r"state must be a dict made by get_state\(\)"),
    ("no n_features_in", _state_with(n_features_in=None), r"state must be a dict made by"),
    ("wrong length", _state_with(moments_mean=np.zeros(5)), r"state must hold arrays of shape"),
    ("negative weights", _state_with(moments_sum_weights=-np.ones(6)), r"must be non-negative"),
    ("names", _state_with(feature_names_in=np.array(["a"])), r"feature_names_in must have shape"),
    ("text mean", _state_with(moments_mean=np.full(6, "x")), r"state must be a dict made by"),
):
    case(
        f"{FAM}.set_state: {sname}",
        lambda state=state: BatchNormalizer().set_state(state),
        ValueError,
        msg,
    )
case(
    f"{FAM}.merge: self unfitted",
    lambda: BatchNormalizer().merge(BatchNormalizer().fit(XT)),
    NotFittedError,
    r"not fitted yet",
)


# ------------------------------------------------------------------------------- MLPs

XM = np.random.default_rng(3).standard_normal((24, 4))
YC = np.arange(24) % 3
YR = XM.sum(axis=1)
MLPS = {"MLPClassifier": (MLPClassifier, YC), "MLPRegressor": (MLPRegressor, YR)}
for bad, exc in (("balanced!", ValueError), (3, TypeError), ({0: -1.0}, ValueError)):
    case(
        f"mlp/MLPClassifier(class_weight={bad!r}).fit",
        lambda bad=bad: MLPClassifier(class_weight=bad, max_iter=1).fit(XM, YC),
        exc,
        r"\bclass_weight must be None, \"balanced\" or a dict",
    )
for bad, exc in (("absolute_error", ValueError), (None, ValueError)):
    case(
        f"mlp/MLPRegressor(loss={bad!r}).fit",
        lambda bad=bad: MLPRegressor(loss=bad, max_iter=1).fit(XM, YR),
        exc,
        r"\bloss must be one of 'squared_error', 'poisson'",
    )
for name, (cls, target) in MLPS.items():
    case(
        f"mlp/{name}.fit: sample_weight negative",
        lambda cls=cls, target=target: cls(max_iter=1).fit(XM, target, sample_weight=-np.ones(24)),
        ValueError,
        r"\bsample_weight must be an array of finite non-negative reals, one per sample",
    )
    case(
        f"mlp/{name}.fit: sample_weight wrong length",
        lambda cls=cls, target=target: cls(max_iter=1).fit(XM, target, sample_weight=np.ones(5)),
        ValueError,
        r"\bsample_weight must be an array of finite non-negative reals, one per sample",
    )
MLP_PARAMS = [
    ("hidden_layer_sizes", "64", TypeError, r"a positive integer or a sequence of positive"),
    ("hidden_layer_sizes", (2.5,), TypeError, r"a positive integer or a sequence of positive"),
    ("hidden_layer_sizes", (0,), ValueError, r"a positive integer or a sequence of positive"),
    ("hidden_layer_sizes", None, TypeError, r"a positive integer or a sequence of positive"),
    ("activation", "softmax", ValueError, r"one of 'relu'"),
    ("activation", None, ValueError, r"one of 'relu'"),
    ("normalization", "instance", ValueError, r"one of None, 'batch'"),
    ("norm_groups", 0, ValueError, r"one of 'auto' or an integer >= 1"),
    ("norm_groups", "many", ValueError, r"one of 'auto' or an integer >= 1"),
    ("alpha", -1e-4, ValueError, r"a real number >= 0"),
    ("alpha", "0.1", TypeError, r"a real number >= 0"),
    ("learning_rate", "optimal", ValueError, r"one of 'constant', 'invscaling'"),
    ("power_t", -0.5, ValueError, r"a real number >= 0"),
    ("warmup_fraction", 1.0, ValueError, r"a real number in \[0.0, 1.0\)"),
    ("bn_momentum", 1.5, ValueError, r"None or a real number in \[0.0, 1.0\]"),
    ("dropout", 1.0, ValueError, r"a real number in \[0.0, 1.0\)"),
    ("dropout", "0.1", TypeError, r"a real number in \[0.0, 1.0\)"),
    ("solver", "lbfgs", ValueError, r"one of 'adam'"),
    ("learning_rate_init", 0, ValueError, r"a real number > 0"),
    ("learning_rate_init", np.nan, ValueError, r"a real number > 0"),
    ("weight_decay", -1, ValueError, r"None or a real number >= 0"),
    ("momentum", 2, ValueError, r"a real number in \[0.0, 1.0\]"),
    ("nesterovs_momentum", "yes", TypeError, r"a bool"),
    ("beta_1", 1.0, ValueError, r"a real number in \[0.0, 1.0\)"),
    ("beta_2", -0.1, ValueError, r"a real number in \[0.0, 1.0\)"),
    ("epsilon", -1e-8, ValueError, r"a real number >= 0"),
    ("batch_size", 0, ValueError, r"one of 'auto' or an integer >= 1"),
    ("batch_size", "big", ValueError, r"one of 'auto' or an integer >= 1"),
    ("batch_size", 2.5, TypeError, r"one of 'auto' or an integer >= 1"),
    ("max_iter", 0, ValueError, r"an integer >= 1"),
    ("max_iter", 10.0, TypeError, r"an integer >= 1"),
    ("shuffle", "no", TypeError, r"a bool"),
    ("early_stopping", 1, TypeError, r"a bool"),
    ("validation_fraction", 1.0, ValueError, r"a real number in \(0.0, 1.0\)"),
    ("n_iter_no_change", 0, ValueError, r"an integer >= 1"),
    ("tol", -1, ValueError, r"a real number >= 0"),
    ("warm_start", "no", TypeError, r"a bool"),
    ("verbose", "loud", TypeError, r"a bool \(True or False\) or an integer >= 0"),
    ("verbose", -1, ValueError, r"a bool \(True or False\) or an integer >= 0"),
    ("n_threads", 0, ValueError, r"None or an integer >= 1"),
    ("n_threads", "2", TypeError, r"None or an integer >= 1"),
    ("dtype", np.float16, TypeError, r"float32 or float64"),
    ("dtype", "int", TypeError, r"float32 or float64"),
]


def mlp(cls, **kw):
    defaults = {"hidden_layer_sizes": (4,), "max_iter": 2, "random_state": 0, "batch_size": 8}
    return cls(**{**defaults, **kw})


def fitted(cls, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlp(cls, **kw).fit(XM, y)


for name, (cls, y) in MLPS.items():
    fam = f"mlp/{name}"
    for arg, bad, exc, msg in MLP_PARAMS:
        case(
            f"{fam}({arg}={bad!r}).fit",
            lambda cls=cls, y=y, arg=arg, bad=bad: mlp(cls, **{arg: bad}).fit(XM, y),
            exc,
            rf"\b{arg} must be {msg}",
        )
    case(
        f"{fam}(normalization='batch', batch_size=1).fit",
        lambda cls=cls, y=y: mlp(cls, normalization="batch", batch_size=1).fit(XM, y),
        ValueError,
        r"normalization='batch' needs batch_size >= 2",
    )
    case(
        f"{fam}(normalization='group', norm_groups=3).fit",
        lambda cls=cls, y=y: mlp(cls, normalization="group", norm_groups=3).fit(XM, y),
        ValueError,
        r"norm_groups=3 must divide every hidden layer size",
    )
    case(
        f"{fam}(early_stopping, validation_fraction=0.01).fit: too few samples",
        lambda cls=cls, y=y: mlp(cls, early_stopping=True, validation_fraction=0.01).fit(
            XM[:2], y[:2] if cls is MLPRegressor else [0, 1]
        ),
        ValueError,
        r"early_stopping needs at least 2 training and 1 validation sample",
    )
    for method in ("fit", "partial_fit"):
        extra = {"classes": [0, 1, 2]} if method == "partial_fit" and cls is MLPClassifier else {}
        for xname, (x, exc) in {
            **BAD_X,
            "NaN": (np.full((24, 4), np.nan), ValueError),
            "inf": (np.full((24, 4), np.inf), ValueError),
        }.items():
            if xname.startswith("empty"):
                continue
            case(
                f"{fam}.{method}: X {xname}",
                lambda cls=cls, y=y, method=method, x=x, extra=extra: getattr(mlp(cls), method)(
                    x, y, **extra
                ),
                exc,
                X_MSG,
            )
        case(
            f"{fam}.{method}: X empty",
            lambda cls=cls, method=method, extra=extra: getattr(mlp(cls), method)(
                np.empty((0, 4)), np.empty(0), **extra
            ),
            ValueError,
            r"\bX\b|0 sample",
        )
        for yname, yy, exc, msg in (
            ("wrong length", y[:-1], ValueError, r"\bX\b.*\by\b.*same number of samples|\by\b"),
            ("None", None, ValueError, r"\by\b"),
            ("NaN", np.full(24, np.nan), ValueError, r"\by\b"),
            ("2-D wrong", np.ones((24, 2, 2)), ValueError, r"\by\b"),
        ):
            case(
                f"{fam}.{method}: y {yname}",
                lambda cls=cls, method=method, yy=yy, extra=extra: getattr(mlp(cls), method)(
                    XM, yy, **extra
                ),
                exc,
                msg,
            )
        case(
            f"{fam}.{method}: X with 3 features after fit on 4",
            lambda cls=cls, y=y, method=method, extra=extra: getattr(
                fitted(cls, y, warm_start=True), method
            )(XM[:, :3], y, **extra),
            ValueError,
            r"X has 3 features, but \w+ is expecting 4 features",
        )
    methods = ["predict", "score"] + (["predict_proba"] if cls is MLPClassifier else [])
    for method in methods:
        margs = (lambda x: (x, y)) if method == "score" else (lambda x: (x,))
        case(
            f"{fam}.{method} before fit",
            lambda cls=cls, method=method, margs=margs: getattr(mlp(cls), method)(*margs(XM)),
            NotFittedError,
            r"not fitted yet",
        )
        for xname, (x, exc) in {
            **BAD_X,
            "NaN": (np.full((24, 4), np.nan), ValueError),
            "3 features": (XM[:, :3], ValueError),
        }.items():
            if method == "score" and xname not in ("NaN", "3 features", "1-D", "strings"):
                continue
            if method == "score" and xname == "1-D":
                margs_x = (XM[0], y[:1])
            else:
                margs_x = margs(x)
                if method == "score" and np.ndim(x) == 2 and len(x) != 24:
                    margs_x = (x, y[: len(x)])
            case(
                f"{fam}.{method}: X {xname}",
                lambda cls=cls, y=y, method=method, a=margs_x: getattr(fitted(cls, y), method)(*a),
                exc,
                X_MSG,
            )
    case(
        f"{fam}.score: y wrong length",
        lambda cls=cls, y=y: fitted(cls, y).score(XM, y[:-1]),
        ValueError,
        r"\by\b|inconsistent numbers of samples",
    )
FAM = "mlp/MLPClassifier"
case(
    f"{FAM}.fit: one class",
    lambda: mlp(MLPClassifier).fit(XM, np.zeros(24, int)),
    ValueError,
    r"needs at least 2 classes in y",
)
case(
    f"{FAM}.fit: continuous y",
    lambda: mlp(MLPClassifier).fit(XM, YR),
    ValueError,
    r"Unknown label type|continuous",
)
case(
    f"{FAM}.partial_fit: first call without classes",
    lambda: mlp(MLPClassifier).partial_fit(XM, YC),
    ValueError,
    r"\bclasses must be passed on the first call to partial_fit",
)
case(
    f"{FAM}.partial_fit: y label not in classes",
    lambda: mlp(MLPClassifier).partial_fit(XM, YC, classes=[0, 1]),
    ValueError,
    r"y contains labels \[2\] not in classes \[0, 1\]",
)
case(
    f"{FAM}.partial_fit: new label after fit",
    lambda: fitted(MLPClassifier, YC).partial_fit(XM, YC + 1),
    ValueError,
    r"y contains labels \[3\] not in classes \[0, 1, 2\]",
)
case(
    "mlp/MLPRegressor.partial_fit: other number of outputs",
    lambda: fitted(MLPRegressor, YR).partial_fit(XM, np.ones((24, 2))),
    ValueError,
    r"y has 2 outputs but the fitted model has 1",
)


# ------------------------------------------------------------------------------- command line


class CommandLineError(Exception):
    """What a row sees of a command line that exited with an argparse error (exit code 2)."""


def cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(list(argv))
        except SystemExit as exc:
            assert exc.code == 2, f"exit code {exc.code}, stderr {err.getvalue()!r}"
            raise CommandLineError(err.getvalue()) from None
    raise AssertionError(f"python -m fastnorm {' '.join(argv)} did not fail")


for opt, bad in (
    ("--threads", "-1"),
    ("--threads", "0"),
    ("--threads", "abc"),
    ("--threads", "1.5"),
    ("--threads", "100000"),
    ("--repeat", "-1"),
    ("--repeat", "0"),
    ("--repeat", "x"),
):
    case(
        f"cli/bench {opt} {bad}",
        lambda opt=opt, bad=bad: cli("bench", opt, bad, "-k", "no such case"),
        CommandLineError,
        rf"argument {opt}: .*(positive integer|at most)",
    )
case(
    "cli/bench --group nope",
    lambda: cli("bench", "--group", "nope"),
    CommandLineError,
    r"argument --group: invalid choice",
)
case("cli/demo --seed abc", lambda: cli("demo", "--seed", "abc"), CommandLineError, r"--seed")
for bad in ("-1", "x", "1.5"):
    case(
        f"cli/compile --processes {bad}",
        lambda bad=bad: cli("compile", "--processes", bad),
        CommandLineError,
        r"argument --processes: must be an integer >= 0",
    )
case(
    "cli/compile --dtype float16",
    lambda: cli("compile", "--dtype", "float16"),
    CommandLineError,
    r"argument --dtype: invalid choice",
)
case("cli/no command", lambda: cli(), CommandLineError, r"required: command")
case("cli/unknown command", lambda: cli("train"), CommandLineError, r"invalid choice: 'train'")


# ------------------------------------------------------------------------------- the test


@pytest.mark.parametrize("call, exc, match", CASES)
def test_bad_input(call, exc, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        with pytest.raises(exc, match=match) as info:
            call()
    # never a bare error of the wrong kind hiding behind a broad expectation
    raw = (IndexError, AttributeError, KeyError, ZeroDivisionError)
    assert isinstance(info.value, NotFittedError) or not isinstance(info.value, raw)


def test_case_ids_are_unique():
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------------------- must not fail


@pytest.mark.parametrize("name", list(TRANSFORMERS))
def test_transformers_take_float16(name):
    """float16 input never crashes; BatchNormalizer keeps its dtype (StandardScaler does)."""
    est = TRANSFORMERS[name]()
    X16 = XT.astype(np.float16)
    out = est.fit(X16).transform(X16)
    assert out.shape == X16.shape and np.isfinite(out).all()
    if name == "BatchNormalizer":
        assert out.dtype == np.float16
        est.partial_fit(X16)
        assert est.inverse_transform(out).shape == X16.shape


# ------------------------------------------------------------------------------- fitted state


def _state(est):
    return pickle.dumps(vars(est))


BAD_BATCHES = [
    np.full((3, 6), np.inf),
    XT[:, :5],
    XT[0],
    np.full((4, 6), "a"),
    np.empty((0, 6)),
]


@pytest.mark.parametrize("momentum", [None, 0.1])
@pytest.mark.parametrize(
    "method, bad",
    [
        (method, bad)
        for method in ("fit", "partial_fit")
        for bad in range(len(BAD_BATCHES))
        # fit starts afresh: another feature count is not an error there
        if not (method == "fit" and BAD_BATCHES[bad].shape == (20, 5))
    ],
)
def test_batch_normalizer_bad_batch_keeps_state(method, momentum, bad):
    est = BatchNormalizer(momentum=momentum).partial_fit(XT)
    before = _state(est)
    with pytest.raises((TypeError, ValueError)):
        getattr(est, method)(BAD_BATCHES[bad])
    assert _state(est) == before
    with pytest.raises(ValueError):
        getattr(est, method)(XT, sample_weight=-np.ones(20))
    assert _state(est) == before


@pytest.mark.parametrize(
    "other",
    [
        lambda: BatchNormalizer().fit(XT[:, :5]),
        lambda: BatchNormalizer(momentum=0.1).fit(XT),
        BatchNormalizer,
        lambda: XT,
    ],
    ids=["features", "momentum", "unfitted", "array"],
)
def test_batch_normalizer_bad_merge_keeps_state(other):
    est = BatchNormalizer().fit(XT)
    before = _state(est)
    with pytest.raises((TypeError, ValueError)):
        est.merge(other())
    assert _state(est) == before


BAD_XY = {
    "X NaN": lambda y: (np.full((24, 4), np.nan), y),
    "X 3 features": lambda y: (XM[:, :3], y),
    "X strings": lambda y: (np.full((24, 4), "a"), y),
    "y wrong length": lambda y: (XM, y[:-1]),
    "y NaN": lambda y: (XM, np.full(24, np.nan)),
}


@pytest.mark.parametrize("name", list(MLPS))
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("bad", list(BAD_XY))
def test_mlp_bad_fit_keeps_state(name, method, bad):
    cls, y = MLPS[name]
    est = fitted(cls, y, warm_start=True)
    before = copy.deepcopy({k: v for k, v in vars(est).items() if k != "_optimizer"})
    weights = {k: v.copy() for k, v in est.net_.params.items()}
    with pytest.raises(ValueError):
        getattr(est, method)(*BAD_XY[bad](y))
    assert sorted(vars(est)) == sorted([*before, "_optimizer"])
    for k, v in est.net_.params.items():
        np.testing.assert_array_equal(v, weights[k])
    for k in ("n_iter_", "t_", "loss_curve_", "n_features_in_", "n_outputs_"):
        assert getattr(est, k) == before[k]
    if cls is MLPClassifier:
        np.testing.assert_array_equal(est.classes_, before["classes_"])


@pytest.mark.parametrize("name", list(MLPS))
def test_mlp_bad_params_leave_unfitted(name):
    cls, y = MLPS[name]
    est = mlp(cls, momentum=2, solver="sgd")
    with pytest.raises(ValueError):
        est.fit(XM, y)
    assert not hasattr(est, "net_")
    with pytest.raises(NotFittedError):
        est.predict(XM)
