# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · The continuous-time view: SDEs, probability-flow ODEs and flow matching
#
# **What you will learn**
#
# - DDPM's forward chain as a discretization of a stochastic differential equation (SDE), the
#   variance-preserving (VP) SDE, and NCSN's noise levels as the variance-exploding (VE) SDE;
# - the reverse-time SDE ([Anderson 1982](../docs/bibliography.md#anderson1982)): with the exact score it samples the
#   data, here checked on a mixture whose score is known in closed form;
# - the probability-flow ODE: the same marginals, deterministic, and an exact log-likelihood by the
#   instantaneous change of variables;
# - DDIM as a first-order solver of that ODE;
# - why Langevin dynamics leaves its target invariant (the Fokker–Planck equation);
# - flow matching on the straight path between noise and data, its exact velocity field, and how it
#   relates to InDI and to the $\varepsilon$- and score parameterizations.
#
# Notation ([Song et al. 2021](../docs/bibliography.md#song2021b), "Score-Based Generative Modeling through Stochastic
# Differential Equations"): continuous time $t \in [0, 1]$, data at $t = 0$, noise at $t = 1$; forward SDE $dx = f(x,
# t)\,dt + g(t)\,dW$ with perturbation kernel $x_t = m(t)\,x_0 + s(t)\,\varepsilon$ and marginal densities $p_t$. Every
# claim is computed and **asserted**; Monte Carlo claims within 5 standard errors (s.e.).
#
# Sources: see the [bibliography](../docs/bibliography.md).

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from course_lib import (
    course_seed,
    data,
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
from course_lib import sde as S
from course_lib.train import fit

SEED = course_seed()      # COURSE_SEED from the environment (default 0): rerun under any seed
gen = seed_everything(SEED)
set_num_threads(1)        # tiny tensors and networks: one CPU thread is fastest (COURSE_THREADS overrides)
device = get_device()
f64 = torch.float64
Z = 5.0                   # standard errors allowed in Monte Carlo comparisons
print("device:", device)


def generator(k):
    """An inner generator seeded from SEED, one per experiment."""
    return torch.Generator().manual_seed(SEED * 1000 + k)


# %% [markdown]
# ## 1. Forward SDEs, and DDPM as a discretization
#
# DDPM's forward step is $x_i = \sqrt{1-\beta_i}\,x_{i-1} + \sqrt{\beta_i}\,z$. Write
# $\beta_i = \beta(t_i)\,\Delta t$ with $\Delta t = 1/T$ and a continuous schedule
# $\beta(t) = \beta_\min + t(\beta_\max - \beta_\min)$ ($\beta_\min = 0.1$, $\beta_\max = 20$ give
# DDPM's $10^{-4} \ldots 0.02$ at $T = 1000$). Since $\sqrt{1-\beta\Delta t} = 1 - \tfrac12\beta\Delta t
# + O(\Delta t^2)$,
#
# $$x_i - x_{i-1} = -\tfrac12\beta(t_i)\,x_{i-1}\,\Delta t + \sqrt{\beta(t_i)}\,\sqrt{\Delta t}\,z
#   + O(\Delta t^2),$$
#
# which is one Euler–Maruyama step of the **VP SDE** $dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dW$
# (Song et al. 2021, Eq. 11; $\sqrt{\Delta t}\,z$ is the increment of the Wiener process $W$). Its drift is
# linear, so its kernel is Gaussian: the mean solves $\dot m = -\tfrac12\beta m$, the variance
# $\dot v = -\beta v + \beta$, giving
#
# $$m(t) = \exp\!\Big(-\tfrac12\!\int_0^t\!\beta\Big),\qquad s(t)^2 = 1 - m(t)^2 ,$$
#
# the continuous $\bar\alpha(t) = m(t)^2$. NCSN's geometric noise levels become the **VE SDE**
# $dx = \sqrt{d\sigma(t)^2/dt}\,dW$ with $\sigma(t) = \sigma_\min(\sigma_\max/\sigma_\min)^t$: no
# drift, $m = 1$, $s(t)^2 = \sigma(t)^2 - \sigma_\min^2$ (Eq. 9).
#
# **Check 1: the kernels.** Simulate each forward SDE from $x_0 = 1$ with many small
# Euler–Maruyama steps (`sde.drift`, `sde.diffusion` only) and compare mean and variance at several
# $t$ with the closed-form kernel `sde.marginal`, within 5 s.e. At small $t$ the VE variance is
# dominated by the $-\sigma_\min^2$ term, so this also checks it.

# %%
vp, ve = S.VPSDE(), S.VESDE()
N_PATHS, N_EULER = 4000, 2000
check_times = [0.05, 0.25, 0.5, 1.0]
g = generator(1)
print(f"{'SDE':4s} {'t':>5s} {'mean (sim)':>11s} {'m(t) x0':>9s} {'var (sim)':>11s} {'s(t)^2':>11s} "
      f"{'z mean':>7s} {'z var':>6s}")
for name, sde in (("VP", vp), ("VE", ve)):
    x = torch.ones(N_PATHS, 1, dtype=f64)
    dt = 1.0 / N_EULER
    for i in range(N_EULER):
        t_i = i * dt
        x = x + sde.drift(x, t_i) * dt + sde.diffusion(t_i).item() * math.sqrt(dt) * torch.randn(
            x.shape, generator=g, dtype=f64)
        if any(abs((i + 1) * dt - tc) < dt / 2 for tc in check_times):
            tc = (i + 1) * dt
            mean_k, std_k = sde.marginal(torch.ones(1, 1, dtype=f64), tc)
            m_sim, v_sim = x.mean().item(), x.var().item()
            z_mean = (m_sim - mean_k.item()) / (math.sqrt(v_sim / N_PATHS))
            z_var = (v_sim - std_k.item() ** 2) / (std_k.item() ** 2 * math.sqrt(2 / (N_PATHS - 1)))
            print(f"{name:4s} {tc:5.2f} {m_sim:11.4f} {mean_k.item():9.4f} {v_sim:11.4g} {std_k.item() ** 2:11.4g} "
                  f"{z_mean:7.2f} {z_var:6.2f}")
            assert abs(z_mean) <= Z and abs(z_var) <= Z, (name, tc)

# %% [markdown]
# **Check 2: DDPM's marginals converge to the VP SDE's.** DDPM's linear schedule with $T$ steps
# (`VPSDE.ddpm_schedule(T)`, betas $\beta(t)/T$) gives $x_i$ (0-based index $i$, time
# $t_i = (i+1)/T$) the kernel mean $\sqrt{\bar\alpha_i}$ and std $\sqrt{1-\bar\alpha_i}$; the SDE at
# $t_i$ gives $m(t_i)$ and $s(t_i)$. The gap is the largest difference over all steps. Each
# $\log(1-\beta_i) = -\beta_i + O(\beta_i^2)$ and the sum $\sum_i\beta_i$ is a Riemann sum of
# $\int\beta$, both with errors $O(1/T)$: the gap should halve when $T$ doubles. Asserted: the gap
# decreases at every doubling, and its log-log slope over the largest $T$ is $-1$ within 0.05.

# %%
Ts = [40, 80, 160, 320, 640, 1280, 2560, 5120]
gaps = []
for T in Ts:
    abar = vp.ddpm_schedule(T).alphas_cumprod
    t_i = torch.arange(1, T + 1, dtype=f64) / T
    mean_c, std_c = vp.marginal(torch.ones(T, 1, dtype=f64), t_i)          # m(t_i) * 1, s(t_i)
    gaps.append(max((abar.sqrt() - mean_c[:, 0]).abs().max().item(),
                    ((1 - abar).sqrt() - std_c).abs().max().item()))
slope_T = np.polyfit(np.log(Ts[3:]), np.log(gaps[3:]), 1)[0]
for T, gap in zip(Ts, gaps):
    print(f"T = {T:5d}   largest gap in kernel mean or std = {gap:.3e}")
print(f"log-log slope over T >= {Ts[3]}: {slope_T:.3f} (first order: -1)")
assert all(a > b for a, b in zip(gaps, gaps[1:]))
assert abs(slope_T + 1) < 0.05
fig, ax = plt.subplots(figsize=(4.5, 3.3), layout="constrained")
ax.loglog(Ts, gaps, "o-")
ax.set(xlabel="T (DDPM steps)", ylabel="largest kernel gap", title="DDPM -> VP SDE");

# %% [markdown]
# ## 2. The reverse-time SDE
#
# Anderson (1982, "Reverse-time diffusion equation models") showed that the forward SDE run
# backwards in time is again an SDE,
#
# $$dx = \big[f(x, t) - g(t)^2\,\nabla_x\log p_t(x)\big]\,dt + g(t)\,d\bar W,$$
#
# with $dt < 0$ and $\bar W$ a Wiener process in reverse time (Song et al. 2021, Eq. 6). Everything
# in it is known except the score $\nabla_x\log p_t$ of the noised data: learning the score at every
# noise level (notebook 06) is what makes generation possible. For a Gaussian mixture
# $p_0 = \sum_k w_k\mathcal N(\mu_k, s_k^2)$ the marginal is again a mixture,
# $p_t = \sum_k w_k\mathcal N(m\mu_k, m^2 s_k^2 + s^2)$ (`S.marginal_mixture`), so its score is exact
# (`S.mixture_score`): the sampler can be checked by itself, without a network.
#
# **Euler–Maruyama** on the grid $t_0 = 1 > t_1 > \dots > t_K = \epsilon$ ($\epsilon = 10^{-3}$):
# $x \leftarrow x - [f - g^2 s]\,\Delta t + g\sqrt{\Delta t}\,z$, no noise in the last step.
#
# **Check.** Sample the three-mode toy of notebook 06 from the prior $\mathcal N(0, I)$: (i) the fraction of samples
# per mode (`metrics.mode_fractions`) is the weight within 5 binomial s.e.; (ii) the unbiased MMD$^2$ ([Gretton et al.
# 2012](../docs/bibliography.md#gretton2012), "A Kernel Two-Sample Test"; Gaussian kernel of width 0.2, the scale of
# the modes) between the samples and fresh data, averaged over batches, is within 5 s.e. of the MMD$^2$ between two
# fresh data samples (whose expectation is 0). (iii) The test has power: with only 10 steps the same MMD$^2$ is far
# above.

# %%
mix = toy.three_mode_mixture(f64)
score_fn = S.mixture_score(mix, vp)
N_SAMPLES, SDE_STEPS, MMD_BATCH, BANDWIDTH = 10000, 500, 1000, 0.2
x_sde = S.reverse_sde_sample(vp, score_fn, (N_SAMPLES, 2), SDE_STEPS, generator=generator(2), dtype=f64)
frac = metrics.mode_fractions(x_sde, mix)
se_w = (mix.weights * (1 - mix.weights) / N_SAMPLES).sqrt()
print("fraction per mode", frac.numpy().round(4), " weights", mix.weights.numpy(),
      f" largest deviation {((frac - mix.weights).abs() / se_w).max():.2f} s.e.")
assert ((frac - mix.weights).abs() <= Z * se_w).all()


def mmd_vs_data(samples, g_data):
    """MMD^2 of each batch of `samples` against its own fresh data batch: (num_batches,)."""
    return torch.stack([metrics.mmd(b, mix.sample(len(b), generator=g_data), bandwidth=BANDWIDTH)
                        for b in samples.split(MMD_BATCH)])


def mean_se(v):
    return v.mean().item(), v.std().item() / math.sqrt(v.numel())


g_data = generator(3)
mmd_null = mmd_vs_data(mix.sample(N_SAMPLES, generator=g_data), g_data)       # data vs data
mmd_sde = mmd_vs_data(x_sde, g_data)
x_coarse = S.reverse_sde_sample(vp, score_fn, (N_SAMPLES, 2), 10, generator=generator(4), dtype=f64)
mmd_coarse = mmd_vs_data(x_coarse, g_data)
(m0, s0), (m1, s1), (m2, s2) = mean_se(mmd_null), mean_se(mmd_sde), mean_se(mmd_coarse)
print(f"MMD^2 (x 1e4) over {len(mmd_null)} batches of {MMD_BATCH}:  data vs data {1e4 * m0:.2f} ± {1e4 * s0:.2f}"
      f",  SDE ({SDE_STEPS} steps) vs data {1e4 * m1:.2f} ± {1e4 * s1:.2f},  SDE (10 steps) vs data "
      f"{1e4 * m2:.2f} ± {1e4 * s2:.2f}")
z_sde, z_coarse = (m1 - m0) / math.hypot(s0, s1), (m2 - m0) / math.hypot(s0, s2)
print(f"difference from data vs data: {z_sde:.2f} s.e. ({SDE_STEPS} steps), {z_coarse:.1f} s.e. (10 steps)")
assert abs(z_sde) <= Z and z_coarse > 4 * Z

# %% [markdown]
# **Predictor–corrector** (Song et al. 2021, Algorithms 2–3): between the Euler–Maruyama steps, a
# Langevin step at the current $t$ (`S.pc_sample`, step size set by a signal-to-noise ratio) pulls
# the particles back toward $p_t$ and corrects the discretization error. With 100 steps it still
# recovers the weights (within 5 s.e.) and the MMD$^2$ stays within 5 s.e. of data vs data.

# %%
x_pc = S.pc_sample(vp, score_fn, (N_SAMPLES, 2), 100, generator=generator(5), dtype=f64)
frac_pc = metrics.mode_fractions(x_pc, mix)
m3, s3 = mean_se(mmd_vs_data(x_pc, g_data))
z_pc = (m3 - m0) / math.hypot(s0, s3)
print("PC, 100 steps: fraction per mode", frac_pc.numpy().round(4),
      f" largest deviation {((frac_pc - mix.weights).abs() / se_w).max():.2f} s.e.;"
      f" MMD^2 difference from data vs data {z_pc:.2f} s.e.")
assert ((frac_pc - mix.weights).abs() <= Z * se_w).all() and abs(z_pc) <= Z
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
for ax, xs, title in ((axes[0], x_sde, f"reverse SDE, {SDE_STEPS} steps"),
                      (axes[1], x_coarse, "reverse SDE, 10 steps")):
    plotting.density_contours(mix.log_prob, (-4, 4), (-4, 4), ax=ax, log=True, cmap="Greys")
    plotting.scatter_samples(xs[:3000], ax=ax, s=2, title=title)

# %% [markdown]
# ### Exercise 1 (multi-step, ★★★, 5 points): an Euler–Maruyama sampler for the reverse VP SDE
#
# Implement `reverse_sde_sampler(score_fn, x1, noise, beta_min, beta_max, eps)`: start at `x1`
# (shape `(N, D)`) at $t = 1$ and take `K = noise.shape[0]` steps on the grid
# `torch.linspace(1, eps, K + 1)` (float64), with $\beta(t) = \beta_\min + t(\beta_\max-\beta_\min)$,
# $f = -\tfrac12\beta(t)x$, $g^2 = \beta(t)$:
# $x \leftarrow x - [f(x, t_i) - g(t_i)^2\,s(x, t_i)]\,\Delta t_i + g(t_i)\sqrt{\Delta t_i}\;$`noise[i]`,
# with $\Delta t_i = t_i - t_{i+1}$ and **no noise in the last step**. Call the score as
# `score_fn(x, t)` with `t` a tensor `(N,)` of `x`'s dtype. The check compares your result with
# `course_lib.sde.reverse_sde_sample` driven by the same noise, on random mixtures, schedules, 1 to 60
# steps and final times from 0 to 0.1.

# %% nbgrader={"grade": false, "grade_id": "reverse_sde_sampler", "locked": false, "schema_version": 3, "solution": true, "task": false}
def reverse_sde_sampler(score_fn, x1, noise, beta_min, beta_max, eps):
    """Euler-Maruyama for the reverse VP SDE; x1 (N, D), noise (K, N, D). Returns x at t = eps, (N, D)."""
    ### BEGIN SOLUTION
    num_steps = noise.shape[0]
    times = torch.linspace(1.0, eps, num_steps + 1, dtype=torch.float64).tolist()
    x = x1.clone()
    for i in range(num_steps):
        t, dt = times[i], times[i] - times[i + 1]
        beta = beta_min + t * (beta_max - beta_min)
        s = score_fn(x, torch.full((x.shape[0],), t, dtype=x.dtype))
        x = x - (-0.5 * beta * x - beta * s) * dt
        if i < num_steps - 1:
            x = x + math.sqrt(beta * dt) * noise[i]
    return x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "reverse_sde_sampler_check", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
grading.check("reverse_sde_sampler", reverse_sde_sampler)
### BEGIN HIDDEN TESTS
grading.check("reverse_sde_sampler", reverse_sde_sampler, seed=500, verbose=False)     # other inputs
g_h = torch.Generator().manual_seed(SEED * 1000 + 906)                                 # its own draws
x1_h = torch.randn(1000, 2, generator=g_h, dtype=torch.float64)
noise_h = torch.randn(300, 1000, 2, generator=g_h, dtype=torch.float64)
x_h = reverse_sde_sampler(S.mixture_score(mix, vp), x1_h, noise_h, vp.beta_min, vp.beta_max, 1e-3)
se_h = (mix.weights * (1 - mix.weights) / 1000).sqrt()
assert ((metrics.mode_fractions(x_h, mix) - mix.weights).abs() <= 5 * se_h).all(), \
    "with the exact score, 300 steps must recover the mixture's weights (within 5 binomial s.e.)"
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The probability-flow ODE
#
# The marginals $p_t$ of the forward SDE solve its Fokker–Planck equation
#
# $$\partial_t p_t = -\nabla\cdot(f\,p_t) + \tfrac12 g^2\,\Delta p_t
#   = -\nabla\cdot\Big(\big[f - \tfrac12 g^2\nabla\log p_t\big]\,p_t\Big),$$
#
# using $\Delta p = \nabla\cdot(p\nabla\log p)$. The right-hand side is the continuity equation of the deterministic
# flow $\dot x = \tilde f(x, t) := f - \tfrac12 g^2\nabla\log p_t$: the **probability-flow ODE** (Song et al. 2021, Eq.
# 13) moves a cloud of points with exactly the SDE's marginals $p_t$, without noise. Run backwards from prior draws it
# samples the data; run forwards it maps data to noise, a bijection. Along it the log-density changes by the
# instantaneous change of variables ([Chen et al. 2018](../docs/bibliography.md#chen2018), "Neural Ordinary
# Differential Equations"), $\frac{d}{dt}\log p_t(x(t)) = -\nabla\cdot\tilde f(x(t), t)$, so
#
# $$\log p_\epsilon(x) = \log p_1\big(x(1)\big) + \int_\epsilon^1 \nabla\cdot\tilde f\big(x(t), t\big)\,dt ,$$
#
# an exact likelihood: solve the ODE from $x$ up to $t = 1$ together with the integral of the divergence (exact by
# autograd in 2-D; Hutchinson's trace estimator in high dimension, as in [Grathwohl et al.
# 2019](../docs/bibliography.md#grathwohl2019), "FFJORD"). `S.probability_flow_trajectory` and `S.ode_log_likelihood`
# solve it with scipy's adaptive Dormand–Prince 8(5,3) in float64.
#
# **Check 1: the same marginals.** From 4000 prior draws, solve the ODE down to several $t$ and
# compare the mean and second moment of every coordinate with those of the exact $p_t$, within
# 5 s.e.; at $t = \epsilon$ also the fractions per mode.

# %%
N_ODE = 4000
ode_times = [1.0, 0.6, 0.3, 0.1, 1e-3]
x1 = vp.prior_sample((N_ODE, 2), generator=generator(6), dtype=f64)
ode_path = S.probability_flow_trajectory(vp, score_fn, x1, ode_times)
print(f"{'t':>6s}  z-scores of the mean (x1, x2) and the second moment (x1, x2) against exact p_t")
for t, xs in zip(ode_times[1:], ode_path[1:]):
    p_t = S.marginal_mixture(mix, vp, t)
    stds = p_t.stds if p_t.stds.dim() == 2 else p_t.stds[:, None].expand_as(p_t.means)
    exact_m1 = p_t.weights @ p_t.means
    exact_m2 = p_t.weights @ (p_t.means ** 2 + stds ** 2)
    z1 = (xs.mean(0) - exact_m1) / (xs.std(0) / math.sqrt(N_ODE))
    z2 = ((xs ** 2).mean(0) - exact_m2) / ((xs ** 2).std(0) / math.sqrt(N_ODE))
    print(f"{t:6.3f}  {z1.numpy().round(2)}  {z2.numpy().round(2)}")
    assert (z1.abs() <= Z).all() and (z2.abs() <= Z).all(), t
frac_ode = metrics.mode_fractions(ode_path[-1], mix)
se_ode = (mix.weights * (1 - mix.weights) / N_ODE).sqrt()
print("ODE at t = 1e-3: fraction per mode", frac_ode.numpy().round(4), " weights", mix.weights.numpy())
assert ((frac_ode - mix.weights).abs() <= Z * se_ode).all()

# %% [markdown]
# **Check 2: deterministic, unlike the SDE.** Solving again from the same $x(1)$ gives bitwise the
# same samples; two reverse-SDE runs from the same $x(1)$ with different noise end far apart (the
# same marginals, but a different coupling between noise and data).

# %%
again = S.probability_flow_trajectory(vp, score_fn, x1[:500], [1.0, 1e-3])[-1]
assert torch.equal(again, S.probability_flow_trajectory(vp, score_fn, x1[:500], [1.0, 1e-3])[-1])
sde_a = S.reverse_sde_sample(vp, score_fn, (500, 2), SDE_STEPS, generator=generator(7), x1=x1[:500])
sde_b = S.reverse_sde_sample(vp, score_fn, (500, 2), SDE_STEPS, generator=generator(8), x1=x1[:500])
moved = (sde_a - sde_b).norm(dim=1).mean().item()
print(f"ODE twice from the same start: identical; SDE twice: mean distance {moved:.3f} between endpoints")
assert moved > 0.5

# %%
widgets.plot_reverse_sde_vs_ode();

# %%
widgets.reverse_sde_vs_ode_explorer()

# %% [markdown]
# **Check 3: exact log-likelihoods.** For test points from the data, `S.ode_log_likelihood` (solver
# tolerances $10^{-5}$, relative and absolute, per component) equals the exact
# $\log p_\epsilon(x)$ of the noised mixture. One subtlety: the prior $\mathcal N(0, I)$ is only
# approximately $p_1$ (the mean coefficient $m(1)$, printed below, still carries a trace of the
# data), which costs a small error of its own (also printed); to test the solver alone we pass the
# exact $\log p_1$ as the prior. Asserted: every point's error below 10 tolerance units,
# $10 \cdot 10^{-5}(1 + |\log p|)$.

# %%
TOL = 1e-5
x_test = mix.sample(50, generator=generator(9))
exact_ll = S.marginal_mixture(mix, vp, 1e-3).log_prob(x_test)
details = S.ode_log_likelihood(vp, score_fn, x_test, rtol=TOL, atol=TOL, return_details=True,
                               prior_log_prob=S.marginal_mixture(mix, vp, 1.0).log_prob)
ll_default = S.ode_log_likelihood(vp, score_fn, x_test, rtol=TOL, atol=TOL)
units = ((details.log_prob - exact_ll).abs() / (TOL * (1 + exact_ll.abs()))).max().item()
print(f"mean exact log p(x) over {len(x_test)} test points: {exact_ll.mean():.4f} nats")
print(f"largest |ODE - exact| = {(details.log_prob - exact_ll).abs().max():.2e} nats = {units:.2f} "
      f"tolerance units ({details.nfev} evaluations)")
print(f"with the N(0, I) prior instead (m(1) = {vp.marginal_mean_coeff(1.0).item():.4f}): largest error "
      f"{(ll_default - exact_ll).abs().max():.2e} nats")
assert units <= 10

# %% [markdown]
# ### Derivation (graded by hand, ★★☆, 3 points)
#
# Show that the probability-flow ODE $\dot x = f(x, t) - \tfrac12 g(t)^2\nabla\log p_t(x)$ has the
# marginals $p_t$ of the SDE $dx = f\,dt + g\,dW$, when started from $p_1$ at $t = 1$ and run
# backwards (or from $p_0$ forwards). Start from the Fokker–Planck equation of the SDE and the
# continuity equation of an ODE; say where you use that $g$ does not depend on $x$.

# %% [markdown] nbgrader={"grade": true, "grade_id": "probability_flow_derivation", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# **Model answer.** The SDE's marginals solve Fokker–Planck,
# $\partial_t p = -\nabla\cdot(f p) + \tfrac12\sum_{ij}\partial_i\partial_j\big[(g g^\top)_{ij}p\big]$.
# Since $g$ depends on $t$ only, the second term is $\tfrac12 g^2\Delta p$, and
# $\Delta p = \nabla\cdot\nabla p = \nabla\cdot(p\nabla\log p)$. Hence
# $\partial_t p = -\nabla\cdot\big([f - \tfrac12 g^2\nabla\log p]\,p\big)$. The density $q_t$ of an ODE
# $\dot x = v(x, t)$ solves the continuity equation $\partial_t q = -\nabla\cdot(v q)$. With
# $v = f - \tfrac12 g^2\nabla\log p_t$, $q = p$ is a solution; both start from the same $p_1$ (or
# $p_0$), and the continuity equation with a smooth (Lipschitz) $v$ has a unique solution, so
# $q_t = p_t$ for all $t$.
#
# **Rubric (3 points).** 1 point: Fokker–Planck with $\tfrac12 g^2\Delta p$ (using that $g$ does not
# depend on $x$; otherwise a $\nabla\cdot(p\,\nabla g^2)$ term appears). 1 point: the identity
# $\Delta p = \nabla\cdot(p\nabla\log p)$ and the rewriting as a continuity equation. 1 point: the
# ODE's continuity equation and the conclusion from a common initial condition (uniqueness named).
# ### END SOLUTION

# %% [markdown]
# ### A trained score: the ODE likelihood against the DDPM ELBO
#
# With the exact score, the ODE's likelihood is the data's. With a **trained** noise predictor
# $\varepsilon_\theta(x, t)$ (score $s_\theta = -\varepsilon_\theta/s(t)$, `S.score_from_eps`), one
# network defines **two different generative models**:
#
# - the **probability-flow ODE** driven by $s_\theta$: a continuous normalizing flow, a bijection
#   $x \mapsto z = x(1)$, so $q^\text{ODE}_\theta(x) = \pi(z(x))\,|\det\partial z/\partial x|$ is a proper
#   density, and `S.ode_log_likelihood` computes it (up to the solver's tolerance);
# - the **DDPM Markov chain** $p_\theta(x_{0:T})$ of notebook 04 with the same network at the steps:
#   index $i$ is the time $t_i$ with $m(t_i)^2 = \bar\alpha_i$ (`S.discrete_eps_model`; on
#   `vp.noise_schedule(T)`, whose chain samples the VP SDE exactly, $t_i = (i+1)/T$). With
#   $\sigma_t^2 = \beta_t$ its step is $x_{i-1} = (x_i + \beta_i s_\theta)/\sqrt{\alpha_i} + \sqrt{\beta_i}\,z$,
#   which to first order in $\beta_i = \beta(t_i)\Delta t$ is the Euler–Maruyama step of the
#   **reverse SDE** of section 2. Its $-\mathrm{ELBO}$ (`diffusion.vlb_terms`) bounds the chain's
#   negative log-likelihood: $-\log p_\theta(x_0) = -\mathrm{ELBO}(x_0) - \mathrm{KL}\big(q(x_{1:T}\mid x_0)\,\|\,
#   p_\theta(x_{1:T}\mid x_0)\big) \le -\mathrm{ELBO}(x_0)$.
#
# **Why the two numbers can differ.** (i) They are likelihoods of different models. The ODE moves densities by the
# continuity equation $\partial_t q = -\nabla\cdot\big([f - \tfrac12 g^2 s_\theta]\,q\big)$, the reverse SDE by the
# Fokker–Planck equation with drift $f - g^2 s_\theta$ and diffusion $g^2$. The derivation above turned one into the
# other with $\tfrac12 g^2\Delta q = \nabla\cdot(\tfrac12 g^2\,q\nabla\log q)$, which needs $s_\theta = \nabla\log
# q_t$: when the score is exact both reproduce $p_t$, otherwise their marginals part ways. (ii) The ELBO is a *bound*
# on the chain's likelihood, and says nothing about the ODE's: no inequality between the ODE's NLL and the
# $-\mathrm{ELBO}$ holds in general. (iii) They need different accuracy. The chain's KL terms involve only
# $\|\varepsilon_\theta - \varepsilon\|^2$, the quantity training minimizes; the ODE's log-density integrates the
# divergence $\nabla\cdot\tilde f = -\tfrac12 g^2\,\nabla\cdot s_\theta + \dots$, the trace of the network's
# **Jacobian**, which the loss never fits directly and which $1/s(t)$ magnifies near the data ([Lu et al.
# 2022](../docs/bibliography.md#lu2022), "Maximum Likelihood Training for Score-Based Diffusion ODEs by High-Order
# Denoising Score Matching", bound the ODE's KL by first-, second- and third-order score errors, the SDE's by the
# first-order error alone).
#
# What must hold for any model: $\mathbb E_p[-\log q(x)] = H(p) + \mathrm{KL}(p\,\|\,q) \ge H(p)$ for any
# proper density $q$ (a cross-entropy), so both the ODE's NLL and the $-\mathrm{ELBO}$ (which is
# larger than the chain's NLL) are at least the data's entropy.
#
# **Check.** The data are notebook 05's: the 25-mode grid standardized to unit variance per
# coordinate (std 0.05 before scaling). A `FourierTimeMLP` (as notebook 05's, time embedded at scale
# 1000) is trained in continuous time with `S.noise_prediction_loss` ($t \sim U(10^{-3}, 1)$, 1500 Adam
# steps of batch 256, cosine-decayed learning rate). On 256 test points, all in nats in the original
# units of the grid ($+2\log(\text{scale})$, as in notebook 05), with standard errors over the points
# and every comparison paired (same points):
#
# - first, with no training, the conversions this section relies on, with the exact noise predictor
#   (next cell);
# - $H(p)$ by Monte Carlo with the exact log-density;
# - the **exact-score** ODE NLL at $t = 0$ with the exact $p_1$ as prior: asserted equal to $-\log p(x)$
#   at every point within 10 tolerance units ($10^{-3}$, loose, to keep it cheap), hence its mean
#   equals the estimate of $H(p)$ on the same points;
# - the trained network's ODE NLL ($t = \epsilon = 10^{-3}$, prior $\mathcal N(0, I)$) and its DDPM
#   $-\mathrm{ELBO}$ ($T = 1000$ steps of `vp.noise_schedule`, $\sigma_t^2 = \beta_t$): each asserted
#   $\ge H(p)$ within 5 s.e.;
# - the paired difference ODE NLL $-$ ($-\mathrm{ELBO}$), with its standard error.

# %% [markdown]
# **The conversions, with the exact noise predictor.** On the standardized grid the exact
# $\varepsilon^*(x, t) = E[\varepsilon \mid x_t = x]$ follows from the posterior mean of the clean point:
# $x_t/m = x_0 + (s/m)\,\varepsilon$, so $E[x_0 \mid x_t] =$ `posterior_mean(x_t/m, s/m)` of the mixture
# (Bayes' rule, no score involved) and $\varepsilon^* = (x_t - m\,E[x_0\mid x_t])/s$. Asserted, to float
# precision: `S.score_from_eps` turns it into the mixture's score `S.mixture_score` (Tweedie's
# formula in continuous time) at five times from $10^{-3}$ to 1; and `S.discrete_eps_model` on
# `vp.noise_schedule(T)` is DDPM's exact predictor `diffusion.optimal_eps_model` of the same mixture at
# every step index (the time of index $i$ is $(i+1)/T$). Then `S.noise_prediction_loss` is
# minimized by $\varepsilon^*$: for any perturbation $\delta(x_t, t)$,
# $E\|\varepsilon^* + \delta - \varepsilon\|^2 - E\|\varepsilon^* - \varepsilon\|^2 = E\|\delta\|^2$
# (the cross term $2E[\delta\cdot(\varepsilon^* - \varepsilon)]$ vanishes because $\varepsilon^*$ is the
# conditional mean). With $\delta = 0.3\,x_t$ and $E\|x_t\|^2 = 2$ (unit variance per coordinate at
# every $t$: the VP SDE preserves it), the loss must rise by $0.09 \cdot 2 = 0.18$: asserted within 5
# standard errors of the paired difference (same times and noise for both losses).

# %%
data_scale = math.sqrt(8 + 0.05 ** 2)                             # std of each coordinate of the grid
grid = toy.grid_mixture()
grid_std = toy.grid_mixture(spacing=2 / data_scale, std=0.05 / data_scale)
g64 = grid_std.to(f64)
score_star = S.mixture_score(g64, vp)


def eps_star(x, t):
    """E[eps | x_t = x] from the posterior mean of x0 (Bayes' rule), t a tensor (N,)."""
    m, s = vp.marginal_mean_coeff(t)[:, None], vp.marginal_std(t)[:, None]
    return (x - m * g64.posterior_mean(x / m, (s / m)[:, 0])) / s


x0_c = g64.sample(20_000, generator=generator(74))
for t_c in (1e-3, 0.01, 0.1, 0.5, 1.0):
    tt = torch.full((2000,), t_c, dtype=f64)
    xt_c = vp.marginal_mean_coeff(tt)[:, None] * x0_c[:2000] + vp.marginal_std(tt)[:, None] * torch.randn(
        2000, 2, generator=generator(75), dtype=f64)
    torch.testing.assert_close(S.score_from_eps(vp, eps_star)(xt_c, tt), score_star(xt_c, tt), rtol=1e-9, atol=1e-9)
sched_c = vp.noise_schedule(1000)
idx_c = torch.randint(0, 1000, (4000,), generator=generator(76))
xt_c = diffusion.q_sample(sched_c, x0_c[:4000], idx_c, torch.randn(4000, 2, generator=generator(77), dtype=f64))
torch.testing.assert_close(S.discrete_eps_model(vp, eps_star, sched_c)(xt_c, idx_c),
                           diffusion.optimal_eps_model(g64, sched_c)(xt_c, idx_c), rtol=1e-9, atol=1e-9)
loss_star = S.noise_prediction_loss(vp, eps_star, x0_c, generator=generator(78), reduction="none")
loss_moved = S.noise_prediction_loss(vp, lambda x, t: eps_star(x, t) + 0.3 * x, x0_c, generator=generator(78),
                                     reduction="none")
rise, rise_se = mean_se(loss_moved - loss_star)
print(f"loss at eps* + 0.3 x_t minus loss at eps*: {rise:.4f} ± {rise_se:.4f} (E||delta||^2 = 0.18)")
assert abs(rise - 0.18) < Z * rise_se

# %%
LL_EPS, LL_TOL, LL_POINTS, LL_STEPS, LL_T = 1e-3, 1e-3, 256, 1500, 1000
torch.manual_seed(SEED * 1000 + 300)                               # the network's initialization
eps_net = nets.FourierTimeMLP(2, num_features=64, scale=1.0, hidden=128, num_layers=3, time_scale=1000.0)
opt = torch.optim.Adam(eps_net.parameters(), lr=2e-3)
decay = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, LL_STEPS) / LL_STEPS)))               # cosine decay
fit(eps_net, lambda model, x0, generator=None: S.noise_prediction_loss(vp, model, x0, generator=generator,
                                                                       eps=LL_EPS),
    grid_std.sample(20000, generator=generator(70)), num_steps=LL_STEPS, batch_size=256, optimizer=opt,
    device=device, generator=generator(71), log_every=1, callback=lambda step, loss, model: decay.step(),
    desc="continuous-time noise predictor")
