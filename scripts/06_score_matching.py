# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Tweedie, SURE and score matching
#
# **What you will learn**
#
# - energy-based models $p(x) = e^{-E(x)}/Z$, why the partition function $Z$ makes maximum
#   likelihood hard, and why the **score** $\nabla_x \log p(x)$ does not see $Z$ at all;
# - score fields of the toys, and of the toys blurred by Gaussian noise of level $\sigma$;
# - Langevin dynamics: sampling with the score only; its failure to find the right **weights** of
#   separated modes, and annealed Langevin (NCSN, [Song & Ermon 2019](../docs/bibliography.md#song2019))
#   that fixes it;
# - learning a score: explicit score matching $\to$ implicit
#   ([Hyvärinen 2005](../docs/bibliography.md#hyvarinen2005), integration by parts) $\to$ sliced
#   ([Song et al. 2019](../docs/bibliography.md#song2019b), random projections, and how their
#   variance falls with their number) $\to$ denoising score matching
#   ([Vincent 2011](../docs/bibliography.md#vincent2011)), and why they have the same minimizer;
# - Tweedie's formula $E[x\mid y] = y + \sigma^2\nabla\log p_\sigma(y)$
#   ([Efron 2011](../docs/bibliography.md#efron2011)), its second-order version for
#   $\mathrm{Cov}[x\mid y]$ and the higher cumulants from the exponential-family view
#   ([Meng et al. 2021](../docs/bibliography.md#meng2021)), checked exactly on mixtures up to the third;
# - SURE ([Stein 1981](../docs/bibliography.md#stein1981)): the mean squared error of a denoiser
#   estimated **without clean data**, and the equivalence of denoising, score matching and SURE;
# - diffusion models as score models: $\varepsilon$-prediction is a scaled score, and what a trained
#   noise predictor's score is worth at each step.
#
# Sources: the [bibliography](../docs/bibliography.md).
#
# Notation: data $x \sim p$, noise $\varepsilon \sim \mathcal N(0, I)$, noisy
# $y = \tilde x = x + \sigma\varepsilon$ with law $p_\sigma = p * \mathcal N(0, \sigma^2 I)$.
# Every claim is computed and **asserted**; Monte Carlo claims within 5 standard errors.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from course_lib import (
    course_seed,
    diffusion,
    get_device,
    grading,
    metrics,
    nets,
    plotting,
    seed_everything,
    set_num_threads,
    toy,
    widgets,
)
from course_lib import score as sm
from course_lib.train import History, fit

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
# ### Exercise 1: the bias of the discretized chain
#
# **Exercise 1 (derivation, ★★☆, 3 points, graded by hand)**
#
# The check above compared the chains with $S = 2\eta(I - A^2)^{-1}$, not with $C$. Derive it in one
# dimension: for $p = \mathcal N(m, c)$ ($c > 0$ the variance), write the Langevin step
# $x_{k+1} = x_k + \eta\,\nabla\log p(x_k) + \sqrt{2\eta}\,z_k$ as a linear recursion, find its
# stationary law (mean and variance), say for which step sizes $\eta$ it exists, and show that the
# stationary variance is $c/(1 - \eta/(2c)) = c + \eta/2 + O(\eta^2)$: the chain's law is biased by
# the discretization, by about $\eta/2$. Write your answer in the cell below (Markdown and LaTeX);
# the cell after it checks the formula on the 2-D example above.

# %% [markdown] nbgrader={"grade": true, "grade_id": "langevin_bias_derivation", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# **Model answer.** $\nabla\log p(x) = -(x - m)/c$, so with $a = 1 - \eta/c$,
# $x_{k+1} - m = a\,(x_k - m) + \sqrt{2\eta}\,z_k$: an AR(1) recursion. Each $x_k$ is Gaussian (a linear
# function of Gaussians), with mean $m + a^k(x_0 - m)$ and variance $v_{k+1} = a^2 v_k + 2\eta$. These
# converge for every start if and only if $|a| < 1$, i.e. $0 < \eta < 2c$; the limit solves
# $\mu = m$ and $v = a^2 v + 2\eta$, so
#
# $$v = \frac{2\eta}{1 - a^2} = \frac{2\eta}{(\eta/c)(2 - \eta/c)} = \frac{2c^2}{2c - \eta}
#   = \frac{c}{1 - \eta/(2c)} = c + \frac{\eta}{2} + O(\eta^2).$$
#
# The stationary law is $\mathcal N\big(m, c/(1 - \eta/(2c))\big)$: the mean is exact, the variance is
# inflated by about $\eta/2$, which vanishes as $\eta \to 0$ (the continuous-time diffusion has $p$ as
# its stationary law). In $D$ dimensions the same holds along each eigenvector of $C$.
#
# **Rubric (3 points).** 1 point: the score and the AR(1) form with $a = 1 - \eta/c$. 1 point: the
# stationary mean and variance from the fixed-point equations, with the condition $0 < \eta < 2c$
# ($|a| < 1$). 1 point: the closed form $c/(1 - \eta/(2c))$ and its expansion $c + \eta/2$. Half a point
# off for a missing stability condition; no credit for a variance obtained by assuming $v = c$.
# ### END SOLUTION

# %% [markdown]
# **Check of the formula** on the 2-D example: $A = I - \eta C^{-1}$ shares its eigenvectors with $C$,
# so the eigenvalues of $S$ must be $\lambda/(1 - \eta/(2\lambda))$ for the eigenvalues $\lambda$ of $C$.

# %%
lam_c = torch.linalg.eigvalsh(C)
lam_s = torch.linalg.eigvalsh(S)
print(f"eigenvalues of C {lam_c.numpy().round(4)}, of S {lam_s.numpy().round(6)}, "
      f"formula {(lam_c / (1 - eta / (2 * lam_c))).numpy().round(6)}")
torch.testing.assert_close(lam_s, lam_c / (1 - eta / (2 * lam_c)), rtol=1e-12, atol=1e-12)

# %% [markdown]
# ### Worked example: one Langevin step
#
# One step is one line, $x + \eta\, s + \sqrt{2\eta}\, z$, the update of `sm.langevin_dynamics`:
# with the same noise $z$ (a generator of its own), the two agree.

# %%
def langevin_step(x, score, step_size, z):
    """One Langevin update; x, score, z: (N, D); step_size: float > 0. Returns (N, D)."""
    return x + step_size * score + math.sqrt(2 * step_size) * z


x_w = torch.zeros(5, 2, dtype=f64)
z_w = torch.randn(5, 2, generator=torch.Generator().manual_seed(SEED * 1000 + 906), dtype=f64)
one_step = sm.langevin_dynamics(lambda v: -(v - m) @ P, x_w, eta, 1,
                                generator=torch.Generator().manual_seed(SEED * 1000 + 906))
torch.testing.assert_close(langevin_step(x_w, -(x_w - m) @ P, eta, z_w), one_step, rtol=1e-12, atol=1e-12)

# %% [markdown]
# Move the step size and the number of steps. Particles start uniformly on $[-4,4]^2$; the title
# compares the fraction of samples per mode with the weights $(0.5, 0.3, 0.2)$.

# %%
widgets.plot_langevin();

# %%
widgets.langevin_explorer()

# %% [markdown]
# ### Exercise 2: predict, then run
#
# **Exercise 2 (prediction, ★☆☆, 1 point)**
#
# The next experiment: $p = 0.8\,\mathcal N((5,5), I) + 0.2\,\mathcal N((-5,-5), I)$, 1280 particles
# started uniformly on $[-8, 8]^2$ (so about half start on each side of the line $x_1 + x_2 = 0$),
# then 500 steps of plain Langevin dynamics with $\eta = 0.05$ and the **exact** score. Before running
# it, predict the fraction of particles that end in the $(5, 5)$ mode:
#
# - **a**: about 0.8, the weight of the mode (the score knows the density);
# - **b**: about 0.5, where the particles started;
# - **c**: about 1, the heavier mode attracts almost every particle.
#
# Set `prediction` to one letter; the cell after the run says which one happened.

