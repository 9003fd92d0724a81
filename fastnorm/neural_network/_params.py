"""The MLP estimators' parameter rules, declared once (``fastnorm._validation`` rules), and the
rules that involve several parameters."""

import math
import numbers

from .._validation import (
    FLOAT_DTYPE,
    MOMENTUM,
    MOMENTUM_OR_NONE,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    AnyOf,
    Boolean,
    Interval,
    IntTuple,
    NoneOr,
    Options,
    Rule,
    check_params,
)
from ._network import ACTIVATIONS, BATCH_STATISTICS, NORMALIZATIONS, SOLVERS

_REAL = numbers.Real
LEARNING_RATES = ("constant", "invscaling", "adaptive", "cosine")
_NON_NEGATIVE = Interval(_REAL, 0.0, None, closed="left")

PARAMETER_CONSTRAINTS = {
    "hidden_layer_sizes": IntTuple(allow_empty=True),
    "activation": Options(*ACTIVATIONS),
    "normalization": Options(None, *NORMALIZATIONS),
    "norm_groups": AnyOf(Options("auto"), POSITIVE_INT),
    "virtual_batch_size": Interval(numbers.Integral, 2, None),
    "bn_momentum": MOMENTUM_OR_NONE,
    "dropout": Interval(_REAL, 0.0, 1.0, closed="left"),
    "solver": Options(*SOLVERS),
    "learning_rate_init": Interval(_REAL, 0.0, None, closed="neither"),
    "alpha": _NON_NEGATIVE,
    "learning_rate": Options(*LEARNING_RATES),
    "power_t": _NON_NEGATIVE,
    "warmup_fraction": Interval(_REAL, 0.0, 1.0, closed="left"),
    "weight_decay": NoneOr(_NON_NEGATIVE),
    "momentum": MOMENTUM,
    "nesterovs_momentum": Boolean(),
    "beta_1": Interval(_REAL, 0.0, 1.0, closed="left"),
    "beta_2": Interval(_REAL, 0.0, 1.0, closed="left"),
    "epsilon": _NON_NEGATIVE,
    "batch_size": AnyOf(Options("auto"), POSITIVE_INT),
    "max_iter": POSITIVE_INT,
    "shuffle": Boolean(),
    "early_stopping": Boolean(),
    "validation_fraction": Interval(_REAL, 0.0, 1.0, closed="neither"),
    "n_iter_no_change": POSITIVE_INT,
    "tol": _NON_NEGATIVE,
    "warm_start": Boolean(),
    "verbose": AnyOf(Boolean(), NON_NEGATIVE_INT),
    "n_threads": NoneOr(POSITIVE_INT),
    "dtype": FLOAT_DTYPE,
}


class ClassWeight(Rule):
    """``None``, ``"balanced"`` or a dict ``class label -> non-negative real weight``."""

    description = 'None, "balanced" or a dict {class label: non-negative real weight}'

    def check(self, value, name):
        if value is None or (isinstance(value, str) and value == "balanced"):
            return value
        if not isinstance(value, dict):
            raise (ValueError if isinstance(value, str) else TypeError)(
                f"{name} must be {self.description}, got {value!r}"
            )
        for label, weight in value.items():
            if not (
                isinstance(weight, numbers.Real)
                and not isinstance(weight, bool)
                and math.isfinite(weight)
                and weight >= 0
            ):
                raise ValueError(
                    f"{name} must be {self.description}; class {label!r} has weight {weight!r}"
                )
        return dict(value)


CLASSIFIER_CONSTRAINTS = {**PARAMETER_CONSTRAINTS, "class_weight": ClassWeight()}
REGRESSOR_CONSTRAINTS = {**PARAMETER_CONSTRAINTS, "loss": Options("squared_error", "poisson")}


def checked_params(est):
    """The parameters checked against ``_parameter_constraints`` and normalized, then the
    rules that involve several of them."""
    p = check_params(est, est._parameter_constraints)
    if p["normalization"] in BATCH_STATISTICS and p["batch_size"] == 1:
        raise ValueError(
            f"normalization={p['normalization']!r} needs batch_size >= 2: batch statistics of a "
            "single row are undefined (use normalization='layer' or 'group' for "
            "batch size 1)"
        )
    if p["normalization"] == "ghost_batch" and p["bn_momentum"] is None:
        raise ValueError(
            "normalization='ghost_batch' needs a float bn_momentum (the cumulative average, "
            "bn_momentum=None, is not kept per virtual batch)"
        )
    if p["normalization"] == "group" and p["norm_groups"] != "auto":
        g = p["norm_groups"]
        bad = [h for h in p["hidden_layer_sizes"] if h % g]
        if bad:
            raise ValueError(
                f"norm_groups={g} must divide every hidden layer size; {bad} are not divisible"
            )
    return p
