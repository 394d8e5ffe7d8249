# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Tweedie, SURE and score matching
#
# **What you will learn**
#
# - energy-based models $p(x) = e^{-E(x)}/Z$, why the partition function $Z$ makes maximum
#   likelihood hard, and why the **score** $\nabla_x \log p(x)$ does not see $Z$ at all;
# - score fields of the toys, and of the toys blurred by Gaussian noise of level $\sigma$;
# - Langevin dynamics: sampling with the score only; its failure to find the right **weights** of
#   separated modes, and annealed Langevin (NCSN) that fixes it;
# - learning a score: explicit score matching $\to$ implicit (integration by parts) $\to$ sliced
#   (random projections) $\to$ denoising score matching, and why they have the same minimizer;
# - Tweedie's formula $E[x\mid y] = y + \sigma^2\nabla\log p_\sigma(y)$ and its second-order
#   version for $\mathrm{Cov}[x\mid y]$, checked exactly on mixtures;
# - SURE: the mean squared error of a denoiser estimated **without clean data**, and the
#   equivalence of denoising, score matching and SURE;
# - diffusion models as score models: $\varepsilon$-prediction is a scaled score.
#
# Notation (seed 003): data $x \sim p$, noise $\varepsilon \sim \mathcal N(0, I)$, noisy
# $y = \tilde x = x + \sigma\varepsilon$ with law $p_\sigma = p * \mathcal N(0, \sigma^2 I)$.
# Every claim is computed and **asserted**; Monte Carlo claims within 5 standard errors.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch

from course_lib import course_seed, get_device, seed_everything, set_num_threads, grading, plotting, widgets
from course_lib import diffusion, metrics, toy
from course_lib import score as sm
from course_lib.train import fit

SEED = course_seed()      # COURSE_SEED from the environment (default 0): rerun under any seed
gen = seed_everything(SEED)
set_num_threads(1)       # tiny networks: one CPU thread is fastest (COURSE_THREADS overrides)
device = get_device()
f64 = torch.float64
print("device:", device)


def within(values, expected, z=5.0):
    """Is the mean of ``values`` within z standard errors of ``expected``? Returns (ok, mean, se)."""
    values = values.detach().double().cpu()
    mean, se = values.mean().item(), values.std().item() / math.sqrt(values.numel())
    return abs(mean - expected) <= z * se + 1e-12, mean, se

# %% [markdown]
# ## 1. Energy-based models and the partition function
#
# An energy-based model defines a density through an energy $E_\theta(x)$:
#
# $$p_\theta(x) = \frac{e^{-E_\theta(x)}}{Z_\theta}, \qquad Z_\theta = \int e^{-E_\theta(x)}\,dx .$$
#
# Lowering the energy of one region raises its probability and, through $Z_\theta$, lowers all the
# others: mass is redistributed over the whole space. Maximum likelihood needs
# $\nabla_\theta \log Z_\theta = -E_{p_\theta}[\nabla_\theta E_\theta(x)]$, an integral over the
# whole space: intractable in high dimension. The **score** does not need it:
#
# $$s(x) = \nabla_x \log p_\theta(x) = -\nabla_x E_\theta(x) - \underbrace{\nabla_x \log Z_\theta}_{=\,0},$$
#
# and $\log p$ is recovered from the score up to the constant $-\log Z$. The score field points
# toward higher density.
#
# **Check.** Take the toy mixture's unnormalized density $e^{-E(x)} = 7\,p(x)$ (so $Z = 7$, unknown to
# the score): autograd of $-E$ gives exactly the mixture's closed-form score, and quadrature
# recovers $Z$.

# %%
mix = toy.three_mode_mixture(f64)            # weights 0.5, 0.3, 0.2
print(mix)


def energy(x):
    return -(mix.log_prob(x) + math.log(7.0))   # E(x) = -log(7 p(x)), so Z = 7


x = 2 * torch.randn(500, 2, generator=gen, dtype=f64)
xr = x.clone().requires_grad_(True)
score_autograd = torch.autograd.grad(-energy(xr).sum(), xr)[0]          # -grad E
assert torch.allclose(score_autograd, mix.score(x), atol=1e-10)

t = torch.linspace(-8, 8, 801, dtype=f64)
gx, gy = torch.meshgrid(t, t, indexing="ij")
unnorm = torch.exp(-energy(torch.stack([gx.flatten(), gy.flatten()], 1))).reshape(gx.shape)
Z = torch.trapezoid(torch.trapezoid(unnorm, t, dim=1), t).item()
print(f"Z by quadrature = {Z:.8f} (the score never needed it)")
assert abs(Z - 7.0) < 1e-6