eps_net = eps_net.to("cpu").eval()


def eps_theta(x, t):
    """The float32 network on float64 inputs (the solvers and the bound work in float64)."""
    return eps_net(x.float(), t.float()).to(x.dtype)


x_ll = grid.sample(LL_POINTS, generator=generator(72))              # test points, original units
x_ll_std = (x_ll / data_scale).to(f64)
log_jac = 2 * math.log(data_scale)                                  # nats, standardized -> original units
neg_log_p = -grid.log_prob(x_ll).to(f64)                            # -log p(x), exact
h_p, h_se = mean_se(neg_log_p)

exact_ll = S.ode_log_likelihood(vp, S.mixture_score(g64, vp), x_ll_std, eps=0.0, rtol=LL_TOL, atol=LL_TOL,
                                prior_log_prob=S.marginal_mixture(g64, vp, 1.0).log_prob)
nll_exact = -exact_ll + log_jac
ll_units = ((nll_exact - neg_log_p).abs() / (LL_TOL * (1 + neg_log_p.abs()))).max().item()

ode_details = S.ode_log_likelihood(vp, S.score_from_eps(vp, eps_theta), x_ll_std, eps=LL_EPS, rtol=LL_TOL,
                                   atol=LL_TOL, return_details=True)
nll_ode = -ode_details.log_prob + log_jac
ll_schedule = vp.noise_schedule(LL_T)
vlb = diffusion.vlb_terms(ll_schedule, S.discrete_eps_model(vp, eps_theta, ll_schedule), x_ll_std,
                          variance="large", generator=generator(73))
