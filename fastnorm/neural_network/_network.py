"""The network an estimator trains: activations, the normalization registry, the optimizer."""

import copy

import numpy as np
from sklearn.utils import check_random_state

from ..nn import (
    GELU,
    SGD,
    Adam,
    AdamW,
    BatchNorm,
    Dropout,
    GroupNorm,
    Identity,
    LayerNorm,
    Linear,
    ReLU,
    RMSNorm,
    Sequential,
    Sigmoid,
    Tanh,
)

__all__ = [
    "ACTIVATIONS",
    "NORMALIZATIONS",
    "SOLVERS",
    "build_network",
    "initial_rng",
    "make_optimizer",
]

# activation name -> (layer class, initialisation of the linear layer before it)
ACTIVATIONS = {
    "relu": (ReLU, "he"),
    "gelu": (GELU, "he"),
    "tanh": (Tanh, "glorot"),
    "logistic": (Sigmoid, "glorot"),
    "sigmoid": (Sigmoid, "glorot"),
    "identity": (Identity, "glorot"),
}

# normalization name -> factory (width, checked estimator parameters) -> layer
NORMALIZATIONS = {
    "batch": lambda width, p: BatchNorm(width, momentum=p["bn_momentum"], dtype=p["dtype"]),
    # r_max / d_max are the final limits; RenormSchedule sets them step by step in training
    "batch_renorm": lambda width, p: BatchNorm(
        width, momentum=p["bn_momentum"], renorm=True, dtype=p["dtype"]
    ),
    "ghost_batch": lambda width, p: BatchNorm(
        width,
        momentum=p["bn_momentum"],
        virtual_batch_size=p["virtual_batch_size"],
        dtype=p["dtype"],
    ),
    "layer": lambda width, p: LayerNorm(width, dtype=p["dtype"]),
    "group": lambda width, p: GroupNorm(
        group_count(p["norm_groups"], width), width, dtype=p["dtype"]
    ),
    "rms": lambda width, p: RMSNorm(width, dtype=p["dtype"]),
}


def group_count(norm_groups, width):
    """Groups of a group-norm layer of ``width`` features: ``norm_groups``, or for "auto" the
    largest divisor of the width that is at most 8."""
    if norm_groups != "auto":
        return norm_groups
    return max(g for g in range(1, min(8, width) + 1) if width % g == 0)


# normalizations whose shift replaces the bias of the linear layer before them
_REPLACES_BIAS = {"batch", "batch_renorm", "ghost_batch"}
# normalizations that use batch statistics in training: no batches of one row
BATCH_STATISTICS = {"batch", "batch_renorm", "ghost_batch"}

SOLVERS = ("adam", "adamw", "sgd")


def initial_rng(random_state):
    """The generator a fit starts from (it seeds the weights, then shuffles and drops out)."""
    rs = check_random_state(random_state)
    return np.random.default_rng(rs.randint(0, 2**31 - 1))


def build_network(p, n_in, n_out, rng):
    """``[Linear -> Norm -> activation -> Dropout] * len(hidden) -> Linear`` from the checked
    parameters ``p`` (a dict), weights seeded from ``rng``."""
    act_cls, init = ACTIVATIONS[p["activation"]]
    hidden, norm, dtype = p["hidden_layer_sizes"], p["normalization"], p["dtype"]
    seeds = rng.integers(0, 2**63 - 1, size=2 * len(hidden) + 1)
    layers = []
    fan_in = n_in
    for i, h in enumerate(hidden):
        layers.append(
            Linear(
                fan_in,
                h,
                bias=norm not in _REPLACES_BIAS,
                init=init,
                random_state=int(seeds[2 * i]),
                dtype=dtype,
            )
        )
        if norm is not None:
            layers.append(NORMALIZATIONS[norm](h, p))
        layers.append(act_cls())
        if p["dropout"] > 0:
            layers.append(Dropout(p["dropout"], random_state=int(seeds[2 * i + 1])))
        fan_in = h
    layers.append(Linear(fan_in, n_out, init="glorot", random_state=int(seeds[-1]), dtype=dtype))
    layers[0].input_grad = False  # nobody needs d(loss)/d(X)
    return Sequential(*layers)


def make_optimizer(p, net):
    """The optimizer of ``p["solver"]`` over ``net``'s parameters. ``weight_decay=None`` is the
    solver's PyTorch default: 0 for adam and sgd, 0.01 for adamw."""
    lr = p["learning_rate_init"]
    wd = p["weight_decay"]
    # one buffer for all parameters, one fused update per step; the alpha penalty's weights
    flat = dict(flat=True, l2_names=linear_weight_names(net))
    if p["solver"] == "sgd":
        return SGD(
            net,
            lr=lr,
            momentum=p["momentum"],
            weight_decay=wd or 0.0,
            nesterov=p["nesterovs_momentum"] and p["momentum"] > 0,
            **flat,
        )
    betas = (p["beta_1"], p["beta_2"])
    if p["solver"] == "adamw":
        return AdamW(
            net,
            lr=lr,
            betas=betas,
            eps=p["epsilon"],
            weight_decay=1e-2 if wd is None else wd,
            **flat,
        )
    return Adam(net, lr=lr, betas=betas, eps=p["epsilon"], weight_decay=wd or 0.0, **flat)


def linear_weight_names(net):
    """The parameter names of the linear layers' weights (what the alpha penalty applies to)."""
    return [f"{i}.weight" for i, layer in enumerate(net) if isinstance(layer, Linear)]


def inference_copy(net, dtype=np.float64):
    """A copy of ``net`` in eval mode with its parameters and buffers cast to ``dtype``; built
    from the current weights on every call."""
    return copy.deepcopy(net).astype(dtype).eval()