# %% [markdown]
# ## 2. Score fields, and the noised density
#
# For a mixture $p = \sum_k w_k \mathcal N(\mu_k, s_k^2)$ the score is
# $\nabla\log p(x) = \sum_k r_k(x)\,\big(-(x-\mu_k)/s_k^2\big)$ with responsibilities $r_k$.
# Adding noise, $y = x + \sigma\varepsilon$, convolves each component:
# $p_\sigma = \sum_k w_k\mathcal N(\mu_k, s_k^2 + \sigma^2)$ (`GaussianMixture.convolve`). The
# score of $p_\sigma$ is smooth, defined everywhere, and for large $\sigma$ it approaches the score
# of a single broad Gaussian, $-(y - \bar\mu)/\sigma^2$: it shrinks like $1/\sigma^2$.

# %%
widgets.plot_noised_score_field();

# %%
widgets.score_field_explorer()

# %% [markdown]
# **Check.** The closed-form score of the convolved mixture equals autograd of its log-density,
# and for $\sigma = 30$ it is $-(y - \bar\mu)/\sigma^2$ to within 2 % near the data.

# %%
for sigma in (0.1, 1.0, 3.0):
    noisy = mix.convolve(sigma)
    yr = x.clone().requires_grad_(True)
    g_auto = torch.autograd.grad(noisy.log_prob(yr).sum(), yr)[0]
    assert torch.allclose(g_auto, noisy.score(x), atol=1e-9)
sigma = 30.0
mean_mix = mix.weights @ mix.means
far = -(x - mean_mix) / sigma ** 2
rel = ((mix.convolve(sigma).score(x) - far).norm(dim=1) / far.norm(dim=1)).max().item()
print(f"sigma = {sigma}: max relative deviation from -(y - mean)/sigma^2 = {rel:.4f}")
assert rel < 0.02

# %% [markdown]
# ## 3. Langevin dynamics
#
# Without $Z$ we cannot sample $p$ directly, but the score is enough. The Langevin diffusion
# $dx = \nabla\log p(x)\,dt + \sqrt 2\,dW$ has $p$ as its stationary law; discretized with step
# $\eta$:
#
# $$x_{k+1} = x_k + \eta\,\nabla\log p(x_k) + \sqrt{2\eta}\; z_k, \qquad z_k \sim \mathcal N(0, I).$$
#
# The drift pushes samples up the density, the noise keeps them exploring. (Song & Ermon's
# Algorithm 1 writes the same step as $x + \tfrac{\alpha}{2}s + \sqrt\alpha z$, i.e.
# $\alpha = 2\eta$; `course_lib` uses the NCSN code's $\eta$ form. In both, the noise variance is
# twice the drift coefficient.)
#
# **Check on a Gaussian.** For $p = \mathcal N(m, C)$ the chain is linear,
# $x_{k+1} = A x_k + \eta C^{-1} m + \sqrt{2\eta} z$ with $A = I - \eta C^{-1}$; its stationary
# covariance solves $S = A S A^\top + 2\eta I$, so $S = 2\eta(I - A^2)^{-1}$ here ($A$ symmetric),
# which is $C + O(\eta)$. 2000 chains must reproduce $m$ and $S$.

# %%
m = torch.tensor([1.0, -2.0], dtype=f64)
C = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=f64)
P = torch.linalg.inv(C)
eta, n = 0.05, 2000
xs = sm.langevin_dynamics(lambda v: -(v - m) @ P, torch.zeros(n, 2, dtype=f64), eta, 300, generator=gen)
A = torch.eye(2, dtype=f64) - eta * P
S = 2 * eta * torch.linalg.inv(torch.eye(2, dtype=f64) - A @ A)
se_mean = (S.diagonal() / n).sqrt()
se_cov = ((S.diagonal()[:, None] * S.diagonal()[None, :] + S ** 2) / n).sqrt()
print("sample mean", xs.mean(0).numpy().round(3), "target", m.numpy())
print("sample cov\n", torch.cov(xs.T).numpy().round(3), "\nstationary S\n", S.numpy().round(3))
assert ((xs.mean(0) - m).abs() <= 5 * se_mean).all()
assert ((torch.cov(xs.T) - S).abs() <= 5 * se_cov).all() and (S - C).abs().max() < 0.05

# %% [markdown]
# ### Exercise 1: one Langevin step
#
# Implement $x + \eta\, s + \sqrt{2\eta}\, z$ for tensors `x`, `score`, `z` of shape `(N, D)` and a
# float `step_size` $\eta$. The check compares with `course_lib` on random float64 inputs with
# $\eta$ from $10^{-5}$ to 1.

# %% nbgrader={"grade": false, "grade_id": "langevin_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def langevin_step(x, score, step_size, z):
    """One Langevin update; x, score, z: (N, D); step_size: float > 0. Returns (N, D)."""
    ### BEGIN SOLUTION
    return x + step_size * score + math.sqrt(2 * step_size) * z
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "langevin_step_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("langevin_step", langevin_step)

