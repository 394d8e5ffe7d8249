# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · DDPM I: diffusion kernels, posteriors and the ELBO
#
# **What you will learn**
#
# - the forward transition $q(x_t \mid x_{t-1})$ and why its "magical scalars" $\sqrt{\alpha_t}$ and
#   $1-\alpha_t$ keep the variance at 1 ([Chan 2024](../docs/bibliography.md#chan2024));
# - the closed-form **diffusion kernel** $q(x_t \mid x_0)$, checked against simulating the chain;
#   linear and cosine schedules, their $\bar\alpha_t$ and SNR, and how close $q(x_T)$ is to $\mathcal N(0, I)$;
# - the **forward posterior** $q(x_{t-1} \mid x_t, x_0)$, derived and checked against Bayes' rule, and the
#   **true reverse step** $q(x_{t-1} \mid x_t)$: multimodal for large steps, nearly Gaussian for small ones;
# - the **ELBO** split into prior matching, consistency and reconstruction terms (and the first form of
#   the bound, with its consistency terms over two variables, against the rewritten one); KL of Gaussians as a
#   squared error of means; the $x_0$-, $\varepsilon$- and mean-parameterizations; $L_\text{simple}$'s
#   weights against the true ones;
# - the **Bayes-optimal denoiser** of a Gaussian mixture, the exact answer that notebook 05's trained
#   networks are measured against.
#
# Notebook 05 trains and samples: Algorithms 1 and 2, the U-Net on digits, InDI and DDIM.
# Sources: the [bibliography](../docs/bibliography.md).
#
# Every derivation is followed by a cell that computes the claim and **asserts** it.

# %%
import math

import matplotlib.pyplot as plt
import torch

from course_lib import (
    course_seed,
    data,
    divergences,
    gaussians,
    get_device,
    grading,
    seed_everything,
    set_num_threads,
    toy,
    widgets,
)
from course_lib import diffusion as D

SEED = course_seed()      # COURSE_SEED from the environment (default 0): rerun under any seed
gen = seed_everything(SEED)
set_num_threads(1)       # tiny networks: one CPU thread is fastest (COURSE_THREADS overrides)
device = get_device()
F64 = dict(dtype=torch.float64)
print("device:", device)

# %% [markdown]
# ## 0. Notation, and how other texts write it
#
# We follow [Ho et al. (2020)](../docs/bibliography.md#ho2020):
# $q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I)$,
# $\alpha_t = 1-\beta_t$, $\bar\alpha_t = \prod_{s=1}^t \alpha_s$, $t = 1, \dots, T$.
#
# | source | forward step | its symbols in ours |
# |---|---|---|
# | Ho et al. (2020); [Nichol & Dhariwal (2021)](../docs/bibliography.md#nichol2021) | $\mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)$ | — |
# | [Chan (2024)](../docs/bibliography.md#chan2024) | $\mathcal N(\sqrt{\alpha_t}\,x_{t-1}, (1-\alpha_t) I)$; $a = \sqrt\alpha$, $b = \sqrt{1-\alpha}$ | same $\alpha_t$; $1-\alpha_t = \beta_t$ |
# | some texts | write $\beta_t, \alpha_t$ for standard deviations | their $\beta_t^2$ is our $\beta_t$ |
# | some texts | $\mathcal N(\sqrt{\beta_{t-1}}\,x_{t-1}, (1-\beta_{t-1}) I)$, subscripts from 0, "$\beta$ from $10^{-4}$ to $0.02$" | their $\beta_{t-1}$ is our $\alpha_t$ (the fraction of variance kept); the range quoted is Ho et al.'s $\beta_t = 1 - \alpha_t$, i.e. one minus theirs (section 3) |
# | code (`course_lib.diffusion`, improved-diffusion, diffusers) | arrays indexed by $i = t-1 \in \{0, \dots, T-1\}$ | index $i$ = paper step $t = i+1$ |
#
# Two common typos are caught by the Bayes check of section 5: writing the posterior variance with
# $1-\sqrt{\bar\alpha_{t-1}}$ (it is $1-\bar\alpha_{t-1}$), and writing the posterior as
# $\mathcal N(\tilde\mu_t, \beta_t I)$ with its $x_t$ coefficient $\sqrt{1-\bar\beta_t}$ (they are
# $\tilde\beta_t$ and $\sqrt{\alpha_t}$; $\beta_t$ is Ho et al.'s other choice for the *model's* variance
# $\sigma_t^2$, not the forward posterior's).
#
# **In code, $t$ is always the 0-based index** (and every printed "index" is one); in formulas and
# axis labels that say "paper $t$", $t$ is the paper's step. `alphas_cumprod[i]` is the paper's $\bar\alpha_{i+1}$.

# %% [markdown]
# ## 1. Forward transitions and the magical scalars
#
# Chan (2024) writes one step as $x_t = a\,x_{t-1} + b\,\varepsilon_{t-1}$ with independent
# $\varepsilon \sim \mathcal N(0, I)$. Unrolling,
#
# $$x_t = a^t x_0 + \underbrace{b\,[\varepsilon_{t-1} + a\,\varepsilon_{t-2} + \dots + a^{t-1}\varepsilon_0]}_{w_t},
#   \qquad \mathrm{Var}[w_t] = b^2\,\frac{1-a^{2t}}{1-a^2} \xrightarrow{t\to\infty} \frac{b^2}{1-a^2}.$$
#
# With $v_0 = \mathrm{Var}[x_0]$ the variance is $v_t = a^{2t}v_0 + b^2\frac{1-a^{2t}}{1-a^2}$ (and
# $v_t = v_0 + t\,b^2$ when $a = 1$). For $a < 1$ it converges to the fixed point $b^2/(1-a^2)$ of
# $v_t = a^2 v_{t-1} + b^2$, whatever $v_0$: the data are forgotten. That limit is 1 **iff**
# $b = \sqrt{1-a^2}$, i.e. $a = \sqrt{\alpha}$, $b = \sqrt{1-\alpha}$, and then $v_t = 1$ at
# **every** step when $v_0 = 1$. Otherwise the variance settles at $b^2/(1-a^2)$, below 1 when $b$ is
# too small and above 1 when $b$ is too large; with $a = 1$ (a random walk) it grows linearly,
# $v_0 + t\,b^2$, without bound (and geometrically for $a > 1$). So "the variance vanishes or explodes"
# is not what happens for $a < 1$: it neither vanishes nor explodes, it converges to the wrong value.
#
# Check: the library's recursion `D.variance_recursion` ($v_t = a^2 v_{t-1} + b^2$, step by step)
# equals the unrolled formula (to 1e-10 relative); at $t = 1000$ it has reached $b^2/(1-a^2)$ to 1e-7
# relative when $a < 1$ ($a^{2000} \approx 2\cdot 10^{-9}$), and when $a = 1$ its increments are all
# $b^2$ (to float precision): linear growth. Then 4000 simulated chains from data $\pm 1$
# ($v_0 = 1$), at steps 10, 100 and 1000, against the formula, within 5 standard errors of a sample
# variance (estimated from the sample's fourth moment).

# %%
def variance_formula(a, b, v0, t):
    """Var[x_t] of x_t = a x_{t-1} + b eps from Var[x_0] = v0 (the unrolled sum above)."""
    return v0 + t * b * b if a == 1 else a ** (2 * t) * v0 + b * b * (1 - a ** (2 * t)) / (1 - a * a)


def sample_variance_se(x):
    """Sample variance and its standard error sqrt((m4 - v^2) / n), from the sample itself."""
    c = x - x.mean()
    v = (c**2).mean()
    return v.item(), math.sqrt(((c**4).mean() - v**2).item() / x.numel())