nll_elbo = vlb.total + log_jac

print(f"nats per point, original units, {LL_POINTS} test points (mean ± s.e.; gaps paired):")
print(f"  H(p), Monte Carlo with the exact log p          {h_p:7.3f} ± {h_se:.3f}")
print(f"  exact-score ODE NLL (t = 0, exact p_1 prior)    {mean_se(nll_exact)[0]:7.3f}   "
      f"largest |error| {ll_units:.2f} tolerance units")
rows = {"trained ODE NLL (t = 1e-3)": nll_ode, "trained DDPM -ELBO (T = 1000)": nll_elbo}
for name, v in rows.items():
    gap, gap_se = mean_se(v - neg_log_p)
    print(f"  {name:46s}  {mean_se(v)[0]:7.3f} ± {mean_se(v)[1]:.3f}   minus H(p): {gap:.3f} ± {gap_se:.3f}")
    assert gap > -Z * gap_se, name                                  # a cross-entropy >= the entropy
ode_minus_elbo, ode_minus_elbo_se = mean_se(nll_ode - nll_elbo)
print(f"  ODE NLL - (-ELBO), paired: {ode_minus_elbo:.3f} ± {ode_minus_elbo_se:.3f} nats "
      f"({ode_minus_elbo / ode_minus_elbo_se:.1f} s.e.); ODE solver: {ode_details.nfev} evaluations")