# %% [markdown]
# Move the step size and the number of steps. Particles start uniformly on $[-4,4]^2$; the title
# compares the fraction of samples per mode with the weights $(0.5, 0.3, 0.2)$.

# %%
widgets.plot_langevin();

# %%
widgets.langevin_explorer()

# %% [markdown]
# ### Langevin cannot find the weights of separated modes
#
# Between two well separated modes the density is tiny: the drift pushes every particle back to
# its own mode, and crossing requires noise to climb a barrier of height $\sim \Delta E$, which
# takes a time exponential in it. So within any practical number of steps the mass in each mode is
# fixed by where the particles **started**, not by the weights. Worse, the score cannot even
# *see* the weights near a mode: there $\nabla\log p \approx \nabla\log \mathcal N(\mu_k, s_k^2)$,
# independent of $w_k$.
#
# The NCSN toy (REFERENCES A5): $p = 0.8\,\mathcal N((5,5), I) + 0.2\,\mathcal N((-5,-5), I)$,
# 1280 particles from $U[-8, 8]^2$, plain Langevin with $\eta = 0.05$ (NCSN's $\mathrm{lr} = 0.1$
# in the $\mathrm{lr}/2$ form). **Annealed** Langevin runs the same chain on
# $p_{\sigma_1}, \dots, p_{\sigma_L}$ with $\sigma$ decreasing geometrically from 20 to 1, step
# $\eta_i = \eta\,\sigma_i^2/\sigma_L^2$: at large $\sigma$ the modes overlap, the chain mixes, and
# the mass settles in proportion to the weights before the modes separate.

# %%
ncsn = toy.GaussianMixture(torch.tensor([[5.0, 5.0], [-5.0, -5.0]], dtype=f64), torch.ones(2, dtype=f64),
                           torch.tensor([0.8, 0.2], dtype=f64))
x0 = 16 * torch.rand(1280, 2, generator=gen, dtype=f64) - 8
plain = sm.langevin_dynamics(ncsn.score, x0, 0.05, 500, generator=gen)
sigmas_toy = sm.geometric_sigmas(20.0, 1.0, 10)
annealed = sm.annealed_langevin_dynamics(lambda v, s: ncsn.convolve(s).score(v), x0, sigmas_toy, 0.05,
                                         100, generator=gen)
frac_start = (x0.sum(1) > 0).double().mean().item()
frac_plain = (plain.sum(1) > 0).double().mean().item()
frac_annealed = (annealed.sum(1) > 0).double().mean().item()
se = math.sqrt(0.8 * 0.2 / 1280)
print(f"fraction in the (5, 5) mode: start {frac_start:.3f}, plain Langevin {frac_plain:.3f}, "
      f"annealed {frac_annealed:.3f} (weight 0.8, standard error {se:.3f})")
assert abs(frac_annealed - 0.8) <= 5 * se
assert abs(frac_plain - 0.8) > 10 * se and abs(frac_plain - frac_start) < 0.05

fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), layout="constrained")
for ax, pts, name in [(axes[0], plain, "plain Langevin"), (axes[1], annealed, "annealed Langevin")]:
    plotting.density_contours(ncsn.log_prob, (-9, 9), (-9, 9), ax=ax, log=True, cmap="Greys")
    plotting.scatter_samples(pts, ax=ax, s=3, title=name);

# %% [markdown]
# ## 4. Learning the score: four losses with one minimizer
#
# **Explicit score matching** fits a model $s_\theta$ to the true score (the Fisher divergence):
#
# $$J_{\mathrm{ESM}}(\theta) = \tfrac12 E_{p}\|s_\theta(x) - \nabla\log p(x)\|^2 .$$
#
# We do not know $\nabla\log p$. Expanding the square, the cross term is, by integration by parts
# (in each coordinate, boundary terms vanish when $p\,s_\theta \to 0$ at infinity),
#
# $$E_p[s_\theta^\top \nabla\log p] = \int s_\theta^\top \nabla p\,dx = -\int p\,\nabla\cdot s_\theta\,dx
#   = -E_p[\mathrm{tr}\,\nabla_x s_\theta(x)],$$
#
# so $J_{\mathrm{ESM}} = \underbrace{E_p\big[\tfrac12\|s_\theta\|^2 + \mathrm{tr}\,\nabla_x s_\theta\big]}_{J_{\mathrm{ISM}}\ \text{(Hyvärinen)}}
#  + \tfrac12 E_p\|\nabla\log p\|^2$: the **implicit** loss needs only samples, at the price of a
# Jacobian trace ($D$ backward passes).
#
# **Check** on the toy mixture with two random networks: per sample,
# $J_{\mathrm{ISM}} - J_{\mathrm{ESM}} + \tfrac12\|\nabla\log p\|^2$ averages to 0.

