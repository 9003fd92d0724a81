"""One buffer for all of a module's parameters and one for their gradients: the flat
optimizers (``flat=True``) update them in one kernel call per step."""

import numpy as np


class FlatGroup:
    """A module's parameters and gradients moved into one buffer each, so that one kernel call
    updates them all. ``l2_names`` are placed first (``l2_count`` elements): the parameters a
    per-step L2 penalty applies to."""

    def __init__(self, module, names, l2_names, state_keys, state):
        leaves = {}
        for prefix, m in module.named_modules():
            for key in m._local_params():
                leaves[f"{prefix}.{key}" if prefix else key] = (m, key)
        order = [n for n in names if n in l2_names] + [n for n in names if n not in l2_names]
        arrays = [leaves[n][0].params[leaves[n][1]] for n in order]
        dtype = np.result_type(*arrays)
        sizes = [a.size for a in arrays]
        ends = np.cumsum([0, *sizes])
        self.l2_count = int(sum(a.size for n, a in zip(order, arrays) if n in l2_names))
        self.p = np.empty(ends[-1], dtype)
        self.g = np.zeros(ends[-1], dtype)
        self.state = {k: np.zeros(ends[-1], dtype) for k in state_keys}
        self.links = []  # (leaf, key, parameter view, gradient view)
        self.state_views = {}
        # started: every parameter has its state (loaded, or from before a rebuild), which
        # carries over; else the optimizer starts afresh
        self.started = bool(state_keys) and all(
            k in state.get(n, {}) for n in order for k in state_keys
        )
        for name, array, start, stop in zip(order, arrays, ends[:-1], ends[1:]):
            leaf, key = leaves[name]
            view = self.p[start:stop].reshape(array.shape)
            view[...] = array
            grad_view = self.g[start:stop].reshape(array.shape)
            grad = leaf.grads.get(key)
            if grad is not None and grad.shape == array.shape:  # the pending step's gradient
                grad_view[...] = grad
            leaf.params[key] = view
            leaf.grads[key] = grad_view
            views = self.state_views[name] = {}
            for k in state_keys:
                views[k] = self.state[k][start:stop].reshape(array.shape)
                if self.started:
                    views[k][...] = state[name][k]
            self.links.append((leaf, key, view, grad_view))
        if self.started:
            self.publish(state)
        self.names = order

    def publish(self, state):
        """Make the optimizer's per-parameter state dicts hold the flat state's views."""
        for name, views in self.state_views.items():
            state.setdefault(name, {}).update(views)

    def intact(self):
        """True while every leaf still holds this buffer's views (a load, a pickle or a user's
        assignment of a new array breaks the link; the group is then rebuilt from the arrays)."""
        for leaf, key, view, grad_view in self.links:
            if leaf.params.get(key) is not view or leaf.grads.get(key) is not grad_view:
                return False
        return True