assert ll_units <= 10

# %% [markdown]
# **Reading the numbers.** The exact score gives back $H(p)$, as section 3's check promised. The trained network's
# two NLLs are both above $H(p)$, as cross-entropies must be, but nothing makes them equal, and no order between them
# is asserted: no theorem fixes the sign of their difference, and its size depends on the training run (rerun under
# another `COURSE_SEED` to see it move), so which one is lower is not stated here. Both models
# are fed the same noise predictions; the chain's bound is close to what training optimized (a weighted sum of
# noise-prediction errors), while the ODE's NLL integrates the divergence of $s_\theta = -\varepsilon_\theta/s(t)$
# at times where $s(t)$ is comparable to the width of the grid's modes (0.05 before scaling), where small errors in
# the network's Jacobian change how much the flow compresses each mode. On CIFAR-10, Song et al. (2021, Table 2)
# report ODE likelihoods below the DDPM bounds of Ho et al. (2020); Lu et al. (2022) improve the ODE's likelihood by
# training the Jacobian too (high-order score matching).


# %% [markdown]
# ## 4. DDIM is a first-order solver of the same ODE
#
# DDIM with $\eta = 0$ ([Song, Meng & Ermon 2021](../docs/bibliography.md#song2021a), "Denoising Diffusion Implicit
# Models", Sec. 4.3) updates $\bar x = x/m$ as $\bar x_{\text{prev}} = \bar x + (\sigma_{\text{prev}} - \sigma)\,
# \hat\varepsilon(x, t)$ with $\sigma = s/m$: exactly one Euler step of the probability-flow ODE written in the
# variables $(\bar x, \sigma)$, where it reads $d\bar x/d\sigma = \hat\varepsilon$.
#
# **Predict, then run (★☆☆, 1 point).** Before running the check below: by about what factor does
# DDIM's error at $t = 0$ fall when the number of steps goes from 10 to 320 (32 times more)?
# (a) about 32; (b) about 1000; (c) hardly at all: with the exact $E[\varepsilon\mid x_t]$ the
# error is already at the level of the reference solver. Set `prediction` to one letter; the cell
# after the run says which one happened.