# %%
def small_net(seed, d=2):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.Tanh(), torch.nn.Linear(32, d)).double()


xd = mix.sample(20000, generator=gen)
for seed in (0, 1):
    net = small_net(seed)
    ism = sm.score_matching_loss(net, xd, reduction="none").detach()
    esm = sm.explicit_score_matching_loss(net, mix.score, xd, reduction="none").detach()
    ok, mean, se_ = within(ism - esm + 0.5 * (mix.score(xd) ** 2).sum(1), 0.0)
    print(f"net {seed}: J_ISM = {ism.mean():.4f}, J_ESM = {esm.mean():.4f}, "
          f"mean of ISM - ESM + 1/2|grad log p|^2 = {mean:.4f} ± {se_:.4f}")
    assert ok

# %% [markdown]
# **Sliced score matching.** For a random $v$ with $E[vv^\top] = I$ (Gaussian or Rademacher),
# $E_v[v^\top A v] = \mathrm{tr}A$ and $E_v[(v^\top s)^2] = \|s\|^2$, so
#
# $$J_{\mathrm{SSM}} = E_{x}E_v\big[v^\top \nabla_x s_\theta(x)\,v + \tfrac12 (v^\top s_\theta(x))^2\big] = J_{\mathrm{ISM}} .$$
#
# $v^\top\nabla_x s_\theta\, v$ is one Jacobian-vector product: its cost does not grow with $D$,
# while the exact trace needs $D$ backward passes. The price is variance, and control of the score
# only along random directions. Check: agreement in expectation, and the measured cost.

# %%
net = small_net(2)
xs5 = xd[:8]
exact = sm.score_matching_loss(net, xs5, reduction="none").detach()
sliced = sm.sliced_score_matching_loss(net, xs5.repeat(5000, 1), generator=gen,
                                       reduction="none").detach().reshape(5000, 8)
for j in range(8):
    assert within(sliced[:, j], exact[j].item())[0]
print("exact ISM per point  ", exact[:4].numpy().round(3))
print("sliced, 5000 probes  ", sliced.mean(0)[:4].numpy().round(3))


def seconds(fn, repeats=5):
    fn()                                          # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def backward_passes(fn):
    """Count the backward passes (autograd.grad calls) a loss needs: the machine-independent cost."""
    calls, grad = 0, torch.autograd.grad

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return grad(*args, **kwargs)

    torch.autograd.grad = counting
    try:
        fn()
    finally:
        torch.autograd.grad = grad
    return calls


cost = {}
for d in (2, 16, 64, 128):
    net_d = small_net(3, d).float()
    xb = torch.randn(256, d)
    exact_fn = lambda: sm.score_matching_loss(net_d, xb)
    sliced_fn = lambda: sm.sliced_score_matching_loss(net_d, xb)
    cost[d] = (backward_passes(exact_fn), backward_passes(sliced_fn))
    print(f"D = {d:4d}: exact trace {cost[d][0]:4d} backward passes, {1e3 * seconds(exact_fn):7.1f} ms; "
          f"sliced {cost[d][1]} pass, {1e3 * seconds(sliced_fn):5.1f} ms")
    assert cost[d] == (d, 1)   # exact: one pass per dimension; sliced: one per projection

# %% [markdown]
# **Denoising score matching** (Vincent 2011) avoids derivatives of $s_\theta$ altogether. Perturb
# the data, $\tilde x = x + \sigma\varepsilon$, and regress on the score of the perturbation kernel,
# $\nabla_{\tilde x}\log q(\tilde x\mid x) = -(\tilde x - x)/\sigma^2 = -\varepsilon/\sigma$:
#
# $$J_{\mathrm{DSM}}(\theta) = E_{x,\varepsilon}\ \tfrac12\Big\|s_\theta(\tilde x) + \frac{\tilde x - x}{\sigma^2}\Big\|^2 .$$
#
# Expanding both squares, $J_{\mathrm{DSM}}$ and the explicit loss **on the noised density**,
# $\tfrac12 E\|s_\theta(\tilde x) - \nabla\log p_\sigma(\tilde x)\|^2$, share
# $\tfrac12E\|s_\theta\|^2$, and their cross terms agree because
# $E[\nabla\log q(\tilde x\mid x)\mid\tilde x] = \nabla \log p_\sigma(\tilde x)$. So they differ by
# a constant, $C = \frac{D}{2\sigma^2} - \tfrac12 E\|\nabla\log p_\sigma\|^2$, whatever the model,
# and DSM's minimizer is $\nabla\log p_\sigma$ (not $\nabla\log p$: small $\sigma$ for accuracy).
#
# **Check** for several models (three networks, the exact $\nabla\log p_\sigma$, and zero):
# the difference of the two losses is the same constant, within Monte Carlo error.

