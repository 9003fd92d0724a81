"""Recognize Dask collections without importing Dask: an object can only be a Dask collection if
its user has imported ``dask``, so ``sys.modules`` answers for free and ``import fastnorm`` never
pays for Dask (an optional dependency)."""

import sys


def is_dask_collection(x):
    """True for a Dask array, DataFrame, Series or other Dask collection."""
    dask = sys.modules.get("dask")
    return dask is not None and x is not None and dask.is_dask_collection(x)