n_sim = 4000
settings = {"magical": (0.99, math.sqrt(1 - 0.99**2)), "b too small": (0.99, 0.05),
            "b too large": (0.99, 0.3), "a = 1": (1.0, 0.1)}
for name, (a, b) in settings.items():
    v_lib = torch.from_numpy(D.variance_recursion(a, b, 1.0, 1000))
    v_formula = torch.tensor([variance_formula(a, b, 1.0, t) for t in range(1001)], **F64)
    torch.testing.assert_close(v_lib, v_formula, rtol=1e-10, atol=0)
    if a < 1:                                   # converges to the fixed point b^2 / (1 - a^2)
        assert abs(v_lib[-1] - b * b / (1 - a * a)) < 1e-7 * b * b / (1 - a * a), name
    else:                                       # a = 1: constant increments b^2, linear growth
        torch.testing.assert_close(v_lib.diff(), torch.full((1000,), b * b, **F64), rtol=1e-12, atol=1e-12)
print("variance_recursion: limits b^2/(1-a^2) reached for a < 1; increments b^2 for a = 1")
print(f"{'setting':12s} {'a':>5s} {'b':>7s}  t: simulated Var[x_t] (formula)           limit")
for name, (a, b) in settings.items():
    x = torch.where(torch.rand(n_sim, generator=gen, **F64) < 0.5, -1.0, 1.0)   # data with variance 1
    row = []
    for t in range(1, 1001):
        x = a * x + b * torch.randn(n_sim, generator=gen, **F64)
        if t in (10, 100, 1000):
            v, se = sample_variance_se(x)
            row.append(f"{t}: {v:.3f} ({variance_formula(a, b, 1.0, t):.3f})")
            assert abs(v - variance_formula(a, b, 1.0, t)) < 5 * se, (name, t)
            if name == "magical":
                assert abs(v - 1) < 5 * se                     # stays at 1 at every step checked
            if t == 1000 and a < 1:
                assert abs(v - b * b / (1 - a * a)) < 5 * se   # converged to the fixed point (a^2000 ~ 2e-9)
    limit = f"{b * b / (1 - a * a):.4f}" if a < 1 else "none: 1 + t b^2"
    print(f"{name:12s} {a:5.2f} {b:7.4f}  " + ", ".join(row) + f"  {limit}")

# %% [markdown]
# The explorer simulates the chain from two well-separated modes. With the box ticked the variance
# stays at 1 and the histogram of $x_T$ becomes $\mathcal N(0, 1)$.

# %%
widgets.plot_magical_scalars();

# %%
widgets.magical_scalars_explorer()

# %% [markdown]
# ## 2. The diffusion kernel $q(x_t \mid x_0)$
#
# By induction: if $x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,x_0 + \sqrt{1-\bar\alpha_{t-1}}\,\bar\varepsilon$,
# then $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\varepsilon$ is $\sqrt{\bar\alpha_t}\,x_0$
# plus a sum of two independent Gaussians of variances $\alpha_t(1-\bar\alpha_{t-1})$ and $1-\alpha_t$,
# which add to $1-\bar\alpha_t$:
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big),\qquad
#   x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon .$$
#
# Check: simulate the Markov chain step by step from a fixed $x_0$ (20 000 chains, DDPM's linear
# schedule) and compare mean and variance with `q_mean_variance` at several steps, and with 20 000
# one-shot draws of `q_sample` (the closed form that training uses), within 5 standard errors.

# %%
sched_lin = D.NoiseSchedule.linear(1000)
x0_fixed = torch.tensor([1.5, -0.5], **F64)
n_chains = 20_000
x = x0_fixed.expand(n_chains, 2).clone()
checked = []
for i in range(1000):                    # 0-based step i produces the paper's x_{i+1}
    x = sched_lin.alphas[i].sqrt() * x + sched_lin.betas[i].sqrt() * torch.randn(n_chains, 2, generator=gen, **F64)
    if i in (0, 9, 99, 499, 999):
        mean, var = D.q_mean_variance(sched_lin, x0_fixed.expand(1, 2), torch.tensor([i]))
        se_mean = (var[0] / n_chains).sqrt()
        assert ((x.mean(0) - mean[0]).abs() < 5 * se_mean).all()
        assert ((x.var(0) - var[0]).abs() < 5 * var[0] * math.sqrt(2 / n_chains)).all()
        xq = D.q_sample(sched_lin, x0_fixed.expand(n_chains, 2), torch.full((n_chains,), i), generator=gen)
        assert ((xq.mean(0) - x.mean(0)).abs() < 5 * math.sqrt(2) * se_mean).all()     # two samples
        assert ((xq.var(0) - x.var(0)).abs() < 5 * var[0] * math.sqrt(4 / n_chains)).all()
        checked.append((i, mean[0, 0].item(), x.mean(0)[0].item(), xq.mean(0)[0].item(),
                        var[0, 0].item(), x.var(0)[0].item(), xq.var(0)[0].item()))
for i, m, me, mq, v, ve, vq in checked:
    print(f"index {i:3d} (paper t = {i + 1:4d}): mean {m:+.4f} (chain {me:+.4f}, q_sample {mq:+.4f}), "
          f"variance {v:.5f} (chain {ve:.5f}, q_sample {vq:.5f})")

# %% [markdown]
# ### Exercise 1: sample the diffusion kernel
#
# **Exercise 1 (implementation, ★☆☆, 2 points)**
#
# Implement `q_sample(x0, t, eps, betas)`: `x0`, `eps` of shape `(N, D)`, `t` a long tensor `(N,)`
# of **0-based** steps, `betas` the schedule `(T,)`. Return
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$, `(N, D)`.
# The check uses linear and cosine schedules and includes $t = 0$ and $t = T-1$.