# %%
sigma = 0.5
noisy = mix.convolve(sigma)
yb = noisy.sample(400000, generator=gen)
C_const = 2 / (2 * sigma ** 2) - 0.5 * (noisy.score(yb) ** 2).sum(1).mean().item()
xc = mix.sample(40000, generator=gen)
models = {"net 0": small_net(0), "net 1": small_net(1), "net 2": small_net(2),
          "exact grad log p_sigma": noisy.score, "zero": torch.zeros_like}
for name, model in models.items():
    g_eps = torch.Generator().manual_seed(11)
    dsm = sm.denoising_score_matching_loss(model, xc, sigma, generator=g_eps, reduction="none")
    eps_same = torch.randn(xc.shape, generator=torch.Generator().manual_seed(11), dtype=f64)
    esm = sm.explicit_score_matching_loss(model, noisy.score, xc + sigma * eps_same, reduction="none")
    ok, mean, se_ = within((dsm - esm).detach(), C_const)
    print(f"{name:24s} J_DSM = {dsm.mean():8.4f}  J_ESM(p_sigma) = {esm.mean():7.4f}  "
          f"difference = {mean:.4f} ± {se_:.4f}   (C = {C_const:.4f})")
    assert ok

# %% [markdown]
# ### Exercise 2: the DSM loss
#
# Given the model's scores at the noisy points `score_at_x_tilde` (N, D), the clean `x` (N, D), the
# noisy `x_tilde` (N, D) and the float `sigma`, return the scalar
# $\tfrac12\,\mathrm{mean}_n\|s(\tilde x_n) + (\tilde x_n - x_n)/\sigma^2\|^2$ (sum over dimensions,
# mean over the batch).

# %% nbgrader={"grade": false, "grade_id": "dsm_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def dsm_loss(score_at_x_tilde, x, x_tilde, sigma):
    """Denoising score matching loss, a scalar tensor."""
    ### BEGIN SOLUTION
    target = -(x_tilde - x) / sigma ** 2
    return 0.5 * ((score_at_x_tilde - target) ** 2).sum(1).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "dsm_loss_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("dsm_loss", dsm_loss)

# %% [markdown]
# ## 5. Tweedie's formula, first and second order
#
# With $y = x + \sigma\varepsilon$, $p_\sigma(y) = \int p(x)\,\mathcal N(y; x, \sigma^2 I)\,dx$.
# Differentiate under the integral, using $\nabla_y \mathcal N(y;x,\sigma^2 I) = -\frac{y-x}{\sigma^2}\mathcal N$:
#
# $$\nabla p_\sigma(y) = \int \frac{x - y}{\sigma^2}\,p(x)\mathcal N(y;x,\sigma^2I)\,dx
#   = p_\sigma(y)\,\frac{E[x\mid y] - y}{\sigma^2}
#   \quad\Longrightarrow\quad E[x\mid y] = y + \sigma^2\,\nabla\log p_\sigma(y).$$
#
# The posterior mean (the MMSE denoiser of seed 001) needs only the score of the **noisy** law, not
# the prior. Differentiating once more (seed 003: the Gaussian is an exponential family in $x$ with
# natural parameter $y/\sigma^2$, and the derivatives of its log-partition function are the
# posterior cumulants):
#
# $$\mathrm{Cov}[x\mid y] = \sigma^2 \frac{\partial E[x\mid y]}{\partial y} = \sigma^2\big(I + \sigma^2\nabla^2\log p_\sigma(y)\big).$$
#
# **Check** against the mixture's exact posterior moments (`GaussianMixture.posterior_mean`,
# `.posterior_covariance`: Bayes' rule per component, no score involved) and against a Monte Carlo
# posterior mean (importance sampling with the prior as proposal).

# %%
y = 3 * torch.randn(200, 2, generator=gen, dtype=f64)
for sigma in (0.1, 0.5, 2.0):
    noisy = mix.convolve(sigma)
    m1 = sm.tweedie_denoise(y, noisy.score(y), sigma)
    c2 = sm.tweedie_covariance(noisy.hessian_log_prob(y), sigma)
    err_m = (m1 - mix.posterior_mean(y, sigma)).abs().max().item()
    err_c = (c2 - mix.posterior_covariance(y, sigma)).abs().max().item()
    print(f"sigma = {sigma}: max |Tweedie - E[x|y]| = {err_m:.1e}, "
          f"max |2nd-order Tweedie - Cov[x|y]| = {err_c:.1e}")
    assert err_m < 1e-10 and err_c < 1e-10

