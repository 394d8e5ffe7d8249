"""Exercises of notebook 01 (course_lib/exercises/autoencoders.py): references agree with
independent oracles (scikit-learn PCA, scipy.linalg.subspace_angles, Rifai et al.'s closed form),
pass their own check, stubs fail as "not attempted", and typical wrong implementations fail with a
readable message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from course_lib import grading
from course_lib.exercises import autoencoders as ex


def _fails(name, fn, match):
    with pytest.raises(AssertionError, match=match):
        grading.check(name, fn, verbose=False)


# --- references against independent oracles ---------------------------------------------------

def test_pca_reconstruction_reference_matches_sklearn():
    for (x, k), _ in grading.cases("pca_reconstruction"):
        got = ex.pca_reconstruction_reference(x, k)
        p = PCA(n_components=k, svd_solver="full").fit(x.numpy())
        want = p.inverse_transform(p.transform(x.numpy()))
        assert got.shape == x.shape and got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-10)


def test_principal_angles_reference_matches_scipy():
    for (A, B), _ in grading.cases("principal_angles", num_cases=6):
        got = ex.principal_angles_reference(A, B)
        want = np.sort(subspace_angles(A.numpy(), B.numpy()))
        # An angle near 0 computed from its cosine is only known to sqrt(float64 eps) = 1.5e-8
        # (scipy 1.17 returns 1.49e-8 for a shared direction), hence the absolute tolerance.
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-7, atol=3e-8)
        assert got[0] < 1e-7  # the inputs share a direction


def test_masking_noise_reference_statistics():
    (x, _, mask_value), kw = grading.cases("masking_noise", num_cases=1)[0]
    g = torch.Generator().manual_seed(5)
    x = x.repeat(10, 1, 1, 1)                        # 3000 * 64 entries
    out = ex.masking_noise_reference(x, 0.3, mask_value, generator=g)
    masked = out == mask_value
    assert torch.equal(out[~masked], x[~masked])
    se = (0.3 * 0.7 / masked.numel()) ** 0.5
    assert abs(masked.double().mean().item() - 0.3) < 5 * se
    # the same generator state gives the same corruption (determinism)
    again = ex.masking_noise_reference(x, 0.3, mask_value, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out, again)


def test_sigmoid_contractive_penalty_reference_matches_closed_form():
    # Rifai et al. 2011, eq. 3: ||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2
    for (W, b, x), _ in grading.cases("sigmoid_contractive_penalty"):
        h = 1 / (1 + np.exp(-(x.numpy() @ W.numpy().T + b.numpy())))
        want = ((h * (1 - h)) ** 2 * (W.numpy() ** 2).sum(1)).sum(1)
        got = ex.sigmoid_contractive_penalty_reference(W, b, x)
        assert got.shape == (x.shape[0],)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-14)


# --- correct alternative solutions pass, typical mistakes fail ---------------------------------

def test_pca_reconstruction_alternative_passes_and_mistakes_fail():
    def via_eigh(x, k):
        mean = x.mean(0)
        xc = x - mean
        _, vecs = torch.linalg.eigh(xc.T @ xc)
        v = vecs[:, -k:]
        return mean + xc @ v @ v.T

    grading.check("pca_reconstruction", via_eigh, verbose=False)

    def not_centred(x, k):
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        v = vh[:k].T
        return x @ v @ v.T

    def smallest_components(x, k):
        mean = x.mean(0)
        _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
        v = vh[-k:].T
        return mean + (x - mean) @ v @ v.T

    def codes_only(x, k):
        mean = x.mean(0)
        _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
        return (x - mean) @ vh[:k].T

    _fails("pca_reconstruction", not_centred, "max abs difference|differ")
    _fails("pca_reconstruction", smallest_components, "max abs difference|differ")
    _fails("pca_reconstruction", codes_only, "shape")


def test_principal_angles_alternative_passes_and_mistakes_fail():
    def via_arccos(A, B):
        qa, _ = torch.linalg.qr(A)
        qb, _ = torch.linalg.qr(B)
        return torch.arccos(torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1)).sort().values

    grading.check("principal_angles", via_arccos, verbose=False)

    def no_orthonormalization(A, B):
        return torch.arccos(torch.linalg.svdvals(A.T @ B).clamp(-1, 1)).sort().values

    def degrees(A, B):
        return torch.rad2deg(via_arccos(A, B))

    def descending(A, B):
        return via_arccos(A, B).flip(0)

    for wrong in (no_orthonormalization, degrees, descending):
        _fails("principal_angles", wrong, "max abs difference|differ")


def test_masking_noise_alternative_passes_and_mistakes_fail():
    def other_draws(x, mask_prob, mask_value, generator=None):
        # a correct solution that uses its random numbers differently from the reference
        u = torch.rand(x.shape, generator=generator)           # float32 draws, different stream
        return torch.where(u < mask_prob, torch.full_like(x, mask_value), x)

    grading.check("masking_noise", other_draws, verbose=False)

    def keep_prob_swapped(x, mask_prob, mask_value, generator=None):
        return other_draws(x, 1 - mask_prob, mask_value, generator)

    def same_mask_every_example(x, mask_prob, mask_value, generator=None):
        u = torch.rand(x.shape[1:], generator=generator, dtype=x.dtype)
        return torch.where(u < mask_prob, torch.full_like(x, mask_value), x)

    def zero_instead_of_mask_value(x, mask_prob, mask_value, generator=None):
        return other_draws(x, mask_prob, 0.0, generator)

    def gaussian_noise(x, mask_prob, mask_value, generator=None):
        return x + mask_prob * torch.randn(x.shape, generator=generator, dtype=x.dtype)

    def float32_output(x, mask_prob, mask_value, generator=None):
        return other_draws(x, mask_prob, mask_value, generator).float()

    _fails("masking_noise", keep_prob_swapped, "fraction")
    _fails("masking_noise", same_mask_every_example, "same mask")
    _fails("masking_noise", zero_instead_of_mask_value, "kept .* or masked")
    _fails("masking_noise", gaussian_noise, "kept .* or masked")
    _fails("masking_noise", float32_output, "dtype")


def test_sigmoid_contractive_penalty_alternative_passes_and_mistakes_fail():
    def closed_form(W, b, x):
        h = torch.sigmoid(x @ W.T + b)
        return ((h * (1 - h)) ** 2 * (W ** 2).sum(1)).sum(1)

    grading.check("sigmoid_contractive_penalty", closed_form, verbose=False)

    def not_squared(W, b, x):
        h = torch.sigmoid(x @ W.T + b)
        return (h * (1 - h) * (W ** 2).sum(1)).sum(1)

    def linear_encoder(W, b, x):
        return (W ** 2).sum().expand(x.shape[0])

    def wrong_axis(W, b, x):
        h = torch.sigmoid(x @ W.T + b)
        return ((h * (1 - h)) ** 2).sum(1) * (W ** 2).sum()

    def mean_over_batch(W, b, x):
        return closed_form(W, b, x).mean()

    for wrong in (not_squared, linear_encoder, wrong_axis):
        _fails("sigmoid_contractive_penalty", wrong, "max abs difference|differ")
    _fails("sigmoid_contractive_penalty", mean_over_batch, "shape")


# --- linear_ae_gradient_step (multi-step) -------------------------------------------------------

def _ae_step_numpy(W_e, b_e, W_d, b_d, x, lr):
    """The step with gradients derived by hand, in NumPy (independent of autograd)."""
    W_e, b_e, W_d, b_d, x = (t.numpy() for t in (W_e, b_e, W_d, b_d, x))
    n = x.shape[0]
    z = x @ W_e.T + b_e
    r = z @ W_d.T + b_d - x
    g = 2 * r / n                                          # dL/dx_hat
    gz = g @ W_d                                           # dL/dz
    grads = (gz.T @ x, gz.sum(0), g.T @ z, g.sum(0))
    new = [p - lr * gp for p, gp in zip((W_e, b_e, W_d, b_d), grads)]
    return ((r**2).sum(1).mean(), *new)


def test_linear_ae_step_reference_matches_hand_gradients_and_finite_differences():
    kinds = set()
    for case, ((W_e, b_e, W_d, b_d, x, lr), _) in enumerate(grading.cases("linear_ae_gradient_step",
                                                                           num_cases=10)):
        out = ex.linear_ae_gradient_step_reference(W_e, b_e, W_d, b_d, x, lr)
        for got, want in zip(out, _ae_step_numpy(W_e, b_e, W_d, b_d, x, lr)):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
        kinds.add(case % 5)
        if case % 5 == 1:                                   # the saddle: W_e does not move
            assert torch.equal(out[1], W_e) and not torch.equal(out[4], b_d)
        if lr == 0.0:
            assert all(torch.equal(a, b) for a, b in zip(out[1:], (W_e, b_e, W_d, b_d)))
    assert kinds == set(range(5))
    # central finite differences of the loss along one random direction of every parameter
    (W_e, b_e, W_d, b_d, x, _), _ = grading.cases("linear_ae_gradient_step", num_cases=1)[0]
    lr = 1.0
    loss, *stepped = ex.linear_ae_gradient_step_reference(W_e, b_e, W_d, b_d, x, lr)
    g = torch.Generator().manual_seed(5)
    params = [W_e, b_e, W_d, b_d]
    for i, (p, p_new) in enumerate(zip(params, stepped)):
        grad = (p - p_new) / lr
        v = torch.randn(p.shape, generator=g, dtype=torch.float64)
        h = 1e-5

        def loss_at(t, i=i):
            ps = list(params)
            ps[i] = t
            return ex.linear_ae_gradient_step_reference(*ps, x, 0.0)[0]

        fd = (loss_at(p + h * v) - loss_at(p - h * v)) / (2 * h)
        assert abs(fd.item() - (grad * v).sum().item()) < 1e-6 * (1 + abs(fd.item()))


def _ae_step_student(W_e, b_e, W_d, b_d, x, lr, *, factor=2.0, mean=True, sign=-1.0, biases=True):
    """A student-style solution (backpropagation by hand) with switchable mistakes."""
    n = x.shape[0]
    z = x @ W_e.T + b_e
    r = z @ W_d.T + b_d - x
    loss = r.pow(2).sum(1).mean()
    g = factor * r / (n if mean else 1)
    gz = g @ W_d
    gW_e, gb_e, gW_d, gb_d = gz.T @ x, gz.sum(0), g.T @ z, g.sum(0)
    if not biases:
        gb_e, gb_d = torch.zeros_like(gb_e), torch.zeros_like(gb_d)
    return (loss, W_e + sign * lr * gW_e, b_e + sign * lr * gb_e, W_d + sign * lr * gW_d,
            b_d + sign * lr * gb_d)


def test_linear_ae_step_student_style_passes_and_trains_to_the_pca_optimum():
    grading.check("linear_ae_gradient_step", _ae_step_student, num_cases=10, verbose=False)
    g = torch.Generator().manual_seed(904)
    f64 = torch.float64
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=f64))
    x = (torch.randn(200, 6, generator=g, dtype=f64) * torch.tensor([3.0, 2.0, 0.5, 0.3, 0.2, 0.1],
                                                                     dtype=f64)) @ q.T + 0.5
    optimum = torch.linalg.eigvalsh(torch.cov(x.T, correction=0)).flip(0)[2:].sum().item()
    p = (0.1 * torch.randn(2, 6, generator=g, dtype=f64), torch.zeros(2, dtype=f64),
         0.1 * torch.randn(6, 2, generator=g, dtype=f64), torch.zeros(6, dtype=f64))
    for _ in range(600):
        loss, *p = ex.linear_ae_gradient_step_reference(*p, x, 0.03)
    assert optimum * (1 - 1e-9) <= loss.item() < optimum * 1.005


@pytest.mark.parametrize("mistake", [dict(factor=1.0), dict(mean=False), dict(sign=1.0),
                                     dict(biases=False)])
def test_linear_ae_step_mistakes_fail(mistake):
    def wrong(*args):
        return _ae_step_student(*args, **mistake)

    with pytest.raises(AssertionError, match="max abs difference"):
        grading.check("linear_ae_gradient_step", wrong, verbose=False)