# %% nbgrader={"grade": false, "grade_id": "ddim_order_prediction", "locked": false, "schema_version": 3, "solution": true, "task": false}
prediction = None  # one of "a", "b", "c"
### BEGIN SOLUTION
prediction = "a"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ddim_order_prediction_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
grading.check_prediction(prediction, "abc")
### BEGIN HIDDEN TESTS
assert prediction == "a", "Euler's method is first order: 32 times more steps, about 32 times less error"
### END HIDDEN TESTS

# %% [markdown]
# **Check.** Euler's method is first order: its error at $t = 0$ should halve when the steps
# double. Use the discrete schedule that samples the VP SDE exactly at $t_i = (i+1)/1000$
# (`vp.noise_schedule(1000)`) and DDIM with the exact $E[\varepsilon\mid x_t]$ of the mixture
# (`diffusion.optimal_eps_model`), from the same 500 prior draws as a tightly solved ODE
# (tolerance $10^{-8}$) from $t = 1$ to $0$. Asserted: the mean distance to the ODE's endpoint
# falls at every doubling, with a log-log slope of $-1$ within 0.1 (second order would give $-2$).

# %%
ddim_schedule = vp.noise_schedule(1000)
eps_model = diffusion.optimal_eps_model(mix, ddim_schedule)
x1_ddim = x1[:500]
ode_end = S.probability_flow_trajectory(vp, score_fn, x1_ddim, [1.0, 0.0], rtol=1e-8, atol=1e-8)[-1]
ddim_steps = [10, 20, 40, 80, 160, 320]
ddim_err = [(diffusion.ddim_sample(ddim_schedule, eps_model, (500, 2), n, noise=x1_ddim) - ode_end)
            .norm(dim=1).mean().item() for n in ddim_steps]