sigma, y1 = 0.8, torch.tensor([[0.5, 0.0]], dtype=f64)
prior = mix.sample(400000, generator=gen)
w = torch.softmax(-((y1 - prior) ** 2).sum(1) / (2 * sigma ** 2), 0)     # w_i ∝ N(y; x_i, sigma^2)
mc = (w[:, None] * prior).sum(0)
mc_se = ((w[:, None] ** 2) * (prior - mc) ** 2).sum(0).sqrt()
tw = sm.tweedie_denoise(y1, mix.convolve(sigma).score(y1), sigma)[0]
print(f"E[x | y = (0.5, 0)]: Tweedie {tw.numpy().round(4)}, Monte Carlo {mc.numpy().round(4)} ± {mc_se.numpy().round(4)}")
assert ((tw - mc).abs() <= 5 * mc_se).all()

# %% [markdown]
# ### Exercise 3: Tweedie's denoiser
#
# Return $y + \sigma^2 s$ for `y`, `score` of shape (N, D) and a float `sigma`.

# %% nbgrader={"grade": false, "grade_id": "tweedie_denoise", "locked": false, "schema_version": 3, "solution": true, "task": false}
def tweedie_denoise(y, score, sigma):
    """Posterior mean E[x | y] from the score of the noisy law; (N, D)."""
    ### BEGIN SOLUTION
    return y + sigma ** 2 * score
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "tweedie_denoise_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("tweedie_denoise", tweedie_denoise)

# %% [markdown]
# ## 6. SURE: the error of a denoiser without clean data
#
# A denoiser $f$ maps $y$ to $\hat x = f(y)$; its quality is $\mathrm{MSE}(f) = E\|f(y) - x\|^2$,
# which needs $x$. Stein's lemma (integration by parts against the Gaussian,
# $E[\varepsilon^\top g(y)] = \sigma E[\nabla\cdot g(y)]$) gives, with $f(y) - x = f(y) - y + \sigma\varepsilon$,
#
# $$E\|f(y) - x\|^2 = E\big[\underbrace{\|f(y) - y\|^2 - D\sigma^2 + 2\sigma^2\,\nabla\cdot f(y)}_{\mathrm{SURE}(f;\,y)}\big],$$
#
# computable from the noisy $y$ alone. **Check** for a family of denoisers at $\sigma = 0.5$:
# linear shrinkage $f(y) = a y$, soft thresholding, the Bayes denoiser $E[x\mid y]$, and a network
# **trained by minimizing SURE on noisy data only**. For each, the mean SURE matches the true MSE
# (which uses the clean data) within 5 standard errors of their paired difference.

# %%
sigma = 0.5
x_clean = mix.sample(20000, generator=gen)
y_noisy = x_clean + sigma * torch.randn(x_clean.shape, generator=gen, dtype=f64)

denoiser_net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64),
                                   torch.nn.SiLU(), torch.nn.Linear(64, 2)).double()
torch.manual_seed(0)
hist = fit(denoiser_net, lambda model, yb, generator=None: sm.sure(model, yb, sigma).mean(),
           y_noisy, num_steps=400, batch_size=256, lr=3e-3, device="cpu", generator=gen,
           desc="SURE training (noisy data only)")
denoiser_net.eval()

denoisers = {"identity f(y) = y": lambda v: v,
             "shrinkage 0.7 y": lambda v: 0.7 * v,
             "shrinkage 0.95 y": lambda v: 0.95 * v,
             "soft threshold 0.3": lambda v: torch.sign(v) * torch.relu(v.abs() - 0.3),
             "network trained by SURE": denoiser_net,
             "Bayes E[x|y] (Tweedie)": lambda v: mix.posterior_mean(v, sigma)}
results = {}
for name, f in denoisers.items():
    sure_vals = sm.sure(f, y_noisy, sigma).detach()
    true_se = ((f(y_noisy) - x_clean) ** 2).sum(1).detach()
    ok, _, se_ = within(sure_vals - true_se, 0.0)
    results[name] = (sure_vals.mean().item(), true_se.mean().item())
    print(f"{name:26s} SURE {results[name][0]:.4f}   true MSE {results[name][1]:.4f}   (± {se_:.4f})")
    assert ok
assert abs(results["identity f(y) = y"][1] - 2 * sigma ** 2) < 0.02
best = min(results, key=lambda k: results[k][0])
assert best == "Bayes E[x|y] (Tweedie)"
ratio = results["network trained by SURE"][1] / results["Bayes E[x|y] (Tweedie)"][1]
print(f"MSE of the SURE-trained network / Bayes MSE = {ratio:.3f}")
assert ratio < 1.2