# %% nbgrader={"grade": false, "grade_id": "langevin_prediction", "locked": false, "schema_version": 3, "solution": true, "task": false}
prediction = None  # one of "a", "b", "c"
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "langevin_prediction_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
grading.check_prediction(prediction, "abc")
### BEGIN HIDDEN TESTS
assert prediction == "b", "plain Langevin keeps the particles in the half they started in (about 0.5)"
### END HIDDEN TESTS

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
# The toy of Song & Ermon (2019): $p = 0.8\,\mathcal N((5,5), I) + 0.2\,\mathcal N((-5,-5), I)$,
# 1280 particles from $U[-8, 8]^2$, plain Langevin with $\eta = 0.05$ (NCSN's $\mathrm{lr} = 0.1$
# in the $\mathrm{lr}/2$ form). **Annealed** Langevin runs the same chain on
# $p_{\sigma_1}, \dots, p_{\sigma_L}$ with $\sigma$ decreasing geometrically from 20 to 1, step
# $\eta_i = \eta\,\sigma_i^2/\sigma_L^2$: at large $\sigma$ the modes overlap, the chain mixes, and
# the mass settles in proportion to the weights before the modes separate. **Check**: the annealed
# fraction in the $(5,5)$ mode is 0.8 within 5 binomial standard errors; plain Langevin is more
# than 10 standard errors away from it, and fewer than 5 % of its particles end in another mode
# (on the other side of the line $x_1 + x_2 = 0$) than the half of the square they started in.

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
switched = ((x0.sum(1) > 0) != (plain.sum(1) > 0)).double().mean().item()
se = math.sqrt(0.8 * 0.2 / 1280)
print(f"fraction in the (5, 5) mode: start {frac_start:.3f}, plain Langevin {frac_plain:.3f}, "
      f"annealed {frac_annealed:.3f} (weight 0.8, binomial standard error {se:.3f})")
print(f"plain Langevin: {switched:.1%} of the particles end on the other side of x1 + x2 = 0 "
      f"than they started")
assert abs(frac_annealed - 0.8) <= 5 * se                    # annealed: the weight, within 5 s.e.
assert abs(frac_plain - 0.8) > 10 * se and switched < 0.05   # plain: stuck where it started

fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), layout="constrained")
for ax, pts, name in [(axes[0], plain, "plain Langevin"), (axes[1], annealed, "annealed Langevin")]:
    plotting.density_contours(ncsn.log_prob, (-9, 9), (-9, 9), ax=ax, log=True, cmap="Greys")
    plotting.scatter_samples(pts, ax=ax, s=3, title=name);

# %% [markdown]
# **The answer to Exercise 2**, computed from the run (whatever was predicted): the option nearest to
# the fraction plain Langevin left in the $(5, 5)$ mode.

# %%
options = {"a": 0.8, "b": 0.5, "c": 1.0}
answer = min(options, key=lambda k: abs(frac_plain - options[k]))
print(f"plain Langevin: {frac_plain:.3f} in the (5, 5) mode (started: {frac_start:.3f}): answer {answer}")

# %% [markdown]
# ### Exercise 3: annealed Langevin dynamics
#
# **Exercise 3 (multi-step, ★★★, 5 points)**
#
# Implement `annealed_langevin(score_fn, x, sigmas, step_size, noise, final_denoise=False)`, the
# sampler used above (Song & Ermon 2019, Algorithm 1, in this notebook's $\eta$ convention), with all
# the noise given so that the result is deterministic. `x` `(N, D)` are the starting points,
# `sigmas` a decreasing tensor `(L,)`, `step_size` the float $\eta$, `noise` `(L, K, N, D)` with $K$
# the number of steps per level, and `score_fn(x, sigma)` the score of the data noised at level
# `sigma` (a Python float). For each level $i$:
#
# 1. the step $\eta_i = \eta\,\sigma_i^2/\sigma_L^2$ (the last level gets $\eta$);
# 2. $K$ Langevin steps $x \leftarrow x + \eta_i\, s(x, \sigma_i) + \sqrt{2\eta_i}\, z$ with
#    $z$ = `noise[i, k]`;
#
# 3. record the state after the level;
#
# and at the end, if `final_denoise`, Tweedie's denoising step (section 5, NCSNv2)
# $x \leftarrow x + \sigma_L^2\, s(x, \sigma_L)$. Return `(x, path)`: the final points `(N, D)` and the
# states `(L + 1, N, D)`: the initial points, then the state after each level (before the final step).
#
# The check compares with `course_lib.score.annealed_langevin_dynamics` on float64 inputs (1 to 5
# levels, 1 to 4 steps per level, with and without the final step). The grader also runs tests you
# do not see, among them the experiment above.

# %% nbgrader={"grade": false, "grade_id": "annealed_langevin", "locked": false, "schema_version": 3, "solution": true, "task": false}
def annealed_langevin(score_fn, x, sigmas, step_size, noise, final_denoise=False):
    """Annealed Langevin from x (N, D) over sigmas (L,), noise (L, K, N, D) given.

    Returns (x, path): the final points (N, D) and the states (L + 1, N, D), initial points first.
    """
    ### BEGIN SOLUTION
    sigma_last = float(sigmas[-1])
    path = [x]
    for i, sigma in enumerate(sigmas.tolist()):
        eta_i = step_size * sigma ** 2 / sigma_last ** 2        # eta_L = eta
        for k in range(noise.shape[1]):
            x = x + eta_i * score_fn(x, sigma) + math.sqrt(2 * eta_i) * noise[i, k]
        path.append(x)
    if final_denoise:
        x = x + sigma_last ** 2 * score_fn(x, sigma_last)         # Tweedie: E[x | x_noisy]
    return x, torch.stack(path)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "annealed_langevin_check", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
grading.check("annealed_langevin", annealed_langevin)
### BEGIN HIDDEN TESTS
grading.check("annealed_langevin", annealed_langevin, seed=500, verbose=False)     # other inputs
# the library with the same draws (drawn one step at a time, as the library draws them)
score_h = lambda v, s: ncsn.convolve(s).score(v)                                    # noqa: E731
sig_h = sm.geometric_sigmas(20.0, 1.0, 4)
g_h = torch.Generator().manual_seed(SEED * 1000 + 907)
noise_h = torch.stack([torch.stack([torch.randn(x0[:50].shape, generator=g_h, dtype=f64) for _ in range(3)])
                       for _ in range(4)])
