"""Tests of course_lib.train.fit: it minimizes, records, is deterministic, and fails loudly."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from course_lib.train import History, fit, minibatch_indices


def _regression_data(n=256, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.tensor([[1.5], [-2.0], [0.5]])
    y = x @ w + 0.3 + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def mse_loss(model, batch, generator=None):
    x, y = batch
    return (model(x) - y).pow(2).mean()


def test_fit_solves_least_squares(device):
    """Adam on minibatches reaches the least-squares solution (computed independently by lstsq)."""
    x, y = _regression_data()
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    hist = fit(model, mse_loss, (x, y), num_steps=400, batch_size=64, lr=5e-2, device=device,
               generator=torch.Generator().manual_seed(1), progress=False)
    assert len(hist) == 400 and len(hist.losses) == 400
    assert all(isinstance(v, float) for v in hist.losses)
    assert hist.final_loss < 0.05 * hist.losses[0]
    design = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    coef = torch.linalg.lstsq(design, y.double()).solution.squeeze(1)
    got = torch.cat([model.weight.detach().cpu()[0], model.bias.detach().cpu()]).double()
    torch.testing.assert_close(got, coef, atol=0.03, rtol=0)
    assert next(model.parameters()).device.type == device.type


def test_fit_is_deterministic_with_a_seeded_generator():
    x, y = _regression_data()

    def run(seed):
        torch.manual_seed(0)  # same initialization
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))

        def noisy_loss(model, batch, generator=None):  # uses the generator inside the loss too
            x, y = batch
            eps = torch.randn(x.shape, generator=generator)
            return (model(x + 0.1 * eps) - y).pow(2).mean()

        hist = fit(model, noisy_loss, (x, y), 30, batch_size=32, device="cpu",
                   generator=torch.Generator().manual_seed(seed), progress=False)
        return hist.losses, [p.detach().clone() for p in model.parameters()]

    l1, p1 = run(7)
    l2, p2 = run(7)
    l3, _ = run(8)
    assert l1 == l2
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))
    assert l1 != l3


def test_fit_passes_generator_and_batches():
    x = torch.arange(10.0)[:, None]
    g = torch.Generator().manual_seed(0)
    seen = []
    model = nn.Linear(1, 1)

    def loss_fn(model, batch, generator=None):
        assert generator is g
        assert isinstance(batch, torch.Tensor) and batch.shape == (4, 1)  # single tensor in
        seen.append(batch[:, 0].long())
        return model(batch).pow(2).mean()

    fit(model, loss_fn, x, 5, batch_size=4, device="cpu", generator=g, progress=False)
    first_epoch = torch.cat(seen[:2])  # 10 // 4 = 2 batches per epoch, no repeats inside one
    assert len(set(first_epoch.tolist())) == 8


def test_minibatch_indices_epochs(generator):
    batches = list(minibatch_indices(10, 3, 7, generator))
    assert len(batches) == 7 and all(len(b) == 3 for b in batches)
    for e in range(2):  # 3 batches per epoch, 9 distinct rows each
        assert len(set(torch.cat(batches[3 * e:3 * e + 3]).tolist())) == 9
    assert [len(b) for b in minibatch_indices(5, 128, 2, generator)] == [5, 5]  # full batch


def test_fit_nonfinite_loss_names_the_step():
    calls = {"n": 0}

    def bad_loss(model, batch, generator=None):
        calls["n"] += 1
        out = model(batch).mean()
        return out * float("nan") if calls["n"] == 3 else out

    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="not finite at step 3"):
        fit(model, bad_loss, torch.randn(8, 2), 10, batch_size=4, device="cpu", progress=False)

    def vector_loss(model, batch, generator=None):
        return model(batch)[:, 0]

    with pytest.raises(ValueError, match="scalar tensor at step 1"):
        fit(model, vector_loss, torch.randn(8, 2), 3, batch_size=4, device="cpu", progress=False)


def test_fit_restores_mode_callback_and_plot():
    x, y = _regression_data(64)
    model = nn.Linear(3, 1).eval()
    modes = []

    def cb(step, loss, model):
        modes.append(model.training)
        return {"loss_x2": 2 * loss}

    hist = fit(model, mse_loss, (x, y), 20, batch_size=16, log_every=5, callback=cb, device="cpu",
               progress=True)
    assert not model.training and modes == [True] * 4
    steps, values = hist.log_values("loss_x2")
    assert steps == [5, 10, 15, 20]
    assert values[0] == pytest.approx(2 * sum(hist.losses[:5]) / 5)
    fig = hist.plot(logy=True)
    assert isinstance(fig, matplotlib.figure.Figure)
    plt.close(fig)
    assert hist.seconds > 0


def test_fit_with_given_optimizer():
    x, y = _regression_data(64)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hist = fit(model, mse_loss, (x, y), 100, batch_size=64, optimizer=opt, device="cpu", progress=False)
    assert hist.final_loss < 0.1 * hist.losses[0]


def test_fit_bad_arguments():
    model = nn.Linear(2, 1)
    data = torch.randn(8, 2)
    loss = lambda m, b, generator=None: m(b).mean()  # noqa: E731
    with pytest.raises(ValueError, match="num_steps"):
        fit(model, loss, data, 0, progress=False, device="cpu")
    with pytest.raises(ValueError, match="data"):
        fit(model, loss, (data, torch.zeros(7)), 1, progress=False, device="cpu")
    with pytest.raises(TypeError, match="model"):
        fit(lambda x: x, loss, data, 1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="lr"):
        fit(model, loss, data, 1, lr=-1.0, progress=False, device="cpu")
    with pytest.raises(TypeError, match="callback"):
        fit(model, loss, data, 1, callback=lambda step, loss, model: 3.0, progress=False, device="cpu")
    with pytest.raises(ValueError, match="history"):
        History().final_loss


def test_minibatch_order_follows_the_generator_not_the_global_rng():
    x = torch.arange(40.0)[:, None]

    def batches(seed, global_seed):
        seen = []

        def loss_fn(model, batch, generator=None):
            seen.append(batch[:, 0].tolist())
            return model(batch).pow(2).mean()

        torch.manual_seed(global_seed)
        fit(nn.Linear(1, 1), loss_fn, x, 6, batch_size=8, device="cpu",
            generator=torch.Generator().manual_seed(seed), progress=False)
        return seen

    assert batches(3, global_seed=0) == batches(3, global_seed=99)
    assert batches(3, global_seed=0) != batches(4, global_seed=0)