# %% [markdown]
# **The minimizer of SURE is Tweedie's denoiser, and SURE is score matching.** Pointwise, the MSE is
# minimized by $f^*(y) = E[x\mid y] = y + \sigma^2\nabla\log p_\sigma(y)$: the SURE-trained network
# above approaches the Bayes MSE without ever seeing clean data. Writing any denoiser as
# $f(y) = y + \sigma^2 s(y)$, SURE becomes
#
# $$\mathrm{SURE}(f; y) = \sigma^4\|s\|^2 - D\sigma^2 + 2\sigma^2(D + \sigma^2\nabla\cdot s)
#   = 2\sigma^4\Big[\tfrac12\|s(y)\|^2 + \nabla\cdot s(y)\Big] + D\sigma^2,$$
#
# i.e. $2\sigma^4$ times Hyvärinen's implicit score matching loss on $p_\sigma$, plus a constant;
# and the MSE of $f$ is $\sigma^4$ times the explicit loss $E\|s - \nabla\log p_\sigma\|^2$ plus the
# Bayes risk. **Denoising, score matching and SURE are the same problem** (seed 003). Check the
# identity exactly, sample by sample, for a network score; then scan $f_t = y + t\sigma^2\nabla\log p_\sigma$:
# SURE is smallest at $t = 1$.

# %%
s_net = small_net(5)
lhs = sm.sure(lambda v: v + sigma ** 2 * s_net(v), y_noisy[:2000], sigma)
rhs = 2 * sigma ** 4 * sm.score_matching_loss(s_net, y_noisy[:2000], reduction="none") + 2 * sigma ** 2
assert torch.allclose(lhs, rhs, atol=1e-10)

noisy = mix.convolve(sigma)
ts = [0.0, 0.5, 0.8, 1.0, 1.2, 1.5]
scan = [sm.sure(lambda v, t=t: v + t * sigma ** 2 * noisy.score(v), y_noisy, sigma).mean().item() for t in ts]
print("t:         ", ts)
print("mean SURE: ", [round(v, 4) for v in scan])
assert min(range(len(ts)), key=lambda i: scan[i]) == ts.index(1.0)

# %% [markdown]
# ### Exercise 4: SURE of soft thresholding
#
# For $f(y) = \mathrm{sign}(y)\max(|y| - \tau, 0)$ (elementwise), $\partial f_i/\partial y_i$ is 1
# where $|y_i| > \tau$ and 0 elsewhere, so $\nabla\cdot f(y) = \#\{i : |y_i| > \tau\}$. Return the
# per-example SURE, shape (N,), for `y` (N, D), float `sigma` and float `threshold`.

# %% nbgrader={"grade": false, "grade_id": "sure_soft_threshold", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sure_soft_threshold(y, sigma, threshold):
    """SURE (N,) of soft thresholding at `threshold` for noise std `sigma`."""
    ### BEGIN SOLUTION
    f = torch.sign(y) * torch.clamp(y.abs() - threshold, min=0)
    div = (y.abs() > threshold).sum(1).to(y.dtype)
    return ((f - y) ** 2).sum(1) - y.shape[1] * sigma ** 2 + 2 * sigma ** 2 * div
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sure_soft_threshold_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("sure_soft_threshold", sure_soft_threshold)

# %% [markdown]
# ## 7. Diffusion models are score models
#
# In DDPM, $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ (seed 004). Tweedie for
# the scaled variable gives $\nabla\log q_t(x_t) = -E[\varepsilon\mid x_t]/\sqrt{1-\bar\alpha_t}$:
# the optimal noise predictor **is a scaled score**, and $L_\text{simple}$ is denoising score
# matching with weight $1-\bar\alpha_t$. Check with the exact $E[\varepsilon\mid x_t]$ of the mixture
# (`diffusion.optimal_eps_model`) against the score of the exact marginal
# $q_t$ = `mix.scale(sqrt(abar_t)).convolve(sqrt(1 - abar_t))`, at every 100th step.

# %%
schedule = diffusion.NoiseSchedule.linear(1000)
eps_model = diffusion.optimal_eps_model(mix, schedule)
xt = 2 * torch.randn(300, 2, generator=gen, dtype=f64)
worst = 0.0
for step in range(0, 1000, 100):
    t_idx = torch.full((300,), step, dtype=torch.long)
    ab = schedule.alphas_cumprod[step].item()
    exact_score = mix.scale(math.sqrt(ab)).convolve(math.sqrt(1 - ab)).score(xt)
    worst = max(worst, (diffusion.eps_to_score(schedule, t_idx, eps_model(xt, t_idx)) - exact_score).abs().max().item())
print(f"max |eps_to_score(E[eps|x_t]) - grad log q_t| over t = 0, 100, ..., 900: {worst:.1e}")
assert worst < 1e-8

# %% [markdown]
# **The reverse process driven by a score.** Any score model gives a noise model,
# $\varepsilon_\theta = -\sqrt{1-\bar\alpha_t}\,s_\theta$; feeding the exact score of $q_t$ to
# DDPM's Algorithm 2 must sample the mixture: the fraction of samples per mode matches the weights
# (binomial standard errors).

