"""``ModelTools``: what a fitted MLP estimator offers beyond fit and predict: its weights in
scikit-learn's layout (``coefs_``, ``intercepts_``), saving, and the batch-norm tools."""

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from ..nn import Linear, precise_batchnorm_statistics
from ._model_file import save_model


class ModelTools:
    """Mixin of ``_BaseMLP``; reads ``net_`` and the fitted attributes."""

    @property
    def coefs_(self):
        """Weight matrices of the linear layers, ``coefs_[i]`` of shape (n_in, n_out) as in
        scikit-learn: views (transposes) of the current weights, so writing into them changes
        the model."""
        check_is_fitted(self, "net_")
        return [m.params["weight"].T for m in self.net_ if isinstance(m, Linear)]

    @property
    def intercepts_(self):
        """Bias vectors of the linear layers (views); a layer followed by batch norm has no bias
        (batch norm's shift replaces it) and shows read-only zeros."""
        check_is_fitted(self, "net_")
        out = []
        for m in self.net_:
            if isinstance(m, Linear):
                bias = m.params.get("bias")
                if bias is None:
                    bias = np.zeros(m.params["weight"].shape[0], m.params["weight"].dtype)
                    bias.flags.writeable = False
                out.append(bias)
        return out

    def to_onnx(self, path=None):
        """Export the fitted network to an ONNX graph (needs ``pip install "fastnorm[onnx]"``).

        Parameters
        ----------
        path : str, path-like or None, default None
            Also write the model to this file (``onnx.save_model``).

        Returns
        -------
        onnx.ModelProto
            Input ``X``: float32, (n_samples, n_features_in_). Outputs: ``label`` and
            ``probabilities`` (classifier; :meth:`predict` and :meth:`predict_proba`) or
            ``variable`` (regressor; :meth:`predict`, always 2-D (n_samples, n_outputs_)).
            Weights are float32 and onnxruntime computes in float32, so results match to
            ~1e-5. See :doc:`/onnx` for the operators and opsets used.
        """
        check_is_fitted(self, "net_")
        from ._onnx import export_mlp

        return export_mlp(self, path)

    def save(self, path, include_optimizer=False):
        """Save the fitted model to ``path`` (one ``.npz`` file; load it with
        :func:`fastnorm.load`, which executes no code from the file).

        Parameters
        ----------
        path : str or path-like
            The file to write (replaced if it exists; no suffix is added).
        include_optimizer : bool, default False
            Also save the optimizer state and the random generators, so that ``partial_fit``
            after loading continues exactly as it would have without saving.
        """
        save_model(self, path, include_optimizer=include_optimizer)

    # ------------------------------------------------------------------ batch norm tools
    def fold_batchnorm(self):
        """Fold every batch-norm layer into the linear layer before it (in place).

        Inference then skips the normalization step; predictions are unchanged up to rounding.
        The folded model can no longer be trained (``partial_fit`` and warm starts raise).
        Returns ``self``.
        """
        check_is_fitted(self, "net_")
        folded = self.net_.eval().fold_batchnorm()
        if len(folded) == len(self.net_):  # no batch norm: nothing changes, training may go on
            return self
        self.net_ = folded
        self._optimizer = None
        self.batchnorm_folded_ = True
        return self

    def recompute_batchnorm_statistics(self, X, batch_size=1024):
        """Re-estimate every batch norm's running mean and variance exactly over ``X``
        (PreciseBN, see :func:`fastnorm.nn.precise_batchnorm_statistics`). Returns ``self``."""
        check_is_fitted(self, "net_")
        X = validate_data(self, X, reset=False, dtype=np.dtype(self.dtype))
        if not (isinstance(batch_size, numbers.Integral) and batch_size >= 1):
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if X.shape[0] < 2:
            raise ValueError("recompute_batchnorm_statistics needs at least 2 samples")
        precise_batchnorm_statistics(self.net_, X, batch_size)
        return self