slope_ddim = np.polyfit(np.log(ddim_steps), np.log(ddim_err), 1)[0]
for n, e in zip(ddim_steps, ddim_err):
    print(f"DDIM, {n:3d} steps: mean distance to the ODE solution {e:.2e}")
print(f"log-log slope {slope_ddim:.3f}; error ratio 10 -> 320 steps: {ddim_err[0] / ddim_err[-1]:.1f}")
assert all(a > b for a, b in zip(ddim_err, ddim_err[1:])) and abs(slope_ddim + 1) < 0.1
fig, ax = plt.subplots(figsize=(4.5, 3.3), layout="constrained")
ax.loglog(ddim_steps, ddim_err, "o-", label="DDIM (eta = 0)")
ax.loglog(ddim_steps, ddim_err[0] * 10 / np.array(ddim_steps), "k--", lw=0.8, label="slope -1")
ax.set(xlabel="steps", ylabel="error vs ODE", title="DDIM as an ODE solver")
ax.legend();

# %% [markdown]
# *Answer:* (a), about 32 (first order: error $\propto$ 1/steps), as the printed ratio shows.
#
# ## 5. Why Langevin dynamics leaves its target invariant
#
# Notebook 06 used Langevin dynamics $dx = \nabla\log\pi(x)\,dt + \sqrt2\,dW$ and stated that $\pi$ is
# its stationary law. Its Fokker–Planck equation is
#
# $$\partial_t p = -\nabla\cdot(p\nabla\log\pi) + \Delta p = \nabla\cdot\Big(p\,\nabla\log\frac{p}{\pi}\Big),$$
#
# and at $p = \pi$ the flux $p\nabla\log(p/\pi)$ vanishes: $\pi$ is stationary. More: the KL
# divergence decreases along the way,
# $\frac{d}{dt}\mathrm{KL}(p_t\,\|\,\pi) = \int \partial_t p\,\log\frac p\pi
#   = -\int p\,\big\|\nabla\log\frac p\pi\big\|^2 \le 0$
# (integration by parts), with equality only at $p = \pi$.
#
# **Check** on a non-Gaussian target, the 1-D mixture $\pi = 0.3\,\mathcal N(-1.5, 0.5^2) +
# 0.7\,\mathcal N(1.5, 0.8^2)$ (its modes overlap enough for Langevin to mix):
# (i) started **at** $\pi$, 5000 chains (step $\eta = 0.005$, 2000 steps, time 10) keep the law
# $\pi$: the Kolmogorov–Smirnov statistic $\sqrt n D_n$ against the exact CDF stays below 2.7 (a
# deviation that large has probability below $10^{-6}$); (ii) started far away, at
# $\mathcal N(-4, 0.1^2)$, the Fokker–Planck equation solved on a grid (finite volumes, exact mass
# conservation) has a KL that decreases at every time checked, and the particles follow the grid's
# solution (KS against its CDF below 2.7 at every checked time).

# %%
target = toy.GaussianMixture(torch.tensor([[-1.5], [1.5]], dtype=f64), torch.tensor([0.5, 0.8], dtype=f64),
                             torch.tensor([0.3, 0.7], dtype=f64))


def target_cdf(x):
    z = (x[:, None] - target.means[:, 0]) / target.stds[:, 0]
    return (target.weights * torch.special.ndtr(z)).sum(1)


def ks_stat(samples, cdf_values_fn):
    """sqrt(n) * sup |F_n - F| for 1-D samples, F given as a function of sorted points."""
    xs = samples.flatten().sort().values
    n = xs.numel()
    F = cdf_values_fn(xs)
    i = torch.arange(1, n + 1, dtype=f64)
    return math.sqrt(n) * torch.maximum(i / n - F, F - (i - 1) / n).max().item()


KS_LIMIT, N_CHAINS, ETA, LANGEVIN_STEPS = 2.7, 5000, 0.005, 2000
checkpoints = [200, 500, 1000, 2000]                             # steps: times 1, 2.5, 5, 10
g_lang = generator(10)
_, path_stat = sm.langevin_dynamics(target.score, target.sample(N_CHAINS, generator=g_lang), ETA,
                                    LANGEVIN_STEPS, generator=g_lang, trajectory=True)
ks_stationary = [ks_stat(path_stat[k], target_cdf) for k in [0] + checkpoints]
print("started at pi: sqrt(n) D_n at times", [k * ETA for k in [0] + checkpoints], "=",
      np.round(ks_stationary, 2))
assert max(ks_stationary) < KS_LIMIT

# %% [markdown]
# The grid solution: cells of width $h = 0.04$ on $[-7, 7]$, flux
# $J_{i+1/2} = s(x_{i+1/2})\,\tfrac12(p_i + p_{i+1}) - (p_{i+1}-p_i)/h$ through every inner face (none
# through the ends), $\dot p_i = -(J_{i+1/2} - J_{i-1/2})/h$, explicit time steps of
# $h^2/6$ (stable).

# %%
h = 0.04
edges = torch.arange(-7.0, 7.0 + h / 2, h, dtype=f64)
centers = (edges[1:] + edges[:-1]) / 2
s_faces = target.score(edges[1:-1, None])[:, 0]
pi_grid = target.log_prob(centers[:, None]).exp()
p = torch.exp(-0.5 * ((centers + 4.0) / 0.1) ** 2)
p = p / (p.sum() * h)
dt_fp = h ** 2 / 6
fp_times = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
kl_fp, cdf_fp = [], {}


def kl_grid(p):
    mask = p > 0
    return (p[mask] * (p[mask] / pi_grid[mask]).log()).sum().item() * h


kl_fp.append(kl_grid(p))
t_now = 0.0
for t_check in fp_times:
    while t_now < t_check - 1e-12:
        flux = s_faces * 0.5 * (p[1:] + p[:-1]) - (p[1:] - p[:-1]) / h
        p = p - dt_fp / h * (torch.cat([flux, flux.new_zeros(1)]) - torch.cat([flux.new_zeros(1), flux]))
        t_now += dt_fp
    kl_fp.append(kl_grid(p))
    cdf_fp[t_check] = torch.cat([torch.zeros(1, dtype=f64), (p * h).cumsum(0)])
print("KL(p_t || pi) on the grid at t = 0,", fp_times, ":", np.round(kl_fp, 4))
print(f"mass conserved: {(p.sum() * h).item():.12f}")
assert all(a > b for a, b in zip(kl_fp, kl_fp[1:])) and abs((p.sum() * h).item() - 1) < 1e-9

x_far = -4.0 + 0.1 * torch.randn(N_CHAINS, 1, generator=g_lang, dtype=f64)
far_steps = [round(t / ETA) for t in fp_times]
_, path_far = sm.langevin_dynamics(target.score, x_far, ETA, far_steps[-1], generator=g_lang, trajectory=True)
ks_far_grid, ks_far_pi = [], []
for t_check, k in zip(fp_times, far_steps):
    def grid_cdf(xs, c=cdf_fp[t_check]):
        return torch.from_numpy(np.interp(xs.numpy(), edges.numpy(), c.numpy()))
    ks_far_grid.append(ks_stat(path_far[k], grid_cdf))
    ks_far_pi.append(ks_stat(path_far[k], target_cdf))