# %%
def score_driven_eps(x_t, t_idx):
    """eps = -sqrt(1 - abar_t) grad log q_t(x_t); Algorithm 2 calls it with one t for the batch."""
    a = schedule.alphas_cumprod[t_idx[0]].item()
    q_t = mix.scale(math.sqrt(a)).convolve(math.sqrt(1 - a))          # exact marginal of x_t
    return diffusion.score_to_eps(schedule, t_idx, q_t.score(x_t))


samples = diffusion.sample(schedule, score_driven_eps, (2000, 2), generator=gen, dtype=f64, device="cpu")
frac = metrics.mode_fractions(samples, mix)
se_frac = (mix.weights * (1 - mix.weights) / 2000).sqrt()
print("fraction per mode", frac.numpy().round(3), "weights", mix.weights.numpy())
assert ((frac - mix.weights).abs() <= 5 * se_frac).all()
plotting.scatter_samples(samples, title="DDPM sampling driven by the exact score");

# %% [markdown]
# **A trained score model, error per noise level.** Train one noise-conditional network
# $s_\theta(x, \sigma) = \mathrm{net}(x, \log\sigma)/\sigma$ (`sm.NoiseConditionalScoreNet`, a
# `TimeConditionedMLP` on $\log\sigma$) with NCSN's loss: DSM at a random level per example,
# weighted by $\sigma^2$. Then measure its relative error against the exact score of
# $p_\sigma$ at each level, $E\|s_\theta - \nabla\log p_\sigma\|^2 / E\|\nabla\log p_\sigma\|^2$
# (DESIGN quality bar), and sample with annealed Langevin using the **trained** score. Expect under 10
# percent at every level down to $\sigma \approx 0.2$, growing at the smallest levels, where
# $\nabla\log p_\sigma$ changes on the scale $\sigma$ and is hardest to fit.

# %%
sigmas = sm.geometric_sigmas(3.0, 0.05, 10, dtype=torch.float32)
train_data = mix.to(torch.float32).sample(20000, generator=gen)
score_net = sm.NoiseConditionalScoreNet(2, hidden=64, num_layers=2)
torch.manual_seed(0)
hist = fit(score_net, lambda model, xb, generator=None: sm.annealed_denoising_score_matching_loss(
    model, xb, sigmas.to(xb.device), generator=generator), train_data, num_steps=1000, batch_size=256,
    lr=2e-3, device=device, generator=gen, desc="NCSN training")
score_net.eval()
hist.plot(smooth=25, title="annealed DSM loss");

# %%
mix32 = mix.to(torch.float32)
errors = {}
for s_level in sigmas.tolist():
    errors[s_level] = sm.score_error(lambda v, s_level=s_level: score_net(v, s_level), mix32, s_level,
                                     num_samples=4000, generator=gen, device=device)
    print(f"sigma = {s_level:6.3f}: relative squared score error {errors[s_level]:.4f}")
assert all(e < 0.1 for s_level, e in errors.items() if s_level > 0.19)
assert max(errors.values()) < 0.6

# %%
with torch.no_grad():
    x_init = (8 * torch.rand(2000, 2, generator=gen) - 4).to(device)
    learned = sm.annealed_langevin_dynamics(score_net, x_init, sigmas, 0.1 * sigmas[-1].item() ** 2, 30,
                                            generator=gen, final_denoise=True).cpu()
frac_learned = metrics.mode_fractions(learned, mix)
print("annealed Langevin with the trained score: fraction per mode", frac_learned.numpy().round(3))
assert ((frac_learned - mix.weights).abs() < 0.1).all()
fig, ax = plt.subplots(figsize=(4.5, 4.3))
plotting.density_contours(mix.log_prob, (-4, 4), (-4, 4), ax=ax, log=True, cmap="Greys")
plotting.scatter_samples(learned, ax=ax, s=3, title="annealed Langevin, trained score");

# %% [markdown]
# ## Summary
#
# - The score $\nabla\log p$ ignores the partition function; Langevin dynamics samples with it, but
#   cannot move mass between separated modes; annealing over noise levels can.
# - Explicit, implicit (Hyvärinen), sliced and denoising score matching differ by constants that do
#   not depend on the model (checked numerically); DSM needs no derivative of the model.
# - Tweedie: $E[x\mid y] = y + \sigma^2\nabla\log p_\sigma(y)$ and
#   $\mathrm{Cov}[x\mid y] = \sigma^2(I + \sigma^2\nabla^2\log p_\sigma)$, exact on mixtures.
# - SURE estimates a denoiser's MSE from noisy data; it is implicit score matching on $p_\sigma$,
#   and its minimizer is Tweedie's denoiser.
# - DDPM's $\varepsilon$-prediction is the score scaled by $-\sqrt{1-\bar\alpha_t}$.
