"""Warnings and errors specific to fastnorm."""

__all__ = ["InconsistentVersionWarning"]


class InconsistentVersionWarning(UserWarning):
    """An object is unpickled by a fastnorm version other than the one that pickled it.

    Like :class:`sklearn.exceptions.InconsistentVersionWarning`: loading may work, but nothing
    guarantees that the state means the same in both versions. Refit, or save the parameters
    with ``state_dict`` (which loads across versions), to be safe.

    Parameters
    ----------
    estimator_name : str
        Class of the unpickled object.
    current_version : str
        The fastnorm version loading the pickle.
    original_version : str
        The fastnorm version that pickled it.
    """

    def __init__(self, *, estimator_name, current_version, original_version):
        self.estimator_name = estimator_name
        self.current_version = current_version
        self.original_version = original_version
        super().__init__(str(self))

    def __str__(self):
        return (
            f"Trying to unpickle {self.estimator_name} from fastnorm version "
            f"{self.original_version} when using fastnorm version {self.current_version}. "
            "This might lead to breaking code or invalid results. Use at your own risk."
        )
