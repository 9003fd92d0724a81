"""A PyTorch model's state_dict, converted to NumPy, loads into the equivalent fastnorm
Sequential, which then computes what torch computes (eval and train mode)."""

import numpy as np
import pytest

from fastnorm.nn import BatchNorm, GroupNorm, LayerNorm, Linear, ReLU, Sequential


def _pair(torch, kind):
    nn = torch.nn
    if kind == "batch":
        theirs = nn.Sequential(
            nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)
        )
        ours = Sequential(Linear(8, 16, bias=False), BatchNorm(16), ReLU(), Linear(16, 3))
    else:
        theirs = nn.Sequential(
            nn.Linear(8, 16),
            nn.LayerNorm(16),
            nn.ReLU(),
            nn.Sequential(nn.Linear(16, 12), nn.GroupNorm(4, 12), nn.ReLU()),
            nn.Linear(12, 3),
        )
        ours = Sequential(
            Linear(8, 16),
            LayerNorm(16),
            ReLU(),
            Sequential(Linear(16, 12), GroupNorm(4, 12), ReLU()),
            Linear(12, 3),
        )
    return ours, theirs


@pytest.mark.parametrize("kind", ["batch", "layer-group"])
def test_load_torch_state_dict(torch, kind):
    torch.manual_seed(0)
    ours, theirs = _pair(torch, kind)
    with torch.no_grad():  # random affine parameters, not torch's ones/zeros
        for name, p in theirs.named_parameters():
            if p.ndim == 1:
                p.copy_(
                    torch.rand(p.shape) + 0.5 if name.endswith("weight") else torch.randn(p.shape)
                )
    opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(3):  # a few training steps: weights and running statistics move
        xb = torch.from_numpy(rng.standard_normal((32, 8)).astype(np.float32) * 2 + 1)
        yb = torch.from_numpy(rng.integers(0, 3, 32))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(xb), yb).backward()
        opt.step()
    state = {k: t.detach().numpy().copy() for k, t in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict(state)
    if kind == "batch":
        assert int(ours[1].num_batches_tracked) == 3
        np.testing.assert_array_equal(ours[1].running_var, state["1.running_var"])

    x = rng.standard_normal((20, 8)).astype(np.float32) * 2 + 1
    theirs.eval()
    ours.eval()
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours.forward(x), want, rtol=1e-5, atol=1e-5)
    # train mode: batch statistics, and the running statistics move the same way
    theirs.train()
    ours.train()
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours.forward(x), want, rtol=1e-5, atol=1e-5)
    after = {k: t.numpy() for k, t in theirs.state_dict().items()}
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(value, after[key], rtol=1e-5, atol=1e-6, err_msg=key)