print("started far: sqrt(n) D_n against the grid's p_t:", np.round(ks_far_grid, 2))
print("             sqrt(n) D_n against pi:           ", np.round(ks_far_pi, 2))
assert max(ks_far_grid) < KS_LIMIT and ks_far_pi[0] > 10 * KS_LIMIT
fig, ax = plt.subplots(figsize=(4.5, 3.3), layout="constrained")
ax.semilogy([0] + fp_times, kl_fp, "o-")
ax.set(xlabel="t", ylabel="KL(p_t || pi)", title="Fokker-Planck: KL decreases");

# %% [markdown]
# ## 6. Flow matching
#
# Flow matching ([Lipman et al. 2023](../docs/bibliography.md#lipman2023), "Flow Matching for Generative Modeling";
# [Liu et al. 2023](../docs/bibliography.md#liu2023), "Flow Straight and Fast", rectified flow) skips the SDE: pick a
# path between noise $x_0\sim\mathcal N(0, I)$ and data $x_1$ (**note: here $t = 0$ is noise and $t = 1$ data**, the
# flow-matching convention), the straight line $x_t = (1-t)\,x_0 + t\,x_1$, and learn the velocity field whose ODE
# $\dot x = v(x, t)$ carries $p_0 = \mathcal N(0, I)$ to the data. The **marginal velocity** $u_t(x) = E[x_1 - x_0 \mid
# x_t = x]$ does it (its continuity equation is that of the path's marginals), and regressing on the per-pair velocity
# $x_1 - x_0$,
#
# $$\mathcal L(v) = E_{t, x_0, x_1}\,\big\|v(x_t, t) - (x_1 - x_0)\big\|^2 ,$$
#
# has the same gradient as regressing on $u_t$ (the conditional expectation is the least-squares
# answer): `S.flow_matching_loss`. For a mixture target, $u_t$ is in closed form
# (`S.optimal_velocity`): given the component, $(x_1 - x_0, x_t)$ is jointly Gaussian.
#
# **Relation to the other parameterizations.** With $p_t$ the law of $x_t$, Tweedie's formula for
# the Gaussian part $(1-t)x_0$ gives $E[x_0\mid x_t] = -(1-t)\nabla\log p_t(x_t)$
# ($\varepsilon$-prediction is a scaled score, as in notebook 06), and $x_t = (1-t)E[x_0\mid x_t] +
# t\,E[x_1\mid x_t]$ gives the data prediction. Hence
#
# $$u_t(x) = E[x_1\mid x_t = x] - E[x_0\mid x_t = x] = \frac{E[x_1\mid x_t = x] - x}{1 - t}
#   = \frac{x + (1-t)\,\nabla\log p_t(x)}{t}.$$
#
# The middle form is InDI's ODE ([Delbracio & Milanfar 2023](../docs/bibliography.md#delbracio2023), "Inversion by
# Direct Iteration"): on the same straight path, with their time $1 - t$ running from degraded to clean, it integrates
# $(\hat x_{\text{clean}}(x) - x)/(1 - t)$ with a network that predicts the clean image; flow matching predicts the
# velocity instead. Same path, same ODE, different regression targets.
#
# **Check 1 (exact).** The closed-form $u_t$ equals $(x + (1-t)\nabla\log p_t(x))/t$ computed from
# the exact score of the path's marginal (`S.flow_marginal`), to float64 precision.

# %%
x_check = 3 * torch.randn(2000, 2, generator=generator(11), dtype=f64)
u_exact = S.optimal_velocity(mix)
worst_tweedie = 0.0
for t in (0.1, 0.3, 0.5, 0.7, 0.9):
    via_score = (x_check + (1 - t) * S.flow_marginal(mix, t).score(x_check)) / t
    worst_tweedie = max(worst_tweedie, (u_exact(x_check, t) - via_score).abs().max().item())
print(f"max |u_t - (x + (1-t) score)/t| over t = 0.1 ... 0.9: {worst_tweedie:.1e}")
assert worst_tweedie < 1e-10

# %% [markdown]
# ### Exercise 2 (short, ★☆☆, 2 points): the conditional flow-matching loss
#
# Implement `cfm_loss(velocity_fn, x1, x0, t)`: data `x1` and noise `x0` of shape `(N, D)`, times `t`
# of shape `(N,)`; form $x_t = (1-t)\,x_0 + t\,x_1$ and return the scalar
# $\frac1N\sum_n\|v(x_t^n, t_n) - (x_1^n - x_0^n)\|^2$ (sum over dimensions, mean over the batch). The
# check compares with `course_lib.sde.flow_matching_loss` given the same draws, for random affine
# velocity fields, with $t = 0$ and $t = 1$ among the times.

# %% nbgrader={"grade": false, "grade_id": "flow_matching_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cfm_loss(velocity_fn, x1, x0, t):
    """Conditional flow matching on the straight path; x1, x0 (N, D), t (N,). Returns a scalar."""
    ### BEGIN SOLUTION
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    return ((velocity_fn(xt, t) - (x1 - x0)) ** 2).sum(1).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "flow_matching_loss_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("flow_matching_loss", cfm_loss)

# %% [markdown]
# **Check 2: training.** A `TimeConditionedMLP` (2 blocks of 64 units, continuous time embedded at
# scale 1000) is trained with `S.flow_matching_loss` on 20 000 samples of the toy: Adam, 1500 steps of
# batch 256, learning rate $3\cdot10^{-3}$ decayed to 0 along a cosine (the decay removes most of the
# minibatch noise from the final weights). Training is random, so
# `NUM_MODELS` networks are trained from independent seeds (`SEED * 1000 + k`). For each, the
# relative squared error $E\|v_\theta - u_t\|^2 / E\|u_t\|^2$ over $x_t \sim p_t$ at several $t$
# (the table: mean ± s.e. over the models, and the largest). Asserted for every model and every
# $t$: below 0.06.

# %%
NUM_MODELS, FM_STEPS = 3, 1500
mix32 = mix.to(torch.float32)
fm_data = mix32.sample(20000, generator=generator(12))
fm_times = [0.05, 0.25, 0.5, 0.75, 0.95]


def fm_loss(model, xb, generator=None):
    return S.flow_matching_loss(model, xb, generator=generator)


velocity_nets, fm_errors = [], []
for k in range(NUM_MODELS):
    torch.manual_seed(SEED * 1000 + 100 + k)                       # this model's initialization
    net = nets.TimeConditionedMLP(2, hidden=64, num_layers=2, time_scale=1000.0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, FM_STEPS) / FM_STEPS)))             # cosine decay
    fit(net, fm_loss, fm_data, num_steps=FM_STEPS, batch_size=256, optimizer=opt, device=device,
        generator=generator(20 + k), log_every=1, callback=lambda step, loss, model: decay.step(),
        desc=f"flow matching, model {k + 1}")
    net = net.to("cpu").eval()
    velocity_nets.append(net)
    row = []
    with torch.no_grad():
        for t in fm_times:
            xt = S.flow_marginal(mix32, t).sample(4000, generator=generator(30 + k))
            u_t = S.optimal_velocity(mix32)(xt, t)
            v_t = net(xt, torch.full((len(xt),), t))
            row.append((((v_t - u_t) ** 2).sum(1).mean() / (u_t ** 2).sum(1).mean()).item())
    fm_errors.append(row)
fm_errors = torch.tensor(fm_errors, dtype=f64)                        # (models, times)
print(f"{'t':>5s}  relative squared velocity error, mean ± s.e. over {NUM_MODELS} models  (largest)")
for j, t in enumerate(fm_times):
    col = fm_errors[:, j]
    print(f"{t:5.2f}  {col.mean():.4f} ± {col.std() / math.sqrt(NUM_MODELS):.4f}  ({col.max():.4f})")
assert (fm_errors < 0.06).all()

# %% [markdown]
# **Check 3: sampling and mode coverage.** Integrate $\dot x = v(x, t)$ from 4000 draws of
# $\mathcal N(0, I)$ at $t = 0$ to $t = 1$: with the exact $u_t$ (adaptive solver) the fractions
# per mode are the weights within 5 binomial s.e.; each trained network (100 Euler steps, the
# straight paths make few steps accurate) finds every mode with at least half its weight, and the
# table reports how far from the weights it lands, in s.e.

# %%
N_FM = 4000
x0_fm = torch.randn(N_FM, 2, generator=generator(40), dtype=f64)
samples_fm = {"exact velocity": S.flow_matching_sample(u_exact, x0_fm)}
with torch.no_grad():
    for k, net in enumerate(velocity_nets):
        samples_fm[f"trained model {k + 1}"] = S.flow_matching_sample(net, x0_fm.float(), num_steps=100)
