"""What every fastnorm pickle carries and checks: the fastnorm version that wrote it, and, for
fitted estimators, a complete fitted state.

``with_version`` is called by ``__getstate__``, ``checked_state`` by ``__setstate__`` (the
transformers through :class:`VersionedState`, the MLP estimators through ``checked_mlp_state``,
``nn.Module`` directly). scikit-learn's own ``_sklearn_version`` handling (in
``BaseEstimator.__getstate__`` / ``__setstate__``) is untouched: these functions only add and
remove their own key.
"""

import warnings

from ._version import __version__
from .exceptions import InconsistentVersionWarning

VERSION_KEY = "_fastnorm_version"


def with_version(state):
    """A copy of the pickled ``state`` dict with the fastnorm version that writes it."""
    return {**state, VERSION_KEY: __version__}


def checked_state(obj, state, fitted=()):
    """``state`` (a pickled ``__dict__``) without the version key, checked before loading.

    Warns with :class:`~fastnorm.exceptions.InconsistentVersionWarning` when the state was
    written by another fastnorm version (a state without the key predates version records and
    loads silently). ``fitted`` names attributes that come together: when the state holds any
    of them it must hold all, else ``ValueError`` names the missing ones, so a truncated or
    foreign state fails here and not at the next ``partial_fit`` or ``predict``.
    """
    state = dict(state)
    name = type(obj).__name__
    version = state.pop(VERSION_KEY, None)
    if version is not None and version != __version__:
        warnings.warn(
            InconsistentVersionWarning(
                estimator_name=name, current_version=__version__, original_version=version
            ),
            stacklevel=3,
        )
    present = [k for k in fitted if k in state]
    missing = [k for k in fitted if k not in state]
    if present and missing:
        raise ValueError(
            f"cannot unpickle {name}: the state is fitted ({', '.join(present)}) but lacks the "
            f"fitted attribute(s) {', '.join(missing)} (pickled by fastnorm "
            f"{version or 'of unknown version'}, loaded by {__version__}): the pickle is "
            "incomplete or was altered; refit the estimator."
        )
    return state


MLP_FITTED = (
    "net_",
    "_optimizer",
    "_rng",
    "n_features_in_",
    "n_outputs_",
    "n_iter_",
    "t_",
    "loss_curve_",
    "best_loss_",
    "_no_improvement_count",
)


def checked_mlp_state(estimator, state):
    """``checked_state`` for the MLP estimators (classifiers must also hold ``classes_``),
    without ``_net64``: a float64 copy of ``net_`` that pickles made before inference used the
    current ``net_``."""
    from sklearn.base import is_classifier  # not at import: ``import fastnorm`` skips sklearn

    fitted = MLP_FITTED + (("classes_",) if is_classifier(estimator) else ())
    state = checked_state(estimator, state, fitted)
    state.pop("_net64", None)
    return state


class VersionedState:
    """Mixin for estimators (placed before ``BaseEstimator``): pickles record the fastnorm
    version, and loading checks it and the fitted attributes listed in ``_fitted_state``."""

    _fitted_state = ()

    def __getstate__(self):
        return with_version(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(checked_state(self, state, self._fitted_state))