for final_h in (False, True):
    want_h = sm.annealed_langevin_dynamics(score_h, x0[:50], sig_h, 0.05, 3, final_denoise=final_h, trajectory=True,
                                           generator=torch.Generator().manual_seed(SEED * 1000 + 907))
    got_h = annealed_langevin(score_h, x0[:50], sig_h, 0.05, noise_h, final_denoise=final_h)
    torch.testing.assert_close(got_h[0], want_h[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got_h[1], want_h[1], rtol=1e-10, atol=1e-10)
# the result above: the annealed fraction in the (5, 5) mode is the weight 0.8 within 5 s.e.
noise_h = torch.randn(len(sigmas_toy), 100, *x0.shape, generator=g_h, dtype=f64)
frac_h = (annealed_langevin(score_h, x0, sigmas_toy, 0.05, noise_h)[0].sum(1) > 0).double().mean().item()
print(f"hidden: your annealed Langevin puts {frac_h:.3f} in the (5, 5) mode (weight 0.8)")
assert abs(frac_h - 0.8) <= 5 * se, f"annealed Langevin: fraction {frac_h:.3f} in the (5, 5) mode, expected 0.8"
### END HIDDEN TESTS

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
# so $J_{\mathrm{ESM}} = \underbrace{E_p\big[\tfrac12\|s_\theta\|^2 +
# \mathrm{tr}\,\nabla_x s_\theta\big]}_{J_{\mathrm{ISM}}\ \text{(Hyvärinen)}}
#  + \tfrac12 E_p\|\nabla\log p\|^2$: the **implicit** loss needs only samples, at the price of a
# Jacobian trace ($D$ backward passes).
#
# **Check** on the toy mixture with two random networks: per sample,
# $J_{\mathrm{ISM}} - J_{\mathrm{ESM}} + \tfrac12\|\nabla\log p\|^2$ averages to 0.

# %%
def small_net(k, d=2):
    """A small random MLP (D -> 32 -> D); the k-th one of this run (its seed derives from SEED)."""
    torch.manual_seed(SEED * 1000 + 500 + k)
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
# $$J_{\mathrm{SSM}} = E_{x}E_v\big[v^\top \nabla_x s_\theta(x)\,v + \tfrac12 (v^\top s_\theta(x))^2\big]
#   = J_{\mathrm{ISM}} .$$
#
# The price is variance, and control of the score only along random directions. The gain is cost.
# $v^\top\nabla_x s_\theta$ is one vector-Jacobian product: **one** backward pass through the
# network, whose multiply-adds equal the forward pass's (a matrix product $y = Wx$ is pulled back
# as $g^\top W$, the same number of multiply-adds). The exact trace needs one backward pass per
# diagonal entry, **$D$** of them. Counted in forward passes of the network:
#
# - sliced loss, one projection: forward + 1 backward $= 2$ passes, **at every $D$**;
# - exact trace: forward + $D$ backward $= 1 + D$ passes, so $(1 + D)/2$ times the sliced loss.
#
# What does not grow with $D$ is the number of passes. The network's own pass does grow with $D$
# (here its first and last layers have $32D$ weights each), and so does the sliced loss's absolute
# cost, in proportion to the network's; the exact loss grows $D$ times faster.
#
# **Check**: agreement in expectation, then the cost measured in floating-point operations with
# PyTorch's FLOP counter (`torch.utils.flop_counter.FlopCounterMode`, which counts the
# multiply-adds of matrix products, an MLP's dominant cost): a count, the same on every machine.
# Wall-clock times are printed as an illustration only; they depend on the machine and its load.

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


def flops(fn):
    """Floating-point operations of the matrix products that fn() runs, forward and backward."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def seconds(fn, repeats=5):
    """Best wall-clock time of fn() over `repeats` runs (an illustration, machine-dependent)."""
    fn()                                          # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


cost = {}
print(f"{'D':>4s} {'forward FLOPs':>14s} {'exact / forward':>16s} {'sliced / forward':>17s} "
      f"{'exact / sliced':>15s}   time exact, sliced (illustration)")
for d in (2, 16, 64, 256):
    net_d = small_net(3, d).float()

    def score_d(v, w=net_d):
        # the network as a plain function: the FLOP counter's module tracker cannot follow
        # torch.autograd.grad through nn.Module calls (pytorch/pytorch issue 131753)
        return F.linear(torch.tanh(F.linear(v, w[0].weight, w[0].bias)), w[2].weight, w[2].bias)

    xb = torch.randn(256, d, generator=gen)
    losses = {"forward": lambda: score_d(xb),
              "exact": lambda: sm.score_matching_loss(score_d, xb),
              "sliced": lambda: sm.sliced_score_matching_loss(score_d, xb, generator=gen)}
    cost[d] = {name: flops(fn) for name, fn in losses.items()}
    passes = {name: cost[d][name] / cost[d]["forward"] for name in ("exact", "sliced")}
    print(f"{d:4d} {cost[d]['forward']:14,d} {passes['exact']:16.2f} {passes['sliced']:17.2f} "
          f"{cost[d]['exact'] / cost[d]['sliced']:15.2f}   "
          f"{1e3 * seconds(losses['exact']):7.1f} ms, {1e3 * seconds(losses['sliced']):5.1f} ms")
    assert math.isclose(passes["sliced"], 2.0, rel_tol=1e-9)      # forward + 1 backward, any D
    assert math.isclose(passes["exact"], 1.0 + d, rel_tol=1e-9)   # forward + D backward

# %% [markdown]
# **The variance of sliced score matching, against the number of projections.** For one example
# and a fixed network, the sliced term is a quadratic form in the probe:
# $v^\top J v + \tfrac12(v^\top s)^2 = v^\top B v$ with $J = \nabla_x s_\theta(x)$, $s = s_\theta(x)$
# and the symmetric $B = \tfrac12(J + J^\top) + \tfrac12 ss^\top$. For $v \sim \mathcal N(0, I)$,
# $E[v^\top Bv] = \mathrm{tr}B = J_{\mathrm{ISM}}(x)$ and (by Isserlis' theorem,
# $E[v_iv_jv_kv_l] = \delta_{ij}\delta_{kl} + \delta_{ik}\delta_{jl} + \delta_{il}\delta_{jk}$)
#
# $$\mathrm{Var}_v\big[v^\top B v\big] = 2\,\mathrm{tr}(B^2) = 2\|B\|_F^2 .$$
#
# (Rademacher probes have $v_i^2 = 1$, so the diagonal of $B$ does not vary: $2\sum_{i\ne j}B_{ij}^2$.)
# The estimate with $M$ projections averages $M$ independent terms: its mean stays the exact
# $J_{\mathrm{ISM}}(x)$ and its variance is $2\,\mathrm{tr}(B^2)/M$: the standard error falls
# like $1/\sqrt M$, and halving it costs four times the projections
# (`sm.sliced_score_matching_variance`, which computes $B$ from the exact Jacobian).
#
# **Check** on the 8 points above, the network fixed: for $M = 1, 4, 16, 64$, `REPS` independent
# draws of the $M$-projection estimate per point. Asserted for every point and every $M$: the
# sample variance is $2\,\mathrm{tr}(B^2)/M$ within 5 of its standard errors (delta method,
# $\mathrm{se}(s^2) \approx \sqrt{(m_4 - s^4)/R}$ with $m_4$ the fourth central sample moment),
# the sample mean is the exact implicit loss within 5 standard errors, and the fitted slope of
# $\log s^2$ against $\log M$ (weighted least squares) is $-1$ within 5 of its standard errors.

# %%
REPS = 1000
Ms = [1, 4, 16, 64]
g_probe = torch.Generator().manual_seed(SEED * 1000 + 910)   # its own draws: the cells after it draw as before
net_v = small_net(2)                                  # the network of the check above, fixed
exact_v = sm.score_matching_loss(net_v, xs5, reduction="none").detach()        # J_ISM per point (8,)
var_one = sm.sliced_score_matching_variance(net_v, xs5)                          # 2 tr(B^2) per point
var_hat, var_se = torch.empty(len(Ms), 8, dtype=f64), torch.empty(len(Ms), 8, dtype=f64)
for i, M in enumerate(Ms):
    est = sm.sliced_score_matching_loss(net_v, xs5.repeat(REPS, 1), num_projections=M, generator=g_probe,
                                        reduction="none").detach().reshape(REPS, 8)
    dev = est - est.mean(0)
    var_hat[i] = (dev ** 2).mean(0)
    var_se[i] = ((dev ** 4).mean(0) - var_hat[i] ** 2).sqrt() / math.sqrt(REPS)    # delta method
    assert ((var_hat[i] - var_one / M).abs() <= 5 * var_se[i]).all(), M
    assert ((est.mean(0) - exact_v).abs() <= 5 * (var_one / M / REPS).sqrt()).all(), M
# slope of log variance against log M per point, weights 1 / se(log s^2)^2 = (s^2 / se)^2
u = torch.log(torch.tensor(Ms, dtype=f64))[:, None]
w_ls = (var_hat / var_se) ** 2
u_bar = (w_ls * u).sum(0) / w_ls.sum(0)
slope = (w_ls * (u - u_bar) * var_hat.log()).sum(0) / (w_ls * (u - u_bar) ** 2).sum(0)
slope_se = 1 / (w_ls * (u - u_bar) ** 2).sum(0).sqrt()
print(f"exact 2 tr(B^2) per point: {var_one[:4].numpy().round(3)} ...")
print(f"measured variance x M, point 0: {(var_hat[:, 0] * torch.tensor(Ms)).numpy().round(3)} (flat = 1/M)")
print(f"slopes of log variance vs log M: {slope.numpy().round(3)} (s.e. about {slope_se.mean():.3f})")
assert ((slope + 1).abs() <= 5 * slope_se).all()
widgets.plot_sliced_variance(Ms, var_hat, var_se, var_one);

# %% [markdown]
# **Denoising score matching** (Vincent 2011) avoids derivatives of $s_\theta$ altogether. Perturb
# the data, $\tilde x = x + \sigma\varepsilon$, and regress on the score of the perturbation kernel,
# $\nabla_{\tilde x}\log q(\tilde x\mid x) = -(\tilde x - x)/\sigma^2 = -\varepsilon/\sigma$:
#
# $$J_{\mathrm{DSM}}(\theta)
#   = E_{x,\varepsilon}\ \tfrac12\Big\|s_\theta(\tilde x) + \frac{\tilde x - x}{\sigma^2}\Big\|^2 .$$
#
# Expanding both squares, $J_{\mathrm{DSM}}$ and the explicit loss **on the noised density**,
# $\tfrac12 E\|s_\theta(\tilde x) - \nabla\log p_\sigma(\tilde x)\|^2$, share
# $\tfrac12E\|s_\theta\|^2$, and their cross terms agree because
# $E[\nabla\log q(\tilde x\mid x)\mid\tilde x] = \nabla \log p_\sigma(\tilde x)$. So they differ by
# a constant, $C = \frac{D}{2\sigma^2} - \tfrac12 E\|\nabla\log p_\sigma\|^2$, whatever the model,
# and DSM's minimizer is $\nabla\log p_\sigma$ (not $\nabla\log p$: small $\sigma$ for accuracy).
#
# **Check** for several models (three networks, the exact $\nabla\log p_\sigma$, and zero):
# the difference of the two losses is the same constant, within 5 Monte Carlo standard errors.
# $C$ itself is computed by quadrature ($E\|\nabla\log p_\sigma\|^2 = \int p_\sigma
# \|\nabla\log p_\sigma\|^2$ by the trapezoid rule on a fine grid), so it carries no sampling error.

# %%
sigma = 0.5
noisy = mix.convolve(sigma)
tq = torch.linspace(-8, 8, 801, dtype=f64)                            # spacing 0.02
qx, qy = torch.meshgrid(tq, tq, indexing="ij")
grid_pts = torch.stack([qx.flatten(), qy.flatten()], 1)
dens = noisy.log_prob(grid_pts).exp()
fisher = ((noisy.score(grid_pts) ** 2).sum(1) * dens).reshape(qx.shape)   # p_sigma ||grad log p_sigma||^2
mass = torch.trapezoid(torch.trapezoid(dens.reshape(qx.shape), tq, dim=1), tq).item()
C_const = 2 / (2 * sigma ** 2) - 0.5 * torch.trapezoid(torch.trapezoid(fisher, tq, dim=1), tq).item()
assert abs(mass - 1) < 1e-9                                           # the grid holds all the mass
xc = mix.sample(40000, generator=gen)
models = {"net 0": small_net(0), "net 1": small_net(1), "net 2": small_net(2),
          "exact grad log p_sigma": noisy.score, "zero": torch.zeros_like}
for name, model in models.items():
    g_eps = torch.Generator().manual_seed(SEED * 1000 + 11)          # the same eps for both losses
    dsm = sm.denoising_score_matching_loss(model, xc, sigma, generator=g_eps, reduction="none")
    eps_same = torch.randn(xc.shape, generator=torch.Generator().manual_seed(SEED * 1000 + 11), dtype=f64)
    esm = sm.explicit_score_matching_loss(model, noisy.score, xc + sigma * eps_same, reduction="none")
    ok, mean, se_ = within((dsm - esm).detach(), C_const)
    print(f"{name:24s} J_DSM = {dsm.mean():8.4f}  J_ESM(p_sigma) = {esm.mean():7.4f}  "
          f"difference = {mean:.4f} ± {se_:.4f}   (C = {C_const:.4f})")
    assert ok

# %% [markdown]
# ### Exercise 4: the DSM loss
#
# **Exercise 4 (implementation, ★☆☆, 2 points)**
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
# ## 5. Tweedie's formula: first, second and third order
#
# **Notation.** Here $x$ is the clean value and $y = x + \sigma\varepsilon$ the noisy one.
# Efron (2011) writes $\mu$ for the clean value and $z$ for the noisy one, and some texts write
# $\theta$ (the unknown parameter) and $x$ (the observation), as in estimation theory: their
# $E[\theta\mid x]$ is our $E[x\mid y]$, and their $x$ is our $y$, not our $x$.
#
# With $y = x + \sigma\varepsilon$, $p_\sigma(y) = \int p(x)\,\mathcal N(y; x, \sigma^2 I)\,dx$.
# Differentiate under the integral, using $\nabla_y \mathcal N(y;x,\sigma^2 I) = -\frac{y-x}{\sigma^2}\mathcal N$:
#
# $$\nabla p_\sigma(y) = \int \frac{x - y}{\sigma^2}\,p(x)\mathcal N(y;x,\sigma^2I)\,dx
#   = p_\sigma(y)\,\frac{E[x\mid y] - y}{\sigma^2}
#   \quad\Longrightarrow\quad E[x\mid y] = y + \sigma^2\,\nabla\log p_\sigma(y).$$
#
# The posterior mean (the minimum mean squared error denoiser) needs only the score of the
# **noisy** law, not the prior. Differentiating once more (the Gaussian is an exponential family in
# $x$ with natural parameter $y/\sigma^2$, and the derivatives of its log-partition function are the
# posterior cumulants, derived below; Efron 2011,
# [Meng et al. 2021](../docs/bibliography.md#meng2021)):
#
# $$\mathrm{Cov}[x\mid y] = \sigma^2 \frac{\partial E[x\mid y]}{\partial y}
#   = \sigma^2\big(I + \sigma^2\nabla^2\log p_\sigma(y)\big).$$
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
print(f"E[x | y = (0.5, 0)]: Tweedie {tw.numpy().round(4)}, "
      f"Monte Carlo {mc.numpy().round(4)} ± {mc_se.numpy().round(4)}")
assert ((tw - mc).abs() <= 5 * mc_se).all()

# %% [markdown]
# ### Every cumulant from one function: the exponential-family view
#
# Write the posterior with Bayes' rule and expand the Gaussian likelihood,
# $\mathcal N(y; x, \sigma^2 I) \propto e^{-\|y\|^2/2\sigma^2}\,e^{x^\top y/\sigma^2}\,e^{-\|x\|^2/2\sigma^2}$:
#
# $$p(x\mid y) = \underbrace{p(x)\,e^{-\|x\|^2/2\sigma^2}}_{h(x)}\;
#   \exp\big(\eta^\top x - A(\eta)\big), \qquad \eta = \frac{y}{\sigma^2},\qquad
#   A(\eta) = \log p_\sigma(y) + \frac{\|y\|^2}{2\sigma^2} + \frac D2\log(2\pi\sigma^2).$$
#
# For fixed $\sigma$ this is an **exponential family in $x$** with natural parameter $\eta$, base
# measure $h$ (the prior, damped) and log-partition function $A(\eta) = \log\int h(x)e^{\eta^\top x}dx$
# (the normalization forces it). $A$ is the cumulant generating function of the posterior shifted to
# $\eta$: $\log E[e^{u^\top x}\mid y] = A(\eta + u) - A(\eta)$, so its derivatives at $\eta$ are the
# posterior cumulants. With $\partial/\partial\eta = \sigma^2\,\partial/\partial y$ and
# $\lambda(y) = \log p_\sigma(y) + \|y\|^2/2\sigma^2$:
#
# $$\kappa_1 = \sigma^2\nabla\lambda = y + \sigma^2\nabla\log p_\sigma,\qquad
#   \kappa_2 = \sigma^4\nabla^2\lambda = \sigma^2(I + \sigma^2\nabla^2\log p_\sigma),\qquad
#   \kappa_3 = \sigma^6\nabla^3\lambda = \sigma^6\,\nabla^3\log p_\sigma ,$$
#
# and $\kappa_k = \sigma^{2k}\nabla^k\log p_\sigma$ for every $k \ge 3$ (the quadratic term is gone).
# The third cumulant is the third central moment, $E[(x - E[x\mid y])^{\otimes 3}\mid y]$: it
# measures the posterior's **skewness**, which a Gaussian posterior does not have. In $D$ dimensions
# $\kappa_3$ is a $D\times D\times D$ tensor; we check its diagonal $\kappa_{iii}$ (one entry per
# coordinate, all of it in one dimension). `sm.tweedie_cumulants(log_prob, y, sigma, order)` returns
# the diagonal of $\kappa_1, \dots, \kappa_k$ by repeated autograd of $\lambda$.
#
# **An independent reference.** Under Gaussian noise the posterior of a Gaussian mixture is again a
# Gaussian mixture (weights $r_k(y)$, means $m_k$, variances $v_k$: Bayes' rule per component), so
# with $m = E[x\mid y]$ and $c_k = m_k - m$, its third central moment is, per coordinate,
# $\sum_k r_k\,(c_k^3 + 3v_kc_k)$ (`GaussianMixture.posterior_third_central_moment`; no
# derivative of $\log p_\sigma$ involved). **Check**, in float64: on a 1-D two-component
# mixture over a grid of $y$ and on the 2-D toy's diagonal, the three Tweedie cumulants match the
# posterior mixture's mean, variance and third central moment to $10^{-11}$ relative to the largest
# value at each $\sigma$ (float64 rounding, amplified by three rounds of differentiation, is
# $10^{-15}$ to $10^{-12}$ here).

# %%
mix1d = toy.GaussianMixture(torch.tensor([[-2.0], [1.5]], dtype=f64), torch.tensor([0.5, 0.3], dtype=f64),
                            torch.tensor([0.3, 0.7], dtype=f64))
y_grid = torch.linspace(-5, 5, 201, dtype=f64)[:, None]
sigmas_tw = [0.3, 1.0, 2.0]
tw_cumulants, bayes_cumulants = [], []
for sigma in sigmas_tw:
    k_tw = sm.tweedie_cumulants(mix1d.convolve(sigma).log_prob, y_grid, sigma, order=3)[:, :, 0]   # (3, P)
    k_bayes = torch.stack([mix1d.posterior_mean(y_grid, sigma)[:, 0],
                           mix1d.posterior_covariance(y_grid, sigma)[:, 0, 0],
                           mix1d.posterior_third_central_moment(y_grid, sigma)[:, 0]])
    rel_err = ((k_tw - k_bayes).abs().amax(1) / k_bayes.abs().amax(1)).max().item()
    print(f"1-D, sigma = {sigma}: largest |kappa_3| = {k_bayes[2].abs().max():.4f}, "
          f"max relative difference Tweedie vs Bayes' rule (orders 1-3) = {rel_err:.1e}")
    assert rel_err < 1e-11
    tw_cumulants.append(k_tw)
    bayes_cumulants.append(k_bayes)
y2 = 3 * torch.randn(300, 2, generator=torch.Generator().manual_seed(SEED * 1000 + 911), dtype=f64)
for sigma in (0.3, 1.0):
    k3_tw = sm.tweedie_cumulants(mix.convolve(sigma).log_prob, y2, sigma, order=3)[2]               # (N, D)
    k3_bayes = mix.posterior_third_central_moment(y2, sigma)
    rel_err = ((k3_tw - k3_bayes).abs().max() / k3_bayes.abs().max()).item()
    print(f"2-D toy, sigma = {sigma}: diagonal kappa_iii, max relative difference = {rel_err:.1e}")
    assert rel_err < 1e-11
widgets.plot_tweedie_cumulants(y_grid[:, 0], torch.stack(tw_cumulants), torch.stack(bayes_cumulants), sigmas_tw);

# %% [markdown]
# Read the third panel. Where both components share the posterior it is a two-bump mixture with
# unequal weights, skewed toward the smaller bump: $\kappa_3 > 0$ where the left component (at $-2$)
# holds most of the posterior, $\kappa_3 < 0$ where the right one does, and it changes sign near the
# $y$ where the two are equally responsible. Where one component takes all the weight the posterior
# is Gaussian and $\kappa_3 \to 0$. **Check**, from the responsibilities under $p_\sigma$
# (`convolve(sigma).responsibilities`): at every grid point where $|\kappa_3|$ exceeds $10^{-6}$ of
# its largest value, its sign is $+$ where the left component's responsibility exceeds 0.6 and $-$
# where it is below 0.4; and for $\sigma = 0.3$, $|\kappa_3| < 10^{-6}\max|\kappa_3|$ at $y = \pm 5$.

# %%
for sigma, k_b in zip(sigmas_tw, bayes_cumulants):
    k3 = k_b[2]
    r_left = mix1d.convolve(sigma).responsibilities(y_grid)[:, 0]
    big = k3.abs() > 1e-6 * k3.abs().max()
    assert (k3[big & (r_left > 0.6)] > 0).all() and (k3[big & (r_left < 0.4)] < 0).all(), sigma
k3_sharp = bayes_cumulants[0][2]
print(f"sigma = {sigmas_tw[0]}: kappa_3 at y = -5, 5: {k3_sharp[0]:.1e}, {k3_sharp[-1]:.1e} "
      f"(largest {k3_sharp.abs().max():.3f})")
assert (k3_sharp[[0, -1]].abs() < 1e-6 * k3_sharp.abs().max()).all()

# %% [markdown]
# ### Worked example: Tweedie's denoiser
#
# Tweedie's formula is one line, $y + \sigma^2 s$; it is the final step of annealed Langevin
# (Exercise 3). With the exact score of the noised mixture it is the posterior mean (the points `y`
# of the check above, $\sigma = 0.5$).

# %%
def tweedie_denoise(y, score, sigma):
    """Posterior mean E[x | y] from the score of the noisy law; (N, D)."""
    return y + sigma ** 2 * score


torch.testing.assert_close(tweedie_denoise(y, mix.convolve(0.5).score(y), 0.5), mix.posterior_mean(y, 0.5),
                           rtol=1e-10, atol=1e-10)

# %% [markdown]
# ## 6. SURE: the error of a denoiser without clean data
#
# A denoiser $f$ maps $y$ to $\hat x = f(y)$; its quality is $\mathrm{MSE}(f) = E\|f(y) - x\|^2$,
# which needs $x$. Stein's lemma ([Stein 1981](../docs/bibliography.md#stein1981); integration by
# parts against the Gaussian, $E[\varepsilon^\top g(y)] = \sigma E[\nabla\cdot g(y)]$) gives, with
# $f(y) - x = f(y) - y + \sigma\varepsilon$,
#
# $$E\|f(y) - x\|^2
#   = E\big[\underbrace{\|f(y) - y\|^2 - D\sigma^2 + 2\sigma^2\,\nabla\cdot f(y)}_{\mathrm{SURE}(f;\,y)}\big],$$
#
# computable from the noisy $y$ alone. **Check** for a family of denoisers at $\sigma = 0.5$:
# linear shrinkage $f(y) = a y$, soft thresholding, the Bayes denoiser $E[x\mid y]$, and a network
# **trained by minimizing SURE on noisy data only**. For each, the mean SURE matches the true MSE
# (which uses the clean data) within 5 standard errors of their paired difference. SURE is unbiased
# for a denoiser that does not depend on the noise it is evaluated on, so the network is trained on
# other noisy draws (SURE on its own training draws would be optimistic, like a training error).
# The Bayes denoiser has the smallest SURE, below every other one by more than 5 standard errors
# of the paired difference; the network trained for 400 steps comes within 20 % of its MSE.

# %%
sigma = 0.5
y_train = mix.sample(20000, generator=gen) + sigma * torch.randn(20000, 2, generator=gen, dtype=f64)
x_clean = mix.sample(20000, generator=gen)                           # fresh draws for the checks
y_noisy = x_clean + sigma * torch.randn(x_clean.shape, generator=gen, dtype=f64)

torch.manual_seed(SEED * 1000 + 1)
denoiser_net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64),
                                   torch.nn.SiLU(), torch.nn.Linear(64, 2)).double()
hist = fit(denoiser_net, lambda model, yb, generator=None: sm.sure(model, yb, sigma).mean(),
           y_train, num_steps=400, batch_size=256, lr=3e-3, device="cpu", generator=gen,
           desc="SURE training (noisy data only)")
denoiser_net.eval()

denoisers = {"identity f(y) = y": lambda v: v,
             "shrinkage 0.7 y": lambda v: 0.7 * v,
             "shrinkage 0.95 y": lambda v: 0.95 * v,
             "soft threshold 0.3": lambda v: torch.sign(v) * torch.relu(v.abs() - 0.3),
             "network trained by SURE": denoiser_net,
             "Bayes E[x|y] (Tweedie)": lambda v: mix.posterior_mean(v, sigma)}
results, sure_per, true_per, sure_summary = {}, {}, {}, []
for name, f in denoisers.items():
    sure_per[name] = sm.sure(f, y_noisy, sigma).detach()
    true_se = ((f(y_noisy) - x_clean) ** 2).sum(1).detach()
    true_per[name] = true_se
    ok, _, se_ = within(sure_per[name] - true_se, 0.0)
    results[name] = (sure_per[name].mean().item(), true_se.mean().item())
    sure_summary.append((name, sigma, *results[name], se_))
    print(f"{name:26s} SURE {results[name][0]:.4f}   true MSE {results[name][1]:.4f}   (± {se_:.4f})")
    assert ok
    if name.startswith("identity"):                  # ||sigma eps||^2 has mean D sigma^2
        assert within(true_se, 2 * sigma ** 2)[0]
bayes = "Bayes E[x|y] (Tweedie)"
for name in denoisers:
    if name != bayes:
        gap = sure_per[name] - sure_per[bayes]
        assert gap.mean() > 5 * gap.std() / math.sqrt(gap.numel()), name   # Bayes is the smallest
ratio = results["network trained by SURE"][1] / results[bayes][1]
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
# Bayes risk. **Denoising, score matching and SURE are the same problem** (Vincent 2011; Raphan &
# Simoncelli, "Least squares estimation without priors or supervision",
# [2011](../docs/bibliography.md#raphan2011)). Check the identity exactly, sample by sample, for a
# network score; then scan $f_c = y + c\,\sigma^2\nabla\log p_\sigma$ over the factor $c$ (not a
# time): SURE is smallest at $c = 1$.

# %%
s_net = small_net(5)
lhs = sm.sure(lambda v: v + sigma ** 2 * s_net(v), y_noisy[:2000], sigma)
rhs = 2 * sigma ** 4 * sm.score_matching_loss(s_net, y_noisy[:2000], reduction="none") + 2 * sigma ** 2
assert torch.allclose(lhs, rhs, atol=1e-10)

noisy = mix.convolve(sigma)
factors = [0.0, 0.5, 0.8, 1.0, 1.2, 1.5]
scan = [sm.sure(lambda v, c=c: v + c * sigma ** 2 * noisy.score(v), y_noisy, sigma).mean().item() for c in factors]
print("factor c:  ", factors)
print("mean SURE: ", [round(v, 4) for v in scan])
assert min(range(len(factors)), key=lambda i: scan[i]) == factors.index(1.0)

# %% [markdown]
# **SURE against the true error, in a picture.** The claim checked above is about **means**:
# $E[\mathrm{SURE}(f; y)] = E\|f(y) - x\|^2$. Per example the two are different random numbers
# (SURE can even be negative); what agrees is their average. The same check at two more noise levels,
# $\sigma = 0.2$ and $1$, for the denoisers that do not depend on $\sigma$'s training (the network was
# trained at $\sigma = 0.5$ only; the Bayes denoiser is recomputed per level): for each denoiser and
# level, the mean SURE is the true MSE within 5 standard errors of the paired difference. Left: one
# example per point for two denoisers at $\sigma = 0.5$. Right: one point per denoiser and level, with
# $\pm 2$ standard errors; the diagonal is SURE = MSE.

# %%
g_sure = torch.Generator().manual_seed(SEED * 1000 + 912)       # its own draws
for sigma_s in (0.2, 1.0):
    y_s = x_clean + sigma_s * torch.randn(x_clean.shape, generator=g_sure, dtype=f64)
    for name, f in denoisers.items():
        if name.startswith("network"):
            continue
        f_s = (lambda v, s_=sigma_s: mix.posterior_mean(v, s_)) if name == bayes else f
        sure_s = sm.sure(f_s, y_s, sigma_s).detach()
        true_s = ((f_s(y_s) - x_clean) ** 2).sum(1).detach()
        ok, diff, se_ = within(sure_s - true_s, 0.0)
        sure_summary.append((name, sigma_s, sure_s.mean().item(), true_s.mean().item(), se_))
        assert ok, (name, sigma_s, diff, se_)
print(f"{len(sure_summary)} (denoiser, sigma) pairs: mean SURE = true MSE within 5 s.e. for each; largest "
      f"|difference| / s.e. = {max(abs(s_ - t_) / e_ for _, _, s_, t_, e_ in sure_summary):.2f}")
pair = ["shrinkage 0.7 y", bayes]
widgets.plot_sure_vs_mse({n: (sure_per[n][:2000], true_per[n][:2000]) for n in pair}, sure_summary);

# %% [markdown]
# ### Exercise 5: SURE of soft thresholding
#
# **Exercise 5 (implementation, ★★☆, 2 points)**
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
# In DDPM, $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$
# ([Ho et al. 2020](../docs/bibliography.md#ho2020)). Tweedie for
# the scaled variable gives $\nabla\log q_t(x_t) = -E[\varepsilon\mid x_t]/\sqrt{1-\bar\alpha_t}$:
# the optimal noise predictor **is a scaled score**, and $L_\text{simple}$ is denoising score
# matching with weight $1-\bar\alpha_t$. Check with the exact $E[\varepsilon\mid x_t]$ of the mixture
# (`diffusion.optimal_eps_model`) against the score of the exact marginal
# $q_t$ = `mix.scale(sqrt(abar_t)).convolve(sqrt(1 - abar_t))`, at every 100th step.
#
# **Step convention.** As in notebooks 04 and 05, code indexes the steps from 0: array index $i$
# (`alphas_cumprod[i]`, the `t` passed to the models) is the paper's step $t = i + 1$ of
# Ho et al. (2020), $t = 1, \dots, T$. Prints say "index" for $i$; figure axes show the paper's $t$.

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
print(f"max |eps_to_score(E[eps|x_t]) - grad log q_t| over the 0-based indices 0, 100, ..., 900 "
      f"(the paper's t = 1, 101, ..., 901): {worst:.1e}")
assert worst < 1e-8

# %% [markdown]
# **The reverse process driven by a score.** Any score model gives a noise model,
# $\varepsilon_\theta = -\sqrt{1-\bar\alpha_t}\,s_\theta$; feeding the exact score of $q_t$ to
# DDPM's Algorithm 2 must sample the mixture: the fraction of samples per mode matches the weights
# within 5 binomial standard errors.

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
# **A trained noise predictor's score, step by step.** Train $\varepsilon_\theta$ with $L_\text{simple}$
# (Algorithm 1 of Ho et al. 2020; a `TimeConditionedMLP`, Adam for 500 steps then 200 at a 10x smaller
# learning rate) on the mixture, `NUM_EPS` networks from independent seeds, and read it as a score,
# $s_\theta = -\varepsilon_\theta/\sqrt{1-\bar\alpha_t}$. Its relative squared error against the exact
# score of $q_t$,
#
# $$\frac{E\|s_\theta(x_t) - \nabla\log q_t(x_t)\|^2}{E\|\nabla\log q_t(x_t)\|^2}
#   = \frac{E\|\varepsilon_\theta - \varepsilon^*\|^2}{E\|\varepsilon^*\|^2},
#   \qquad \varepsilon^* = E[\varepsilon\mid x_t],$$
#
# is the same ratio measured on $\varepsilon$ (the factor $1/(1-\bar\alpha_t)$ cancels). The numerator
# is what $L_\text{simple}$ penalizes, **with the same weight at every step**. The denominator does not
# stay put: near the data ($t$ small) the noise is tiny, $x_t$ says almost nothing about which
# $\varepsilon$ was drawn, and $E\|\varepsilon^*\|^2 \approx (1-\bar\alpha_t)\,E\|\nabla\log p\|^2 \to 0$.
# So an error in $\varepsilon$ that is small everywhere becomes a large **relative** error of the
# score at the first steps: DDPM's loss is denoising score matching weighted by $1-\bar\alpha_t$, which
# hardly asks for the score there. Measured on 4000 draws of $x_t$ per step (the exact
# $\varepsilon^*$ from `diffusion.optimal_eps_model`; the ratio for the first model at index 499 also
# by `sm.score_error` on the score itself, on the same draws, as a check of the identity). Asserted
# for every model: $E\|\varepsilon_\theta - \varepsilon^*\|^2 < 0.1$ at every step evaluated
# ($L_\text{simple}$'s own measure is small everywhere); the relative score error is under 10 % from
# the paper's $t = 100$ on, and above 1 at $t = 1$ (worse than the zero function, whose ratio is 1).

# %%
NUM_EPS = 3
eval_idx = [0, 4, 19, 49, 99, 199, 499, 999]                          # 0-based indices; the paper's t = i + 1
sched32 = schedule.to(dtype=torch.float32)
g_eps = torch.Generator().manual_seed(SEED * 1000 + 913)        # its own draws: the cells after it draw as before
data32 = mix.to(torch.float32).sample(20000, generator=g_eps)


def eps_loss(model, xb, generator=None):
    return diffusion.loss_simple(sched32.to(xb.device), model, xb, generator=generator)


def fit_two_phases(net, loss, data, steps, generator, desc):
    """Adam at lr 3e-3 for steps[0] steps, then at 3e-4 for steps[1]; returns the joined History."""
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = fit(net, loss, data, num_steps=steps[0], batch_size=256, optimizer=opt, device=device,
                generator=generator, desc=desc)
    for group in opt.param_groups:
        group["lr"] = 3e-4
    second = fit(net, loss, data, num_steps=steps[1], batch_size=256, optimizer=opt, device=device,
                 generator=generator, desc=f"{desc}, lr / 10")
    return History(losses=first.losses + second.losses)


eps_nets = []
for r in range(NUM_EPS):
    torch.manual_seed(SEED * 1000 + 200 + r)                         # this model's initialization
    net_e = nets.TimeConditionedMLP(2, hidden=64, num_layers=2)
    fit_two_phases(net_e, eps_loss, data32, (500, 200), g_eps, f"L_simple training, model {r + 1}")
    eps_nets.append(net_e.eval())

eps_err = torch.empty(NUM_EPS, len(eval_idx), dtype=f64)
eps_ref = torch.empty(len(eval_idx), dtype=f64)
for j, i in enumerate(eval_idx):
    ab = schedule.alphas_cumprod[i].item()
    q_t = mix.scale(math.sqrt(ab)).convolve(math.sqrt(1 - ab))           # the exact marginal of x_t
    x_t = q_t.sample(4000, generator=torch.Generator().manual_seed(SEED * 1000 + 400 + i))
    t_idx = torch.full((4000,), i, dtype=torch.long)
    e_star = eps_model(x_t, t_idx)                                        # E[eps | x_t], float64
    eps_ref[j] = (e_star ** 2).sum(1).mean()
    with torch.no_grad():
        for r, net_e in enumerate(eps_nets):
            e_net = net_e(x_t.float().to(device), t_idx.to(device)).cpu().double()
            eps_err[r, j] = ((e_net - e_star) ** 2).sum(1).mean()
rel_score = eps_err / eps_ref                                             # (models, steps)
# the identity, on the score itself: sm.score_error with the same draws (same generator seed)
j_chk = eval_idx.index(499)
ab = schedule.alphas_cumprod[499].item()
t_chk = torch.full((4000,), 499, dtype=torch.long)
rel_direct = sm.score_error(lambda v: diffusion.eps_to_score(schedule, t_chk, eps_nets[0](v.float().to(device),
                                                                                          t_chk.to(device)).cpu().double()),
                            mix.scale(math.sqrt(ab)), math.sqrt(1 - ab), num_samples=4000,
                            generator=torch.Generator().manual_seed(SEED * 1000 + 400 + 499))
assert abs(rel_direct - rel_score[0, j_chk].item()) <= 1e-9 * rel_direct + 1e-12   # float64 rounding
rs_mean, rs_se = rel_score.mean(0), rel_score.std(0) / math.sqrt(NUM_EPS)
print(f"{'index':>5s} {'paper t':>7s}  {'E||eps*||^2':>11s}  E||eps_theta - eps*||^2 (max over models)  "
      f"relative score error, mean ± s.e. over {NUM_EPS} models")
for j, i in enumerate(eval_idx):
    print(f"{i:5d} {i + 1:7d}  {eps_ref[j]:11.4f}  {eps_err[:, j].max():.4f}{'':31s}{rs_mean[j]:.4f} ± {rs_se[j]:.4f}")
late = torch.tensor(eval_idx) >= 99                                       # the paper's t >= 100
assert (eps_err < 0.1).all()                                              # every model, every step
assert (rel_score[:, late] < 0.1).all() and (rel_score[:, 0] > 1).all()
widgets.plot_score_error_per_step([i + 1 for i in eval_idx], rel_score, eps_err, eps_ref);

# %% [markdown]
# **Trained score models, error per noise level.** Train a noise-conditional network
# $s_\theta(x, \sigma) = \mathrm{net}(x, \log\sigma)/\sigma$ (`sm.NoiseConditionalScoreNet`, a
# `TimeConditionedMLP` on $\log\sigma$) with NCSN's loss: DSM at a random level per example,
# weighted by $\sigma^2$; Adam for 700 steps, then 300 at a 10x smaller learning rate (which
# removes most of the minibatch noise from the final weights). Then measure its relative error
# against the exact score of $p_\sigma$ at each level,
# $E\|s_\theta - \nabla\log p_\sigma\|^2 / E\|\nabla\log p_\sigma\|^2$ (0 for the exact score, 1 for
# the zero function). Training is random (initialization, minibatches, noise), so we train
# `NUM_MODELS` networks from independent seeds and report each level's error as the mean over the
# models with its standard error (the largest single model in brackets). Asserted, each within 5
# standard errors: the mean error is under 5 percent at every level down to $\sigma \approx 0.2$ and
# under 15 percent at every level; and it is larger at the smallest level than at $\sigma \approx 0.2$
# (the difference paired by model): there $\nabla\log p_\sigma$ changes on the scale $\sigma$ and is
# hardest to fit. Twelve models: with three, the spread at the smallest level is too large for its
# standard error to support these claims.

# %%
NUM_MODELS = 12
sigmas = sm.geometric_sigmas(3.0, 0.05, 10, dtype=torch.float32)
train_data = mix.to(torch.float32).sample(20000, generator=gen)


def ncsn_loss(model, xb, generator=None):
    return sm.annealed_denoising_score_matching_loss(model, xb, sigmas.to(xb.device), generator=generator)


score_nets = []
for r in range(NUM_MODELS):
    torch.manual_seed(SEED * 1000 + 100 + r)                         # this model's initialization
    net_r = sm.NoiseConditionalScoreNet(2, hidden=64, num_layers=2)
    hist = fit_two_phases(net_r, ncsn_loss, train_data, (700, 300), gen, f"NCSN training, model {r + 1}")
    score_nets.append(net_r.eval())
hist.plot(smooth=25, title=f"annealed DSM loss, model {NUM_MODELS}");

# %%
mix32 = mix.to(torch.float32)
errors = torch.tensor([[sm.score_error(lambda v, net_r=net_r, s_level=s_level: net_r(v, s_level), mix32,
                                       s_level, num_samples=4000, generator=gen, device=device)
                        for s_level in sigmas.tolist()] for net_r in score_nets])      # (models, levels)
err_mean, err_se = errors.mean(0), errors.std(0) / math.sqrt(NUM_MODELS)
print(f"{'sigma':>7s}  relative squared score error, mean ± s.e. over {NUM_MODELS} models  (largest)")
for i, s_level in enumerate(sigmas.tolist()):
    print(f"{s_level:7.3f}  {err_mean[i]:.4f} ± {err_se[i]:.4f}  ({errors[:, i].max():.4f})")
above = sigmas > 0.19
i_02 = int(above.nonzero().max())                                      # the level closest to 0.2
print(f"largest mean error above sigma = 0.19: {err_mean[above].max():.4f}, i.e. an RMS error of "
      f"{err_mean[above].max().sqrt():.0%} of the score's RMS")
harder = errors[:, -1] - errors[:, i_02]                               # paired: the same model at both levels
harder_mean, harder_se = harder.mean().item(), harder.std().item() / math.sqrt(NUM_MODELS)
print(f"error at sigma = {sigmas[-1]:.3f} minus at sigma = {sigmas[i_02]:.3f}: {harder_mean:.4f} ± {harder_se:.4f}")
assert (err_mean[above] + 5 * err_se[above] < 0.05).all() and (err_mean + 5 * err_se < 0.15).all()
assert harder_mean > 5 * harder_se                                     # hardest at the smallest sigma

# %% [markdown]
# **Sampling with the trained scores.** Annealed Langevin over the same 10 levels with step
# $\eta_i = 0.1\,\sigma_i^2$, from 2000 points uniform on $[-4, 4]^2$, then NCSNv2's final denoising
# step: with the exact score of $p_\sigma$ (`EXACT_STEPS` steps per level) and with each trained
# of the first three models (`STEPS` steps per level; a network call costs more than the closed form), all from the same
# starting points. With the exact score, the fraction of samples per mode (the most responsible
# component) is the weight within 5 binomial standard errors: with this many steps the sampler
# itself is accurate. The trained scores find every mode, but their fractions can miss the weights by
# several standard errors (the table). Their relative squared errors are a few percent, but the RMS
# error is the square root of that (printed above), and the ratio of two modes' masses is the
# exponential of the integral of the score along a path between them, through the low-density
# region, at the intermediate levels where the modes separate: errors there move mass between
# modes. Sampling the right weights needs a more accurate score at those levels than seconds of
# training give.
# Asserted for each of the three models: each mode receives at least a third of its weight.

# %%
EXACT_STEPS, STEPS = 200, 100
x_init = (8 * torch.rand(2000, 2, generator=gen) - 4).to(device)
samplers = {"exact score": (lambda v, s_level: mix32.to(v.device).convolve(s_level).score(v), EXACT_STEPS)}
samplers.update({f"trained model {r + 1}": (net_r, STEPS) for r, net_r in enumerate(score_nets[:3])})
fractions, samples_by = {}, {}
with torch.no_grad():
    for name, (score_fn, steps) in samplers.items():
        g_lang = torch.Generator().manual_seed(SEED * 1000 + 300)      # the same noise for every sampler
        samples_by[name] = sm.annealed_langevin_dynamics(score_fn, x_init, sigmas, 0.1 * sigmas[-1].item() ** 2,
                                                         steps, generator=g_lang, final_denoise=True).cpu()
        fractions[name] = metrics.mode_fractions(samples_by[name], mix)
se_w = (mix.weights * (1 - mix.weights) / 2000).sqrt()
print(f"{'':18s} fraction per mode            largest |fraction - weight| in binomial s.e.")
for name, frac_ in fractions.items():
    print(f"{name:18s} {frac_.numpy().round(3)}   {((frac_ - mix.weights).abs() / se_w).max():.1f}")
print(f"{'weights':18s} {mix.weights.numpy()}   (binomial s.e. {se_w.numpy().round(4)})")
assert ((fractions["exact score"] - mix.weights).abs() <= 5 * se_w).all()
assert all((frac_ > mix.weights / 3).all() for frac_ in fractions.values())   # every mode found
fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), layout="constrained")
for ax, name in zip(axes, ["exact score", "trained model 1"]):
    plotting.density_contours(mix.log_prob, (-4, 4), (-4, 4), ax=ax, log=True, cmap="Greys")
    plotting.scatter_samples(samples_by[name], ax=ax, s=3, title=f"annealed Langevin, {name}");

# %% [markdown]
# ## Summary
#
# - The score $\nabla\log p$ ignores the partition function; Langevin dynamics samples with it, but
#   cannot move mass between separated modes; annealing over noise levels can.
# - Explicit, implicit (Hyvärinen), sliced and denoising score matching differ by constants that do
#   not depend on the model (checked numerically); DSM needs no derivative of the model. The
#   sliced loss costs 2 network passes per projection at every $D$, the exact trace $1 + D$
#   (counted in FLOPs); its variance over the projections is $2\,\mathrm{tr}(B^2)/M$ (measured: slope
#   $-1$ in $M$), around the exact implicit loss.
# - Tweedie: $E[x\mid y] = y + \sigma^2\nabla\log p_\sigma(y)$ and
#   $\mathrm{Cov}[x\mid y] = \sigma^2(I + \sigma^2\nabla^2\log p_\sigma)$; the posterior is an
#   exponential family in $x$ with natural parameter $y/\sigma^2$, so every cumulant is a derivative of
#   $\log p_\sigma + \|y\|^2/2\sigma^2$, e.g. $\kappa_3 = \sigma^6\nabla^3\log p_\sigma$; all three exact
#   on mixtures.
# - SURE estimates a denoiser's MSE from noisy data, on average (per example it is noisy); it is
#   implicit score matching on $p_\sigma$, and its minimizer is Tweedie's denoiser.
# - DDPM's $\varepsilon$-prediction is the score scaled by $-\sqrt{1-\bar\alpha_t}$. A noise predictor
#   trained by $L_\text{simple}$ is accurate in $\varepsilon$ at every step, but as a score it is
#   accurate only away from the data: at the first steps its relative score error exceeds 1, because
#   $L_\text{simple}$ weighs the score error by $1 - \bar\alpha_t$.
# - Trained by NCSN's loss for a few seconds, a noise-conditional score is within 5 % (relative
#   squared error) of the exact one at every level down to $\sigma \approx 0.2$ (mean over 12 models);
#   annealed Langevin with it finds every mode, but the weights of the modes need a more accurate
#   score where the modes separate than it reaches.