# %% nbgrader={"grade": false, "grade_id": "q_sample", "locked": false, "schema_version": 3, "solution": true, "task": false}
def q_sample(x0, t, eps, betas):
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; x0, eps (N, D), t (N,) 0-based, betas (T,)."""
    ### BEGIN SOLUTION
    abar = torch.cumprod(1 - betas, dim=0)[t][:, None]
    return abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q_sample_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("q_sample", q_sample)

# %% [markdown]
# ## 3. Schedules: $\bar\alpha_t$, SNR and the prior term
#
# Linear (Ho et al.): $\beta$ from $10^{-4}$ to $0.02$ over $T = 1000$. Cosine (Nichol & Dhariwal):
# $\bar\alpha(u) \propto \cos^2\big(\frac{u+s}{1+s}\frac\pi2\big)$. The signal-to-noise ratio is
# $\mathrm{SNR}_t = \bar\alpha_t/(1-\bar\alpha_t)$. For the 2-D toy below we use **$T = 100$ steps of the
# cosine schedule** (fewer steps, cheap on a CPU); a linear schedule with $T = 100$ must be rescaled
# by $1000/T$, otherwise $\bar\alpha_T$ stays far from 0.
#
# The prior term of the ELBO, $L_T = \mathrm{KL}(q(x_T \mid x_0)\,\|\,\mathcal N(0, I))$, is in closed
# form: per dimension $\tfrac12\big(\bar\alpha_T x_0^2 + (1-\bar\alpha_T) - 1 - \log(1-\bar\alpha_T)\big)$.
#
# The printed $\bar\alpha_T$ are checked below: the linear one against REFERENCES.md's float64 value,
# the cosine ones against the closed form recomputed with Python's `math` in float64,
# $\bar\alpha_{T-1} = \frac{f((T-1)/T)}{f(0)}(1 - 0.999)$ with $f(u) = \cos^2\big(\frac{u+s}{1+s}\frac\pi2\big)$
# (0-based index $T-1$): every $\beta$ follows from $f$ except the last, which is clipped at 0.999
# because $f(1) = 0$.
#
# The convention of section 0 that writes
# $q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{\beta_{t-1}}\,x_{t-1}, (1-\beta_{t-1})I)$ with subscripts from 0 has, for
# DDPM's schedule, $\beta_0, \dots, \beta_{T-1}$ = our `alphas`, from $1 - 10^{-4}$ down to $0.98$; read
# literally, "$\beta$ from $10^{-4}$ to $0.02$" in that convention would keep only $10^{-4}$ of the variance
# in the first step. The cell checks the translation.

# %%
schedules = {"linear T=1000": sched_lin, "cosine T=1000": D.NoiseSchedule.cosine(1000),
             "cosine T=100 (toy)": D.NoiseSchedule.cosine(100),
             "linear T=100, rescaled": D.NoiseSchedule.linear(100, rescale=True),
             "linear T=100, not rescaled": D.NoiseSchedule.linear(100)}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
for name, s in schedules.items():
    u = (torch.arange(s.num_steps) + 1) / s.num_steps
    axes[0].plot(u, s.alphas_cumprod, label=name)
    axes[1].plot(u, s.log_snr, label=name)
axes[0].set(xlabel="paper t / T (code index t - 1)", ylabel="abar_t", title="abar_t")
axes[1].set(xlabel="paper t / T (code index t - 1)", ylabel="log SNR_t", title="log SNR")
axes[0].legend(fontsize=7);


# %%
def prior_kl(schedule, x0):
    """L_T = KL(q(x_T | x0) || N(0, I)) in nats per example (0-based index T-1)."""
    ab = schedule.alphas_cumprod[-1].to(x0.dtype)
    return gaussians.gaussian_kl(ab.sqrt() * x0, torch.log(1 - ab).expand_as(x0), torch.zeros_like(x0),
                                 torch.zeros_like(x0)).sum(1)


x_unit = torch.tensor([[1.0]], **F64)
for name, s in schedules.items():
    ab = s.alphas_cumprod[-1].item()
    print(f"{name:28s} abar_T = {ab:.3e}, L_T at |x0| = 1: {prior_kl(s, x_unit).item() / math.log(2):.3e} bits")
# REFERENCES.md A9: abar_T = 4.0358e-5 and L_T = 2.911295e-05 bits/dim at |x0| = 1 for DDPM's schedule
assert abs(sched_lin.alphas_cumprod[-1].item() - 4.035829765375676e-05) < 1e-15
assert abs(prior_kl(sched_lin, x_unit).item() / math.log(2) - 2.911295e-05) < 1e-10
for s in schedules.values():                                       # the library's L_T is the same formula
    torch.testing.assert_close(D.prior_kl(s, x_unit), prior_kl(s, x_unit), rtol=1e-14, atol=0)
assert schedules["linear T=100, not rescaled"].alphas_cumprod[-1] > 0.3       # the C5 pitfall
beta_other = sched_lin.alphas         # the other convention's beta_0 .. beta_{T-1} (the fraction kept)
assert beta_other[0] == 1 - 1e-4 and abs(beta_other[-1] - 0.98) < 1e-15 and (beta_other.diff() < 0).all()
print(f"the other convention's beta_0 = {beta_other[0]:.4f}, beta_(T-1) = {beta_other[-1]:.4f} "
      f"(ours: beta_1 = {sched_lin.betas[0]:.0e}, beta_T = {sched_lin.betas[-1]:.2f})")


def cosine_abar_last(T, s=0.008, max_beta=0.999):
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2   # noqa: E731
    return f((T - 1) / T) / f(0) * (1 - max_beta)


for name, T_ in (("cosine T=1000", 1000), ("cosine T=100 (toy)", 100)):
    got = schedules[name].alphas_cumprod[-1].item()
    assert schedules[name].betas[-1].item() == 0.999 and (schedules[name].betas[:-1] < 0.999).all()
    assert abs(got - cosine_abar_last(T_)) < 1e-10 * cosine_abar_last(T_), name
# REFERENCES.md A9 (improved-diffusion, T = 1000): abar_T = 2.4287669070348567e-09
assert abs(schedules["cosine T=1000"].alphas_cumprod[-1].item() - 2.4287669070348567e-09) < 1e-8 * 2.43e-9

# %% [markdown]
# ## 4. Watching $q(x_t)$: a 2-D mixture and the digits
#
# The toy is the 25-mode grid of the GAN benchmarks (means on $\{-4,\dots,4\}^2$, std 0.05),
# **standardized** by its standard deviation $\sqrt{8 + 0.05^2}$ so that $x_0$ has unit variance like
# the noise (no clipping is used anywhere for the toy). Its noised marginal is exact: $q(x_t)$ is
# the mixture scaled by $\sqrt{\bar\alpha_t}$ and convolved with $\mathcal N(0, (1-\bar\alpha_t) I)$.
# Check: at a few steps, the mean of $\log q_t$ over `q_sample` draws agrees with its mean over
# direct draws from the exact marginal (two independent samples, 5 standard errors).

# %%
grid = toy.grid_mixture()
data_scale = math.sqrt(8 + 0.05**2)                           # std of each coordinate
grid_std = toy.grid_mixture(spacing=2 / data_scale, std=0.05 / data_scale)
sched = D.NoiseSchedule.cosine(100)
T = sched.num_steps
images, labels = data.load_digits()

for i in (5, 20, 60):
    ab = sched.alphas_cumprod[i].item()
    marginal = grid_std.scale(math.sqrt(ab)).convolve(math.sqrt(1 - ab))
    xt = D.q_sample(sched, grid_std.sample(20_000, generator=gen), torch.full((20_000,), i), generator=gen)
    a, b = marginal.log_prob(xt), marginal.log_prob(marginal.sample(20_000, generator=gen))
    se = math.sqrt(a.var() / 20_000 + b.var() / 20_000)
    print(f"index {i}: E log q_t over q_sample {a.mean():.4f}, over the exact marginal {b.mean():.4f} (se {se:.4f})")
    assert abs(a.mean() - b.mean()) < 5 * se

# %%
widgets.plot_noised_marginals(grid_std, sched, images);

# %%
widgets.noised_marginals_explorer(grid_std, sched, images)

# %% [markdown]
# ## 5. The forward posterior $q(x_{t-1} \mid x_t, x_0)$
#
# By Bayes' rule and the Markov property, $q(x_{t-1} \mid x_t, x_0) \propto q(x_t \mid x_{t-1})\,q(x_{t-1} \mid x_0)$,
# a product of two Gaussians in $x_{t-1}$: $\mathcal N(x_t; \sqrt{\alpha_t}x_{t-1}, \beta_t)$ and
# $\mathcal N(x_{t-1}; \sqrt{\bar\alpha_{t-1}}x_0, 1-\bar\alpha_{t-1})$. Adding precisions and
# precision-weighted means (completing the square):
#
# $$\frac{1}{\tilde\beta_t} = \frac{\alpha_t}{\beta_t} + \frac{1}{1-\bar\alpha_{t-1}}
#   = \frac{1-\bar\alpha_t}{\beta_t(1-\bar\alpha_{t-1})},
#   \qquad \tilde\mu_t = \tilde\beta_t\Big(\frac{\sqrt{\alpha_t}}{\beta_t}x_t
#   + \frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}x_0\Big)
#   = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}x_0
#   + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t .$$
#
# Check against Bayes' rule itself, pointwise in 1-D: $q(x_t \mid x_{t-1})\,q(x_{t-1} \mid x_0)/q(x_t \mid x_0)$
# on a grid of $x_{t-1}$ must equal $\mathcal N(x_{t-1}; \tilde\mu_t, \tilde\beta_t)$, and it must
# integrate to 1. The two common typos of section 0 fail the same check.

# %%
def normal_pdf(x, mean, var):
    return torch.exp(-0.5 * (x - mean) ** 2 / var) / torch.sqrt(2 * math.pi * var)


x0_s, xt_s = torch.tensor([0.7], **F64), torch.tensor([-0.4], **F64)
grid_1d = torch.linspace(-8, 8, 80_001, **F64)
for i in (1, 10, 50, 90):                               # 0-based; the paper's t = i + 1
    ab, ab_prev = sched.alphas_cumprod[i], sched.alphas_cumprod_prev[i]
    a_t, b_t = sched.alphas[i], sched.betas[i]
    bayes = (normal_pdf(xt_s, a_t.sqrt() * grid_1d, b_t) * normal_pdf(grid_1d, ab_prev.sqrt() * x0_s, 1 - ab_prev)
             / normal_pdf(xt_s, ab.sqrt() * x0_s, 1 - ab))
    mean, var, _ = D.q_posterior_mean_variance(sched, x0_s[:, None], xt_s[:, None], torch.tensor([i]))
    closed = normal_pdf(grid_1d, mean[0, 0], var[0, 0])
    assert abs(torch.trapezoid(bayes, grid_1d).item() - 1) < 1e-6
    assert (bayes - closed).abs().max() < 1e-8 * closed.max()
    typo_sqrt = (1 - a_t) * (1 - ab_prev.sqrt()) / (1 - ab)         # typo: 1 - sqrt(abar_{t-1})
    typo_beta = normal_pdf(grid_1d, mean[0, 0], b_t)                # typo: N(mu~, beta_t)
    assert (normal_pdf(grid_1d, mean[0, 0], typo_sqrt) - bayes).abs().max() > 1e-3 * closed.max()
    assert (typo_beta - bayes).abs().max() > 1e-3 * closed.max()
    print(f"index {i} (paper t = {i + 1}): Bayes = N(mu~={mean[0, 0]:+.5f}, beta~={var[0, 0]:.3e}) to 1e-8; "
          f"typos' variances {typo_sqrt:.3e} (1 - sqrt(abar)) and {b_t:.3e} (beta_t) do not match")

# %% [markdown]
# At the paper's $t = 1$ (code index 0), $\bar\alpha_{t-1} = \bar\alpha_0 := 1$ (the empty product), so
# $\tilde\beta_1 = 0$ and the posterior is a point mass at $x_0$: the library returns mean $x_0$,
# variance exactly 0, and a finite, clipped log-variance.

# %%
mean, var, logvar = D.q_posterior_mean_variance(sched, x0_s[:, None], xt_s[:, None], torch.tensor([0]))
assert var.item() == 0 and abs(mean.item() - x0_s.item()) < 1e-12 and torch.isfinite(logvar).all()

# %% [markdown]
# ### Exercise 2: the forward posterior
#
# **Exercise 2 (implementation, ★★☆, 3 points)**
#
# Implement `q_posterior(x0, xt, t, betas)` returning `(mean, variance)`, both `(N, D)`, of
# $q(x_{t-1} \mid x_t, x_0)$ for 0-based `t` `(N,)`. Use $\bar\alpha_{t-1} = 1$ at index 0 (then the
# variance is exactly 0 and the mean is $x_0$).

# %% nbgrader={"grade": false, "grade_id": "q_posterior", "locked": false, "schema_version": 3, "solution": true, "task": false}
def q_posterior(x0, xt, t, betas):
    """(mean, variance) of q(x_{t-1} | x_t, x0), each (N, D); t (N,) 0-based, betas (T,)."""
    ### BEGIN SOLUTION
    alphas = 1 - betas
    abar = torch.cumprod(alphas, dim=0)
    abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
    ab, ab_prev, b, a = abar[t][:, None], abar_prev[t][:, None], betas[t][:, None], alphas[t][:, None]
    mean = ab_prev.sqrt() * b / (1 - ab) * x0 + a.sqrt() * (1 - ab_prev) / (1 - ab) * xt
    variance = (b * (1 - ab_prev) / (1 - ab)).expand_as(x0)
    return mean, variance
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q_posterior_check", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
grading.check("q_posterior", q_posterior)

# %% [markdown]
# ### The true reverse step $q(x_{t-1} \mid x_t)$: why Gaussian reverse steps work
#
# Sampling has no $x_0$ to condition on. The reverse step it needs is
# $q(x_{t-1} \mid x_t) = \int q(x_{t-1} \mid x_t, x_0)\,q(x_0 \mid x_t)\,dx_0 \propto q(x_{t-1})\,q(x_t \mid x_{t-1})$,
# which depends on the data distribution through the marginal $q(x_{t-1})$, and is in general not Gaussian.
# For mixture data it is in closed form: $q(x_{t-1}) = \sum_k w_k \mathcal N(m_k, v_k)$ is the noised
# mixture (section 4), and each component times the likelihood $\mathcal N(x_t; \sqrt{\alpha_t}x_{t-1}, \beta_t)$,
# a Gaussian in $x_{t-1}$, is Gaussian (the product rule of section 5):
#
# $$q(x_{t-1} \mid x_t) = \sum_k w'_k\,\mathcal N(m'_k, v'_k),\quad
#   \frac{1}{v'_k} = \frac{1}{v_k} + \frac{\alpha_t}{\beta_t},\quad
#   m'_k = v'_k\Big(\frac{m_k}{v_k} + \frac{\sqrt{\alpha_t}\,x_t}{\beta_t}\Big),\quad
#   w'_k \propto w_k\,\mathcal N(x_t;\ \sqrt{\alpha_t}\,m_k,\ \alpha_t v_k + \beta_t)$$
#
# (`D.reverse_conditional`, tested against Bayes' rule by quadrature). As a function of $x_{t-1}$ the
# likelihood is a bump of width $\sqrt{\beta_t/\alpha_t}$ around $x_t/\sqrt{\alpha_t}$. **Large step:** the bump is
# wide, every mode of $q(x_{t-1})$ under it survives, and the reverse step is multimodal. **Small step:** the
# bump is narrow, $\log q(x_{t-1})$ is nearly linear across it (a first-order Taylor expansion), and a
# Gaussian times the exponential of a linear function is Gaussian, its mean shifted by
# $\frac{\beta_t}{\alpha_t}\nabla\log q$ (the score). This is why
# [Sohl-Dickstein et al. (2015)](../docs/bibliography.md#sohldickstein2015) and Ho et al. (2020) can model each
# reverse step as a Gaussian $p_\theta(x_{t-1} \mid x_t)$, provided the steps are many and small ($T = 1000$).
#
# Check on 1-D data with two modes at $\pm 0.98$ (std 0.2, variance 1): the cosine schedule with $T = 5$
# (coarse) and $T = 1000$ (fine), at the **same noise level** (paper $t = 2$ of 5 and $t = 400$ of 1000,
# both $u = t/T = 0.4$, the same $\bar\alpha_t$), given $x_t \in \{0, 0.5, 1\}$. We count the modes (local
# maxima of the density on a grid of 20 001 points) and measure the distance to a Gaussian,
# $\mathrm{KL}\big(q(x_{t-1} \mid x_t)\,\|\,\mathcal N(\text{its mean}, \text{its variance})\big)$, by the
# trapezoid rule (`divergences.kl_divergence_1d`; the density integrates to 1 within 1e-9 on that grid).
# First, the closed form against Bayes' rule itself: $q(x_{t-1})\,\mathcal N(x_t; \sqrt{\alpha_t}x_{t-1}, \beta_t)$
# evaluated on the grid and normalized by the trapezoid rule, asserted equal to the closed-form density
# within $10^{-9}$ of its peak. Then, asserted: coarse, 2 modes and a KL above 0.04 nats at every
# $x_t$; fine, 1 mode and a KL below $10^{-6}$ nats.

# %%
bimodal = toy.bimodal_1d(2 * math.sqrt(0.96), std=0.2, dtype=torch.float64)        # variance 1
coarse, fine = D.NoiseSchedule.cosine(5), D.NoiseSchedule.cosine(1000)
cases = [("coarse, T = 5", coarse, 1), ("fine, T = 1000", fine, 399)]       # 0-based: paper t = 2 and 400
assert abs(coarse.alphas_cumprod[1] - fine.alphas_cumprod[399]) < 1e-12      # the same noise level
x_conditions = (0.0, 0.5, 1.0)
print(f"{'schedule':16s} {'beta_t':>8s} {'x_t':>4s} {'modes':>5s}  KL to moment-matched Gaussian (nats)")
for name, s, i in cases:
    for x_cond in x_conditions:
        rc = D.reverse_conditional(bimodal, s, i, torch.tensor([x_cond], **F64))
        m_fit, s_fit = divergences.forward_kl_fit(rc)                 # moment matching
        gauss = toy.GaussianMixture(torch.tensor([[m_fit]], **F64), s_fit)
        xs = divergences.quadrature_grid(rc, gauss, num_points=20_001)
        dens = rc.log_prob(xs[:, None]).exp()
        n_modes = int(((dens[1:-1] > dens[:-2]) & (dens[1:-1] > dens[2:])).sum())
        kl_gauss = divergences.kl_divergence_1d(rc.log_prob(xs[:, None]), gauss.log_prob(xs[:, None]), xs)
        assert abs(torch.trapezoid(dens, xs).item() - 1) < 1e-9
        prev = D.noised_mixture(bimodal, s, i - 1)                       # q(x_{t-1}), 0-based i - 1
        log_joint = prev.log_prob(xs[:, None]) + torch.distributions.Normal(
            math.sqrt(s.alphas[i].item()) * xs, math.sqrt(s.betas[i].item())).log_prob(torch.tensor(x_cond, **F64))
        joint = (log_joint - log_joint.max()).exp()                       # Bayes: prior x likelihood
        assert ((dens - joint / torch.trapezoid(joint, xs)).abs().max() < 1e-9 * dens.max()), (name, x_cond)
        print(f"{name:16s} {s.betas[i].item():8.4f} {x_cond:4.1f} {n_modes:5d}  {kl_gauss:.2e}")
        if s is coarse:
            assert n_modes == 2 and kl_gauss > 0.04, (x_cond, n_modes, kl_gauss)
        else:
            assert n_modes == 1 and kl_gauss < 1e-6, (x_cond, n_modes, kl_gauss)

# %% [markdown]
# Solid: the true reverse step given each $x_t$; dashed: the Gaussian with its mean and variance (the
# best a Gaussian $p_\theta$ can do in KL); grey: the marginal $q(x_{t-1})$. With one large step the two
# modes of $q(x_{t-1})$ survive; with 200 times as many steps between the same noise levels the reverse
# step is a Gaussian, to the eye and to $10^{-6}$ nats.

# %%
widgets.plot_reverse_conditionals(bimodal, cases, x_conditions);

# %% [markdown]
# ## 6. The ELBO: prior matching, consistency, reconstruction
#
# With the forward chain as the "encoder", Jensen's inequality gives
# $\log p_\theta(x_0) \ge \mathbb E_{q(x_{1:T} \mid x_0)}\big[\log p_\theta(x_{0:T}) - \log q(x_{1:T} \mid x_0)\big]$.
# Rewriting $q(x_t \mid x_{t-1}) = q(x_{t-1} \mid x_t, x_0)\,q(x_t \mid x_0)/q(x_{t-1} \mid x_0)$ (Chan 2024)
# makes the sum telescope into
#
# $$-\mathrm{ELBO} = \underbrace{\mathrm{KL}(q(x_T \mid x_0)\,\|\,p(x_T))}_{L_T:\ \text{prior matching}}
#  + \sum_{t=2}^T \underbrace{\mathbb E_q\,\mathrm{KL}(q(x_{t-1} \mid x_t, x_0)\,\|\,
#    p_\theta(x_{t-1} \mid x_t))}_{L_{t-1}:\ \text{consistency}}
#  \underbrace{-\ \mathbb E_q \log p_\theta(x_0 \mid x_1)}_{L_0:\ \text{reconstruction}} .$$
#
# Check of the decomposition: estimate the left-hand side **directly**, by simulating whole forward
# chains and averaging the log-ratio, and compare with `vlb_terms`, which sums closed-form KLs. Both
# use the exact noise predictor of the mixture (section 7) and $\sigma_t^2 = \tilde\beta_t$, on a short
# $T = 20$ chain, on 4000 data points each (agreement within 5 standard errors).

# %%
def elbo_by_chains(schedule, model, x0, generator):
    """-ELBO per example by simulating x_{1:T} ~ q(. | x0) and summing log q - log p_theta (nats)."""
    x_prev, total = x0, torch.zeros(x0.shape[0], dtype=x0.dtype)
    states = []
    for i in range(schedule.num_steps):            # forward: paper x_{i+1} from x_i
        mean = schedule.alphas[i].sqrt() * x_prev
        x = mean + schedule.betas[i].sqrt() * torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        total += gaussians.gaussian_log_likelihood(x, mean, schedule.betas[i].log().expand_as(x))
        states.append(x)
        x_prev = x
    total -= gaussians.gaussian_log_likelihood(x_prev, torch.zeros_like(x0), torch.zeros_like(x0))
    for i in reversed(range(schedule.num_steps)):  # reverse: p_theta(paper x_i | x_{i+1})
        target = states[i - 1] if i > 0 else x0
        out = D.p_mean_variance(schedule, model, states[i], torch.full((x0.shape[0],), i))
        total -= gaussians.gaussian_log_likelihood(target, out.mean, out.log_variance)
    return total


sched20 = D.NoiseSchedule.cosine(20)
opt20 = D.optimal_eps_model(grid_std.to(torch.float64), sched20)
x0_elbo = grid_std.to(torch.float64).sample(4000, generator=gen)
direct = elbo_by_chains(sched20, opt20, x0_elbo, gen)
vlb20 = D.vlb_terms(sched20, opt20, x0_elbo, generator=gen)
split = vlb20.total
se = math.sqrt(direct.var() / 4000 + split.var() / 4000)
print(f"-ELBO: chains {direct.mean():.3f} (se {direct.std() / 63.25:.3f}), "
      f"decomposed {split.mean():.3f} (se {split.std() / 63.25:.3f}) nats")
assert abs(direct.mean() - split.mean()) < 5 * se

# %% [markdown]
# ### The terms, step by step
#
# The bars are the means over the 4000 data points of each term of the bound just computed (error bars:
# one standard error). **Axis convention:** the bar at $i$ is the paper's $L_i$, i.e. code column
# $i$ of `vlb_terms(...).terms`: $L_0$ is the decoder (green), $L_i$ for $i \ge 1$ the KL of the step from the
# paper's $x_{i+1}$ to $x_i$ (blue; in the formula above, $L_{t-1}$ with paper $t = i+1$), and the last bar,
# at $i = T$, the prior term $L_T$ (red).
#
# What they show, asserted below: the bars add up to the $-\mathrm{ELBO}$ printed above (float precision);
# every KL term is $\ge 0$ for every data point (a KL); $L_0$ is negative, because the decoder is a
# continuous density (its variance, $\tilde\beta$ clipped at index 0, is small and the data's modes are sharp,
# so its density at the data exceeds 1); the consistency cost sits at low noise: $L_1 + \dots + L_5$ exceeds
# the sum of the other fourteen KL terms (5 standard errors of each sum to spare); and $L_T$ is negligible
# ($< 10^{-4}$ nats for every point, section 3).

# %%
per_t = vlb20.terms
torch.testing.assert_close(vlb20.prior + per_t.sum(1), split, rtol=1e-12, atol=1e-12)
assert (per_t[:, 1:] >= 0).all() and per_t[:, 0].mean() < 0 and (vlb20.prior < 1e-4).all()
low, high = per_t[:, 1:6].sum(1), per_t[:, 6:].sum(1)
se_low, se_high = low.std() / math.sqrt(len(low)), high.std() / math.sqrt(len(high))
print(f"L_1..L_5: {low.mean():.3f} (se {se_low:.3f}) nats; L_6..L_{sched20.num_steps - 1}: "
      f"{high.mean():.3f} (se {se_high:.3f}); L_0 = {per_t[:, 0].mean():.3f}; L_T = {vlb20.prior.mean():.1e}")
assert low.mean() - 5 * se_low > high.mean() + 5 * se_high
widgets.plot_vlb_terms(vlb20, title=f" (cosine T = {sched20.num_steps}, exact eps*, 4000 points)");

# %% [markdown]
# ### The first form of the bound, and why it is rewritten
#
# Grouping the log-ratio by forward steps instead of by reverse ones gives the first form of the bound in
# Chan (2024), after [Luo (2022)](../docs/bibliography.md#luo2022): writing
# $\log\frac{p_\theta(x_{0:T})}{q(x_{1:T} \mid x_0)} = \log p_\theta(x_0 \mid x_1)
#  + \log\frac{p(x_T)}{q(x_T \mid x_{T-1})}
#  + \sum_{t=1}^{T-1}\log\frac{p_\theta(x_t \mid x_{t+1})}{q(x_t \mid x_{t-1})}$,
#
# $$-\mathrm{ELBO} = -\mathbb E_{q(x_1 \mid x_0)}\log p_\theta(x_0 \mid x_1)
#   + \mathbb E_{q(x_{T-1} \mid x_0)}\mathrm{KL}\big(q(x_T \mid x_{T-1})\,\|\,p(x_T)\big)
#   + \sum_{t=1}^{T-1}\mathbb E_{q(x_{t-1}, x_t, x_{t+1} \mid x_0)}
#     \Big[\log\frac{q(x_t \mid x_{t-1})}{p_\theta(x_t \mid x_{t+1})}\Big]:$$
#
# each **consistency term** compares the forward step into $x_t$ with the reverse step into $x_t$. Each
# involves three states. Integrating out $x_t$ leaves an expectation over two variables,
# $(x_{t-1}, x_{t+1}) \sim q(x_{t-1}, x_{t+1} \mid x_0)$, of an inner expectation over
# $q(x_t \mid x_{t-1}, x_{t+1}) \propto q(x_t \mid x_{t-1})\,q(x_{t+1} \mid x_t)$, the forward "bridge": a Gaussian with
# $1/v_b = 1/\beta_t + \alpha_{t+1}/\beta_{t+1}$ and mean
# $v_b\big(\sqrt{\alpha_t}x_{t-1}/\beta_t + \sqrt{\alpha_{t+1}}x_{t+1}/\beta_{t+1}\big)$.
# Both log-densities are quadratic in $x_t$, so the inner expectation is in closed form, a difference of two
# Gaussian cross-entropies. The term is often written
# $\mathbb E_{q(x_{t-1}, x_{t+1} \mid x_0)}\mathrm{KL}\big(q(x_t \mid x_{t-1})\,\|\,p_\theta(x_t \mid x_{t+1})\big)$;
# that reading draws $x_t$ from $q(x_t \mid x_{t-1})$ **independently** of $x_{t+1}$, but $x_{t+1}$ is made from
# $x_t$, so it is a different number, not the bound.
#
# The form above conditions the other way, on $x_0$: each consistency term is an expectation over **one**
# variable $x_t$ of a closed-form KL,
# $\mathbb E_{q(x_t \mid x_0)}\mathrm{KL}(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1} \mid x_t))$.
#
# Check on the same 4000 points, $T = 20$ and exact $\varepsilon^*$ (one draw per term and point, as
# `vlb_terms` does): (1) the first form, estimated plainly (draw $x_{t-1} \sim q(\cdot \mid x_0)$, then
# $x_t$ and $x_{t+1}$ forward, average the log-ratio) and with the bridge integrated out, agrees with the
# rewritten form (`split` above) within 5 standard errors; (2) the independent-KL reading does not: it is
# larger by more than 10 standard errors; (3) the rewritten estimator's variance is less than half the plain
# first form's (5 standard errors of each sample variance to spare). Integrating $x_t$ out over the bridge
# removes most of that extra variance too; the rewritten form gets it for free, and its terms are KLs of
# Gaussians, i.e. weighted squared errors of means (next subsection), which is what makes training a
# regression.

# %%
def expected_log_normal(mean_b, var_b, mean, var):
    """E log N(x; mean, var) over x ~ N(mean_b, var_b), summed over dimensions (nats)."""
    return (-0.5 * torch.log(2 * math.pi * var) - ((mean_b - mean) ** 2 + var_b) / (2 * var)).sum(1)


def elbo_first_form(schedule, model, x0, generator):
    """-ELBO per example by the first form: (plain, bridge, independent-KL reading), one draw per term."""
    N, T_ = x0.shape[0], schedule.num_steps
    a, b, zeros = schedule.alphas, schedule.betas, torch.zeros_like(x0)

    def from_x0(k):                              # the paper's x_k ~ q(x_k | x0)
        return x0 if k == 0 else D.q_sample(schedule, x0, torch.full((N,), k - 1), generator=generator)

    def forward(x, i):                           # one forward step with 0-based index i
        return a[i].sqrt() * x + b[i].sqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype)

    out = D.p_mean_variance(schedule, model, from_x0(1), torch.zeros(N, dtype=torch.long))
    ends = -gaussians.gaussian_log_likelihood(x0, out.mean, out.log_variance)          # reconstruction
    ends = ends + gaussians.gaussian_kl(a[-1].sqrt() * from_x0(T_ - 1), b[-1].log().expand_as(x0),
                                        zeros, zeros).sum(1)                           # prior matching
    plain, bridge, independent = ends.clone(), ends.clone(), ends.clone()
    for t in range(1, T_):                       # paper t: q(x_t | x_{t-1}) has index t-1, p(x_t | x_{t+1}) index t
        x_prev = from_x0(t - 1)
        x_t = forward(x_prev, t - 1)
        x_next = forward(x_t, t)
        p = D.p_mean_variance(schedule, model, x_next, torch.full((N,), t))
        q_mean, q_var = a[t - 1].sqrt() * x_prev, b[t - 1].expand_as(x0)
        plain += (gaussians.gaussian_log_likelihood(x_t, q_mean, q_var.log())
                  - gaussians.gaussian_log_likelihood(x_t, p.mean, p.log_variance))
        var_b = (1 / (1 / b[t - 1] + a[t] / b[t])).expand_as(x0)
        mean_b = var_b * (q_mean / b[t - 1] + a[t].sqrt() * x_next / b[t])
        bridge += (expected_log_normal(mean_b, var_b, q_mean, q_var)
                   - expected_log_normal(mean_b, var_b, p.mean, p.variance.expand_as(x0)))
        independent += gaussians.gaussian_kl(q_mean, q_var.log(), p.mean, p.log_variance.expand_as(x0)).sum(1)
    return plain, bridge, independent


first_plain, first_bridge, first_independent = elbo_first_form(sched20, opt20, x0_elbo, gen)
n_elbo = x0_elbo.shape[0]
print(f"{'-ELBO estimator':36s} {'mean':>8s} {'se':>6s} {'variance':>9s} {'se':>6s}")
for name, est in (("rewritten (split, above)", split), ("first form, plain", first_plain),
                  ("first form, bridge integrated", first_bridge), ("first form, independent KL", first_independent)):
    v, v_se = sample_variance_se(est)
    print(f"{name:36s} {est.mean():8.3f} {est.std() / math.sqrt(n_elbo):6.3f} {v:9.3f} {v_se:6.3f}")
for est in (first_plain, first_bridge):                                     # (1) equal in expectation
    assert abs(est.mean() - split.mean()) < 5 * math.sqrt(est.var() / n_elbo + split.var() / n_elbo)
assert first_independent.mean() - split.mean() > 10 * math.sqrt(                # (2) not the bound
    first_independent.var() / n_elbo + split.var() / n_elbo)
(v_rew, se_rew), (v_plain, se_plain), (v_bridge, se_bridge) = (
    sample_variance_se(e) for e in (split, first_plain, first_bridge))
assert 2 * (v_rew + 5 * se_rew) < v_plain - 5 * se_plain                       # (3) lower variance
assert 2 * (v_bridge + 5 * se_bridge) < v_plain - 5 * se_plain

# %% [markdown]
# ### KL of Gaussians as a squared error of means, and three parameterizations
#
# With $p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)$ and $\sigma_t^2 = \tilde\beta_t$,
# the two Gaussians share their covariance, so the consistency term is
# $L_{t-1} = \frac{1}{2\sigma_t^2}\|\tilde\mu_t(x_t, x_0) - \mu_\theta(x_t, t)\|^2$. Writing the network's
# mean through a prediction $\hat x_0$ or $\hat\varepsilon$ (using
# $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\varepsilon)/\sqrt{\bar\alpha_t}$):
#
# $$L_{t-1} = \frac{\bar\alpha_{t-1}\beta_t^2}{2\sigma_t^2(1-\bar\alpha_t)^2}\|x_0 - \hat x_0\|^2
#   = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t(1-\bar\alpha_t)}\|\varepsilon - \hat\varepsilon\|^2,
#   \qquad \mu_\theta = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\hat\varepsilon\Big).$$
#
# Check with random predictions: the closed-form KL (`gaussian_kl`), the mean error, the $x_0$ error
# and the $\varepsilon$ error, each with its weight, agree to float64 precision.

# %%
n, i = 6, torch.tensor([1, 5, 17, 50, 80, 99])
x0_r, eps_r, eps_hat = (torch.randn(n, 2, generator=gen, **F64) for _ in range(3))
xt_r = D.q_sample(sched, x0_r, i, noise=eps_r)
mu_true, var_true, logvar_true = D.q_posterior_mean_variance(sched, x0_r, xt_r, i)
out = D.p_mean_variance(sched, lambda x, t: eps_hat, xt_r, i)                # eps-parameterization
kl = gaussians.gaussian_kl(mu_true, logvar_true, out.mean, out.log_variance).sum(1)
b, a, ab, ab_prev, s2 = (v[i] for v in (sched.betas, sched.alphas, sched.alphas_cumprod,
                                        sched.alphas_cumprod_prev, sched.posterior_variance))
by_mean = ((mu_true - out.mean) ** 2).sum(1) / (2 * s2)
by_x0 = ab_prev * b**2 / (2 * s2 * (1 - ab) ** 2) * ((x0_r - out.pred_x0) ** 2).sum(1)
by_eps = b**2 / (2 * s2 * a * (1 - ab)) * ((eps_r - eps_hat) ** 2).sum(1)
print("KL:", kl.numpy().round(4))
for other in (by_mean, by_x0, by_eps):
    torch.testing.assert_close(other, kl, rtol=1e-9, atol=1e-12)

# %% [markdown]
# ### Exercise 3: the $\varepsilon$-form of $L_{t-1}$
#
# **Exercise 3 (derivation, ★★☆, 3 points, graded by hand)**
#
# The cell above checked numerically what you now derive. Substitute
# $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$ into the forward-posterior mean
# $\tilde\mu_t(x_t, x_0)$ of section 5 and show that
# $\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon\big)$.
# Then, with $\mu_\theta$ of the same form with $\hat\varepsilon$ and
# $p_\theta(x_{t-1}\mid x_t) = \mathcal N(\mu_\theta, \sigma_t^2 I)$, $\sigma_t^2 = \tilde\beta_t$, show that
# $L_{t-1} = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t(1-\bar\alpha_t)}\|\varepsilon - \hat\varepsilon\|^2$. Name
# each identity of the schedule you use. Write your answer in the cell below (Markdown and LaTeX).

# %% [markdown] nbgrader={"grade": true, "grade_id": "eps_form_derivation", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# **Model answer.** $\tilde\mu_t = c_0 x_0 + c_t x_t$ with
# $c_0 = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}$,
# $c_t = \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}$.
# Since $\bar\alpha_t = \alpha_t\bar\alpha_{t-1}$, $\sqrt{\bar\alpha_{t-1}}/\sqrt{\bar\alpha_t} = 1/\sqrt{\alpha_t}$, so
#
# $$c_0 x_0 = \frac{\beta_t}{\sqrt{\alpha_t}(1-\bar\alpha_t)}\big(x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon\big).$$
#
# The coefficient of $x_t$ is
# $\frac{\beta_t + \alpha_t(1-\bar\alpha_{t-1})}{\sqrt{\alpha_t}(1-\bar\alpha_t)}
#  = \frac{1 - \bar\alpha_t}{\sqrt{\alpha_t}(1-\bar\alpha_t)} = \frac{1}{\sqrt{\alpha_t}}$ (using
# $\beta_t + \alpha_t = 1$ and $\alpha_t\bar\alpha_{t-1} = \bar\alpha_t$); the coefficient of $\varepsilon$ is
# $-\frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}$. Hence
# $\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon\big)$ and
# $\tilde\mu_t - \mu_\theta = \frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}(\hat\varepsilon - \varepsilon)$.
# Two Gaussians with the same covariance $\sigma_t^2 I$ have
# $\mathrm{KL} = \|\tilde\mu_t - \mu_\theta\|^2/(2\sigma_t^2)$ (the trace and log-determinant terms cancel), so
# $L_{t-1} = \frac{\beta_t^2}{2\sigma_t^2\alpha_t(1-\bar\alpha_t)}\|\varepsilon - \hat\varepsilon\|^2$.
#
# **Rubric (3 points).** 1 point: the substitution, with $\bar\alpha_t = \alpha_t\bar\alpha_{t-1}$ used to
# simplify $c_0/\sqrt{\bar\alpha_t}$. 1 point: the $x_t$ coefficient reduced to $1/\sqrt{\alpha_t}$ with
# $\beta_t + \alpha_t = 1$ (and the $\varepsilon$ coefficient right). 1 point: the KL of equal-covariance
# Gaussians as $\|\Delta\mu\|^2/(2\sigma_t^2)$, with the reason the other terms vanish, giving the weight.
# Deduct 1 point for an unexplained jump (e.g. "after simplification").
# ### END SOLUTION

# %% [markdown]
# ### $L_\text{simple}$ versus the true weights
#
# Ho et al. drop the weight $\lambda_t = \beta_t^2/(2\sigma_t^2\alpha_t(1-\bar\alpha_t))$ and train on
# $L_\text{simple} = \mathbb E_{t, x_0, \varepsilon}\|\varepsilon - \varepsilon_\theta(x_t, t)\|^2$
# with $t$ uniform: every step counts the same. The true weights are much larger at small $t$
# (Ho et al. 2020, Section 3.4: the small-$t$ terms train the network to remove very small amounts of noise,
# and down-weighting them lets it focus on the harder denoising at larger $t$), so $L_\text{simple}$ moves
# effort to the noisier steps, which is what improves samples. (The cosine schedule's last weight is large
# too: its last $\beta$ is clipped at 0.999.)

# %%
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for name in ("linear T=1000", "cosine T=1000", "cosine T=100 (toy)"):
    s = schedules[name]
    k = torch.arange(1, s.num_steps)            # index >= 1: the KL terms (index 0 is the decoder)
    lam_small = s.betas[k] ** 2 / (2 * s.posterior_variance[k] * s.alphas[k] * (1 - s.alphas_cumprod[k]))
    lam_large = s.betas[k] / (2 * s.alphas[k] * (1 - s.alphas_cumprod[k]))
    ax.plot((k + 1) / s.num_steps, lam_small, label=f"{name}, sigma^2 = beta~")      # paper t = index + 1
    ax.plot((k + 1) / s.num_steps, lam_large, ls="--", label=f"{name}, sigma^2 = beta")
    assert lam_small[0] > 10 * lam_small.median() and lam_large[0] > 5 * lam_large.median()
ax.axhline(1, color="k", lw=1, label="L_simple (lambda = 1)")
ax.set(yscale="log", xlabel="paper t / T (code index t - 1)", ylabel="lambda_t",
       title="weight of ||eps - eps_theta||^2 in L_{t-1}")
ax.legend(fontsize=6);

# %% [markdown]
# ### Worked example: from a noise prediction to $\hat x_0$
#
# Inverting the kernel, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$: one line.
# With the true noise it returns $x_0$ itself (the draws of the cell above, at their steps, and at the
# last cosine step, where $1/\sqrt{\bar\alpha}$ is about $2\cdot 10^4$), and it agrees with
# `D.predict_x0_from_eps`.

# %%
def predict_x0_from_eps(xt, t, eps, betas):
    """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t); all (N, D), t (N,) 0-based."""
    abar = torch.cumprod(1 - betas, dim=0)[t][:, None]
    return (xt - (1 - abar).sqrt() * eps) / abar.sqrt()


sched_cos = schedules["cosine T=1000"]
last = torch.full((n,), sched_cos.num_steps - 1)
xt_last = D.q_sample(sched_cos, x0_r, last, noise=eps_r)
for s_, t_, xt_ in ((sched, i, xt_r), (sched_cos, last, xt_last)):
    x0_back = predict_x0_from_eps(xt_, t_, eps_r, s_.betas)
    torch.testing.assert_close(x0_back, x0_r, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(x0_back, D.predict_x0_from_eps(s_, xt_, t_, eps_r), rtol=1e-10, atol=1e-10)
print(f"x0 recovered from x_t and the true eps; last cosine step: 1/sqrt(abar) = "
      f"{sched_cos.alphas_cumprod[-1].rsqrt():.3g}")

# %% [markdown]
# ## 7. The Bayes-optimal denoiser of a mixture
#
# $L_\text{simple}$ is a regression, so its minimizer is $\varepsilon^*(x_t, t) = \mathbb E[\varepsilon \mid x_t]$.
# For mixture data it is exact (`optimal_eps_model`, by Tweedie's formula). Likewise the
# mean minimizing $\mathbb E\,\mathrm{KL}(q(x_{t-1} \mid x_t, x_0)\|p_\theta)$ is
# $\mathbb E[\tilde\mu_t(x_t, x_0) \mid x_t] = \tilde\mu_t(x_t, \mathbb E[x_0 \mid x_t]) = \mathbb E[x_{t-1} \mid x_t]$
# (the minimum-mean-squared-error denoiser of Chan 2024), because a conditional mean minimizes an expected
# squared error and $\tilde\mu_t$ is linear in $x_0$. Check it against the mixture's
# own posterior mean (`GaussianMixture.posterior_mean`, an independent implementation): with
# $y = x_t/\sqrt{\bar\alpha_t} = x_0 + \sigma\varepsilon$, $\sigma^2 = (1-\bar\alpha_t)/\bar\alpha_t$.

# %%
g64 = grid_std.to(torch.float64)
opt_model = D.optimal_eps_model(g64, sched)
idx = torch.tensor([0, 3, 10, 30, 60, 90, 99] * 20)
xt_o = D.q_sample(sched, g64.sample(idx.shape[0], generator=gen), idx, generator=gen)
ab = sched.alphas_cumprod[idx][:, None]
post_mean = g64.posterior_mean(xt_o / ab.sqrt(), ((1 - ab) / ab).sqrt())
out = D.p_mean_variance(sched, opt_model, xt_o, idx)
mu_expected, _, _ = D.q_posterior_mean_variance(sched, post_mean, xt_o, idx)
torch.testing.assert_close(out.pred_x0, post_mean, rtol=1e-6, atol=1e-8)
torch.testing.assert_close(out.mean, mu_expected, rtol=1e-6, atol=1e-8)
print("optimal eps model: x0_hat = E[x0 | x_t] and mu = E[x_{t-1} | x_t], max abs diff",
      f"{(out.pred_x0 - post_mean).abs().max():.1e}")

# %% [markdown]
# ## Summary
#
# - Only $x_t = \sqrt{\alpha_t}x_{t-1} + \sqrt{1-\alpha_t}\varepsilon$ keeps the variance at 1; then
#   $q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}x_0, (1-\bar\alpha_t)I)$ (checked by simulating the chain).
# - The forward posterior is Gaussian with $\tilde\mu_t, \tilde\beta_t$ (checked pointwise against Bayes' rule;
#   two common typos fail the check); the true reverse step $q(x_{t-1} \mid x_t)$ is a mixture, nearly
#   Gaussian only when the step is small.
# - $-\mathrm{ELBO} = L_T + \sum L_{t-1} + L_0$ (checked against the raw chain estimator); each
#   $L_{t-1}$ is a weighted squared error of means, $x_0$'s or $\varepsilon$'s; $L_\text{simple}$ drops the weights.
# - For mixture data the minimizer of $L_\text{simple}$ is known exactly:
#   $\varepsilon^*(x_t, t) = \mathbb E[\varepsilon \mid x_t]$, whose $\hat x_0$ is the posterior mean
#   $\mathbb E[x_0 \mid x_t]$.
#
# Next: notebook 05, Algorithms 1 and 2: training a network toward $\varepsilon^*$ and sampling with it.