se_fm = (mix.weights * (1 - mix.weights) / N_FM).sqrt()
print(f"{'':18s} fraction per mode         largest |fraction - weight| in binomial s.e.")
fractions_fm = {}
for name, xs in samples_fm.items():
    fractions_fm[name] = metrics.mode_fractions(xs, mix)
    dev = ((fractions_fm[name] - mix.weights).abs() / se_fm).max()
    print(f"{name:18s} {fractions_fm[name].numpy().round(3)}   {dev:.1f}")
assert ((fractions_fm["exact velocity"] - mix.weights).abs() <= Z * se_fm).all()
assert all((f > mix.weights / 2).all() for f in fractions_fm.values())
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
for ax, name in zip(axes, ["exact velocity", "trained model 1"]):
    plotting.density_contours(mix.log_prob, (-4, 4), (-4, 4), ax=ax, log=True, cmap="Greys")
    plotting.scatter_samples(samples_fm[name][:3000], ax=ax, s=2, title=f"flow matching, {name}");

# %% [markdown]
# ## 7. Classifier-free guidance
#
# A conditional model learns the score of $p_t(x\mid y)$. Bayes' rule for scores,
# $\nabla\log p_t(x\mid y) = \nabla\log p_t(x) + \nabla\log p_t(y\mid x)$, suggests sharpening the
# condition by following a stronger classifier term,
#
# $$\tilde s_w(x, t, y) = \nabla\log p_t(x\mid y) + w\,\nabla\log p_t(y\mid x)
#   = (1+w)\,\nabla\log p_t(x\mid y) - w\,\nabla\log p_t(x),$$
#
# the score of $p_t(x\mid y)\,p_t(y\mid x)^w$ (up to normalization). Classifier-free guidance ([Ho & Salimans
# 2021](../docs/bibliography.md#ho2021), "Classifier-Free Diffusion Guidance") needs no classifier: one network learns
# both scores, by replacing the label with a "null" label part of the time (here 20 %). In $\varepsilon$-terms:
# $\tilde\varepsilon = (1+w)\,\hat\varepsilon(x, t, y) - w\,\hat\varepsilon(x, t, \varnothing)$. Larger $w$ trades
# diversity for agreement with the label (the tilted density is no longer the data's $p(x\mid y)$; at $t > 0$ it is not
# even the noised version of one density, so it is a heuristic).
#
# **Check.** `NUM_MODELS` class-conditional noise predictors on the 8×8 digits
# (`TimeConditionedMLP` on the 64 pixels with a label embedding; cosine schedule, $T = 100$; 1000
# Adam steps of batch 128), each from its own seed. From each, 50 samples per digit by DDIM (the
# probability-flow ODE solver of section 4, 50 steps, $\hat x_0$ clipped to $[-1, 1]$) for several
# $w$, all from the same starting noise. A logistic-regression classifier fitted to 1400 real digits
# (its held-out accuracy is printed) measures the **agreement** with the requested label; the
# **diversity** is the mean pairwise distance between the samples of one label, averaged over labels.
# Asserted for every model: agreement at the largest $w$ exceeds that at $w = 0$ by more than
# 5 s.e. (binomial), and diversity falls at every step of $w$ by more than 5 s.e. (over the 10 labels).

# %%
images, labels = data.load_digits()
X_digits = images.flatten(1)
perm = torch.randperm(len(labels), generator=generator(50))
clf = LogisticRegression(max_iter=3000).fit(X_digits[perm[:1400]].numpy(), labels[perm[:1400]].numpy())
acc_heldout = (clf.predict(X_digits[perm[1400:]].numpy()) == labels[perm[1400:]].numpy()).mean()
print(f"classifier accuracy on {len(perm) - 1400} held-out real digits: {100 * acc_heldout:.1f}%")

cfg_schedule = diffusion.NoiseSchedule.cosine(100)
NULL, CFG_STEPS, PER_LABEL = 10, 1000, 50
guidance_weights = [0.0, 0.5, 2.0]


def cfg_loss(model, batch, generator=None):
    x0, y = batch
    drop = torch.rand(y.shape, generator=generator).to(y.device) < 0.2           # the null label
    y = torch.where(drop, torch.full_like(y, NULL), y)
    return diffusion.loss_simple(cfg_schedule, lambda xt, t: model(xt, t, y), x0, generator=generator)


y_req = torch.arange(10).repeat_interleave(PER_LABEL)
x_start = torch.randn(len(y_req), 64, generator=generator(51))
agreement, diversity, cfg_samples = [], [], {}
for k in range(NUM_MODELS):
    torch.manual_seed(SEED * 1000 + 200 + k)                       # this model's initialization
    cnet = nets.TimeConditionedMLP(64, hidden=128, num_layers=2, num_classes=11)
    opt = torch.optim.Adam(cnet.parameters(), lr=2e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, CFG_STEPS) / CFG_STEPS)))           # cosine decay
    fit(cnet, cfg_loss, (X_digits, labels), num_steps=CFG_STEPS, batch_size=128, optimizer=opt, device=device,
        generator=generator(60 + k), log_every=1, callback=lambda step, loss, model: decay.step(),
        desc=f"conditional digits, model {k + 1}")
    cnet = cnet.to("cpu").eval()
    agree_k, div_k = [], []
    for w in guidance_weights:
        def guided_eps(x, t, w=w):
            return (1 + w) * cnet(x, t, y_req) - w * cnet(x, t, torch.full_like(y_req, NULL))

        with torch.no_grad():
            xs = diffusion.ddim_sample(cfg_schedule, guided_eps, (len(y_req), 64), 50, clip_x0=1.0, noise=x_start)
        agree_k.append(torch.as_tensor(clf.predict(xs.numpy()) == y_req.numpy(), dtype=f64))
        div_k.append(torch.tensor([torch.pdist(xs[y_req == c].double()).mean().item() for c in range(10)]))
        if k == 0:
            cfg_samples[w] = xs
    agreement.append(torch.stack(agree_k))                          # (weights, samples)
    diversity.append(torch.stack(div_k))                            # (weights, labels)
print(f"{'w':>5s}  agreement with the label, per model        diversity (mean pairwise distance), per model")
for j, w in enumerate(guidance_weights):
    print(f"{w:5.1f}  {[round(a[j].mean().item(), 3) for a in agreement]}   "
          f"{[round(d[j].mean().item(), 3) for d in diversity]}")
for a, d in zip(agreement, diversity):
    gain = a[-1].mean() - a[0].mean()
    assert gain > Z * math.sqrt((a[-1].var() + a[0].var()).item() / a.shape[1])
    drops = d[:-1] - d[1:]                                          # (steps of w, labels)
    assert (drops.mean(1) > Z * drops.std(1) / math.sqrt(10)).all()
fig, axes = plt.subplots(1, len(guidance_weights), figsize=(12, 4.4), layout="constrained")
for ax, w in zip(axes, guidance_weights):
    grid = cfg_samples[w].view(10, PER_LABEL, 1, 8, 8)[:, :8].reshape(80, 1, 8, 8)
    plotting.image_grid(grid, nrow=8, ax=ax, title=f"guidance w = {w:g} (one row per label)")

# %% [markdown]
# ## Summary
#
# - DDPM's chain is the Euler–Maruyama discretization of the VP SDE; its kernels converge to the
#   SDE's at first order in $1/T$. The VE SDE is NCSN's noise levels in continuous time.
# - The reverse-time SDE with the exact score samples the data (weights and MMD checked against
#   fresh data); the probability-flow ODE has the same marginals, deterministically, and gives exact
#   log-likelihoods (checked to the solver's tolerance).
# - With a trained network the ODE and the DDPM chain (the discretized reverse SDE) are two different models:
#   both NLLs are cross-entropies above the data's entropy; the $-\mathrm{ELBO}$ bounds only the chain's NLL, and
#   the ODE's NLL also depends on the network's Jacobian, so the two differ (paired difference printed; no order
#   between them is a theorem).
# - DDIM ($\eta = 0$) is Euler's method on the probability-flow ODE: first order.
# - Langevin dynamics leaves its target invariant, and the KL to it decreases (Fokker–Planck).
# - Flow matching learns the velocity of a straight path between noise and data; its exact field is
#   $(x + (1-t)\nabla\log p_t)/t$, linking velocity, InDI's clean-image prediction and the score.
#
# - Classifier-free guidance follows $(1+w)$ times the conditional score minus $w$ times the
#   unconditional one: agreement with the label rises with $w$, diversity falls (measured on digits).

