# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · GANs, the optimal discriminator and the log-D trick
#
# Every paper cited here is listed, with full references, in the course's
# [bibliography](../docs/bibliography.md).
#
# **What you will learn**
#
# - the minimax game of a generator and a discriminator
#   ([Goodfellow et al. 2014](../docs/bibliography.md#goodfellow2014)), its value
#   function, and the alternating algorithm with $k$ discriminator steps per generator step;
# - why every GAN loss is computed from **logits** (softplus), never as `log(sigmoid(...))`;
# - the **optimal discriminator** $D^* = p_{\mathrm{data}} / (p_{\mathrm{data}} + p_g)$, checked
#   against a discriminator trained on 1-D Gaussians, and $V(G, D^*) = -\log 4 + 2\,\mathrm{JSD}$,
#   checked by quadrature;
# - **saturation**: the minimax generator loss $\log(1 - D(G(z)))$ has no gradient exactly when the
#   generator is bad; the **log-D trick** $-\log D(G(z))$ fixes that (gradient magnitudes, the game
#   against the exact $D^*$ without any randomness, then trained runs with each loss), and why the
#   log-D trick is a **reverse-KL, mode-seeking** objective
#   ([Arjovsky & Bottou 2017](../docs/bibliography.md#arjovsky2017a)): it minimizes
#   $2\,\mathrm{KL}(M\,\|\,p_{\mathrm{data}})$, $M = (p_{\mathrm{data}} + p_g)/2$;
# - **mode collapse** on the 8-mode ring and the 25-mode grid, measured with the published
#   VEEGAN / PacGAN protocol ([Lin et al. 2018](../docs/bibliography.md#lin2018)) over independent
#   runs and put beside their tables; the loss curves, and the trained discriminator against $D^*$;
# - a stabler objective, **WGAN-GP** ([Gulrajani et al. 2017](../docs/bibliography.md#gulrajani2017)),
#   on the same toys with the same metrics; **LSGAN**'s least-squares loss
#   ([Mao et al. 2017](../docs/bibliography.md#mao2017)) and its Pearson $\chi^2$; a DCGAN on the digits
#   ([Radford et al. 2016](../docs/bibliography.md#radford2016)) and walks in its latent space;
# - why a GAN cannot answer $p(x)$ or $p(z \mid x)$.
#
# Every derivation is followed by a cell that computes the claim and **asserts** it. A claim that
# comes from training is a statistic over independent runs (mean and standard error), asserted with
# its standard error, so that it holds for any seed (`COURSE_SEED`) and on any machine.
#
# **Notation.** Papers write the same objects differently; this notebook uses the left column.
#
# | here | Goodfellow et al. 2014 |
# |---|---|
# | generator $G_\theta: z \mapsto x$, $z \sim p_z(z) = p(z) = \mathcal N(0, I)$ (the noise prior) | $G(z; \theta_g)$, $p_z(z)$ |
# | discriminator $D_\phi(x) = \sigma(\ell_\phi(x)) \in (0, 1)$, logit $\ell_\phi$ | $D(x; \theta_d)$ |
# | model distribution $p_g$ (law of $G_\theta(z)$), known only through samples (an *implicit* model) | $p_g$ |
# | value $V(D, G) = \mathbb E_{p_{\mathrm{data}}}[\log D(x)] + \mathbb E_{p(z)}[\log(1 - D(G(z)))]$ | eq. 1 |
#
# **$p_g$ is the model's distribution over $x$, never the noise prior.** Some texts and slides write
# "noise prior $p_g(z)$" in the training algorithm; Goodfellow et al.'s own Algorithm 1 does so, while
# their eq. 1 writes $p_z(z)$ for the prior and keeps $p_g$ for the generator's distribution. Here the
# prior is always $p_z$ (or $p(z)$) and $p_g$ always the law of $G_\theta(z)$.
#
# In code: discriminators return logits `(N, 1)`; losses are scalars in nats; 2-D samples are
# `(N, 2)`; images `(N, 1, 8, 8)` in $[-1, 1]$.


# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import integrate, stats

from course_lib import (
    course_seed,
    data,
    divergences,
    gan,
    get_device,
    grading,
    plotting,
    seed_everything,
    set_num_threads,
    toy,
    widgets,
)

SEED = course_seed()      # COURSE_SEED from the environment (default 0): rerun under any seed
gen = seed_everything(SEED)
set_num_threads(1)       # tiny networks: one CPU thread is fastest (COURSE_THREADS overrides)
device = get_device()
print("device:", device)
# The 1-D and 2-D toys use MLPs with ~10^4 weights: they train as fast on a CPU as on a GPU. The digits
# use `device`. A claim that comes from training is a statistic over independent runs (mean and standard
# error), each run seeded from SEED, so another COURSE_SEED gives other runs and the same claims.
toy_device = torch.device("cpu")


def mean_se(values):
    """Mean and standard error of the mean (sample std / sqrt(n)) of independent runs."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    return v.mean().item(), (v.std() / math.sqrt(len(v))).item()

# %% [markdown]
# ## 1. The minimax game
#
# A GAN is an **implicit** model: there is no formula for $p_g(x)$, only a sampler
# $z \sim p(z)$, $x = G_\theta(z)$. It is trained against a discriminator $D_\phi$ that outputs the
# probability that $x$ is real. The two play the minimax game (Goodfellow et al. 2014,
# eq. 1)
#
# $$\min_\theta \max_\phi\ V(D_\phi, G_\theta) = \mathbb E_{x \sim p_{\mathrm{data}}}\big[\log D_\phi(x)\big]
#   + \mathbb E_{z \sim p(z)}\big[\log\big(1 - D_\phi(G_\theta(z))\big)\big] .$$
#
# $D$ wants $D(x) \to 1$ on data and $D(G(z)) \to 0$ on samples; $G$ wants $D(G(z)) \to 1$.
# **Alternating algorithm** (Goodfellow et al. 2014, Algorithm 1): for each iteration,
# $k$ times: sample $m$ data $x^{(i)}$ and $m$ noises $z^{(i)}$ and **ascend**
# $\nabla_\phi \frac1m \sum_i [\log D_\phi(x^{(i)}) + \log(1 - D_\phi(G_\theta(z^{(i)})))]$; then
# sample $m$ noises and **descend** the generator's loss. `gan.train_gan(..., d_steps=k)` is this
# loop with Adam; the paper used $k = 1$, as we do except where said.
#
# **Losses from logits.** A network outputs a logit $\ell$ and $D = \sigma(\ell)$. Then
# $-\log\sigma(\ell) = \mathrm{softplus}(-\ell) = \log(1 + e^{-\ell})$ and
# $-\log(1 - \sigma(\ell)) = \mathrm{softplus}(\ell)$, which are exact and finite for every $\ell$,
# while `torch.log(torch.sigmoid(l))` is $\log 0 = -\infty$ once $\sigma(\ell)$ rounds to 0
# ($\ell \lesssim -104$ in float32). The discriminator minimizes
# $\mathcal L_D = -V = \mathbb E[\mathrm{softplus}(-\ell(x))] + \mathbb E[\mathrm{softplus}(\ell(G(z)))]$.
#
# Check: `gan.discriminator_loss` equals $-V$ computed the naive way in float64 at moderate logits,
# a discriminator that cannot tell ($\ell = 0$, $D = 1/2$) has $\mathcal L_D = \log 4$, and at
# $\ell = \pm 10^4$ the loss is finite where the naive one is not.

# %%
real_l = 4 * torch.randn(1000, generator=gen, dtype=torch.float64)
fake_l = 4 * torch.randn(700, generator=gen, dtype=torch.float64)
naive = -(torch.log(torch.sigmoid(real_l)).mean() + torch.log(1 - torch.sigmoid(fake_l)).mean())
print(f"L_D from logits {gan.discriminator_loss(real_l, fake_l).item():.12f}, naive {naive.item():.12f}")
assert abs(gan.discriminator_loss(real_l, fake_l) - naive) < 1e-10
assert abs(gan.discriminator_loss(torch.zeros(5), torch.zeros(3)).item() - math.log(4)) < 1e-6

extreme_real, extreme_fake = torch.tensor([1e4, -1e4]), torch.tensor([-1e4, 1e4])
naive_extreme = -(torch.log(torch.sigmoid(extreme_real)).mean() + torch.log(1 - torch.sigmoid(extreme_fake)).mean())
stable = gan.discriminator_loss(extreme_real, extreme_fake)
print(f"logits +-1e4: from logits {stable.item():.1f} nats, naive {naive_extreme.item()}")
assert torch.isinf(naive_extreme) and abs(stable.item() - 1e4) < 1e-2  # mean of (0 + 1e4) and (0 + 1e4)

# %% [markdown]
# ### Exercise 1: the three GAN losses from logits
#
# **Exercise 1 (implementation, ★☆☆, 2 points)**
#
# Implement `gan_losses(real_logits, fake_logits)` for logit tensors of shapes `(N,)` and `(M,)`,
# returning the tuple `(d_loss, g_loss_non_saturating, g_loss_saturating)` of scalars (nats):
#
# - $\mathcal L_D = -\frac1N\sum_i \log D(x_i) - \frac1M\sum_j \log(1 - D(G(z_j)))$;
# - non-saturating (log-D trick): $-\frac1M\sum_j \log D(G(z_j))$;
# - saturating (minimax): $\frac1M\sum_j \log(1 - D(G(z_j)))$.
#
# Use `torch.nn.functional.softplus`. The check compares with `course_lib.gan` on float64 logits
# that include $\pm 10^4$: `log(sigmoid(l))` fails there with an `inf`.

# %% nbgrader={"grade": false, "grade_id": "gan_losses", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gan_losses(real_logits, fake_logits):
    """(d_loss, g_loss_non_saturating, g_loss_saturating) from logits (N,) and (M,); scalars."""
    ### BEGIN SOLUTION
    softplus = torch.nn.functional.softplus
    d_loss = softplus(-real_logits).mean() + softplus(fake_logits).mean()
    return d_loss, softplus(-fake_logits).mean(), -softplus(fake_logits).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "gan_losses_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("gan_losses", gan_losses)


# %% [markdown]
# ## 2. The optimal discriminator
#
# Fix $G$, so $p_g$ is fixed. Writing both expectations as integrals over $x$,
#
# $$V(D, G) = \int \Big[p_{\mathrm{data}}(x) \log D(x) + p_g(x) \log\big(1 - D(x)\big)\Big]\,dx .$$
#
# $D$ can be chosen separately at every $x$. For $a, b \ge 0$ not both 0, $y \mapsto a\log y + b\log(1-y)$
# on $(0, 1)$ has derivative $a/y - b/(1-y)$, zero at $y = a/(a+b)$, and is concave, so
# (Goodfellow et al. 2014, Proposition 1)
#
# $$D^*(x) = \frac{p_{\mathrm{data}}(x)}{p_{\mathrm{data}}(x) + p_g(x)}
#   = \sigma\big(\log p_{\mathrm{data}}(x) - \log p_g(x)\big).$$
#
# The optimal **logit** is the log density ratio: a trained discriminator estimates
# $\log p_{\mathrm{data}}/p_g$ (the "density ratio trick").
#
# **Check: a trained discriminator approaches $D^*$.** Data $p_{\mathrm{data}} = \mathcal N(0, 1)$,
# a fixed "generator" $p_g = \mathcal N(1.5, 0.7^2)$; an MLP discriminator is trained on fresh
# samples of both (`gan.train_discriminator`, the inner $\max_\phi$ alone, 600 Adam steps). Training
# is random (initialization, minibatches), so we train **8 discriminators independently** and state
# the claim for the average: on the bulk of the two distributions, $x \in [-1.5, 2.5]$, the largest
# deviation from $D^*$ is below 0.05, asserted at 3 standard errors (far in the tails there are no
# samples, and the network extrapolates).
#
# The 8 runs are one `gan.MLPEnsemble`: 8 MLPs whose weights are stacked so that one batched matrix
# product evaluates them all. Its input rows are split into 8 equal chunks, one per network, so each
# network gets its own samples; Adam treats every weight separately, so this is 8 separate
# trainings at the cost of one larger one (`tests/test_gan.py` checks that).

# %%
N_D = 8                                                      # independent discriminators
g_d = seed_everything(SEED * 1000 + 1)                       # their initializations and samples
p_data_1d, p_g_1d = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(1.5, 0.7)
D_1d = gan.MLPEnsemble(N_D, 1, 1, hidden=(64, 64), activation="leaky_relu")
d_losses_1d = gan.train_discriminator(
    D_1d, lambda n: torch.randn(n, 1, generator=g_d), lambda n: 1.5 + 0.7 * torch.randn(n, 1, generator=g_d),
    num_steps=600, batch_size=N_D * 512, lr=2e-3, device=toy_device)
x_1d = torch.linspace(-4, 5, 901)[:, None]
with torch.no_grad():
    d_trained = torch.sigmoid(D_1d.split(D_1d(x_1d.repeat(N_D, 1))))[:, :, 0]   # (N_D, 901): one row per run
d_star = gan.optimal_discriminator(p_data_1d.log_prob(x_1d[:, 0]).exp(), p_g_1d.log_prob(x_1d[:, 0]).exp())
bulk = (x_1d[:, 0] >= -1.5) & (x_1d[:, 0] <= 2.5)
err_bulk = (d_trained - d_star)[:, bulk].abs().max(dim=1).values          # (N_D,)
err_mean, err_se = mean_se(err_bulk)
print(f"max |D_trained - D*| on [-1.5, 2.5], {N_D} runs: mean {err_mean:.4f} ± {err_se:.4f} (s.e.), "
      f"runs {np.round(err_bulk.numpy(), 3).tolist()}")
assert err_mean + 3 * err_se < 0.05

# %%
fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
ax.fill_between(x_1d[:, 0], p_data_1d.log_prob(x_1d[:, 0]).exp(), color="0.8", label="p_data = N(0, 1)")
ax.plot(x_1d[:, 0], p_g_1d.log_prob(x_1d[:, 0]).exp(), color="C0", label="p_g = N(1.5, 0.7^2)")
ax.plot(x_1d[:, 0], d_star, "C3", lw=2, label="D* = p_data / (p_data + p_g)")
for i in range(N_D):
    ax.plot(x_1d[:, 0], d_trained[i], "k--", lw=0.8, alpha=0.6,
            label=f"{N_D} trained D (600 Adam steps each)" if i == 0 else None)
ax.axvspan(-1.5, 2.5, color="C2", alpha=0.07, label="bulk, where the error is asserted")
ax.set_xlabel("x")
ax.legend(fontsize=8, frameon=False);

# %% [markdown]
# **The value at $D^*$ is a Jensen-Shannon divergence.** Substitute $D^*$ and write
# $M = \tfrac12(p_{\mathrm{data}} + p_g)$, so $D^* = p_{\mathrm{data}}/(2M)$ and $1 - D^* = p_g/(2M)$
# (Goodfellow et al. 2014, Theorem 1):
#
# $$V(G, D^*) = \mathbb E_{p_{\mathrm{data}}}\Big[\log \frac{p_{\mathrm{data}}}{2M}\Big]
#   + \mathbb E_{p_g}\Big[\log\frac{p_g}{2M}\Big]
#   = -\log 4 + \mathrm{KL}(p_{\mathrm{data}}\,\|\,M) + \mathrm{KL}(p_g\,\|\,M)
#   = -\log 4 + 2\,\mathrm{JSD}(p_{\mathrm{data}}\,\|\,p_g).$$
#
# So, against a perfect discriminator, the generator minimizes the JSD, whose minimum $0$ is at
# $p_g = p_{\mathrm{data}}$, where $V = -\log 4$ and $D^* \equiv 1/2$. Check by adaptive quadrature
# (`scipy.integrate.quad`): $V(G, D^*)$ and the JSD are integrated separately, for several
# generators. And the trained discriminators' values (trapezoid rule): each is below $V(G, D^*)$,
# since $D^*$ is the maximum (up to the trapezoid rule's error, below $10^{-5}$ here), and on
# average they are within 0.01 nats of it (asserted at 3 standard errors).

# %%
def quad(f, lo=-12.0, hi=12.0):
    return integrate.quad(f, lo, hi, limit=400, epsabs=1e-12)[0]


def value_and_jsd(pd, pg, logit=None):
    """V(G, D) for D = sigmoid(logit), by default the optimal logit log pd - log pg, and
    JSD(pd || pg), both by quadrature in float64; log D = -softplus(-logit), log(1 - D) = -softplus(logit)."""
    logit = logit or (lambda x: pd.logpdf(x) - pg.logpdf(x))
    log_d = lambda x: -np.logaddexp(0.0, -logit(x))
    log_1md = lambda x: -np.logaddexp(0.0, logit(x))
    value = quad(lambda x: pd.pdf(x) * log_d(x) + pg.pdf(x) * log_1md(x))
    m = lambda x: 0.5 * (pd.pdf(x) + pg.pdf(x))
    jsd = 0.5 * quad(lambda x: pd.pdf(x) * (pd.logpdf(x) - math.log(m(x)))) \
        + 0.5 * quad(lambda x: pg.pdf(x) * (pg.logpdf(x) - math.log(m(x))))
    return value, jsd


for loc, scale in [(0.0, 1.0), (1.5, 0.7), (3.0, 0.5), (0.0, 2.0)]:
    v_star, jsd = value_and_jsd(stats.norm(0, 1), stats.norm(loc, scale))
    print(f"p_g = N({loc}, {scale}^2): V(G, D*) = {v_star:+.8f}, -log 4 + 2 JSD = {-math.log(4) + 2 * jsd:+.8f}")
    assert abs(v_star - (-math.log(4) + 2 * jsd)) < 1e-8 and -1e-12 <= jsd <= math.log(2)
    if loc == 0.0 and scale == 1.0:
        assert abs(v_star + math.log(4)) < 1e-10    # p_g = p_data: V = -log 4, JSD = 0


# The trained networks are piecewise linear (LeakyReLU): integrate them by the trapezoid rule on a fine
# grid, with the same softplus forms, rather than by adaptive quadrature.
t_grid = torch.linspace(-12, 12, 48_001, dtype=torch.float64)
with torch.no_grad():
    logit_t = D_1d.split(D_1d(t_grid[:, None].float().repeat(N_D, 1)))[:, :, 0].double()   # (N_D, 48001)
p_t, q_t = p_data_1d.log_prob(t_grid).exp().double(), p_g_1d.log_prob(t_grid).exp().double()
integrand = -p_t * torch.nn.functional.softplus(-logit_t) - q_t * torch.nn.functional.softplus(logit_t)
v_trained = torch.trapezoid(integrand, t_grid, dim=-1)                      # (N_D,)
v_star, _ = value_and_jsd(stats.norm(0, 1), stats.norm(1.5, 0.7))
gap_mean, gap_se = mean_se(v_star - v_trained)
print(f"V(G, D*) = {v_star:.4f}; V(G, D_trained), {N_D} runs: {np.round(v_trained.numpy(), 4).tolist()}; "
      f"V(G, D*) - V(G, D_trained) = {gap_mean:.4f} ± {gap_se:.4f} (s.e.)")
assert (v_trained <= v_star + 1e-5).all() and gap_mean + 3 * gap_se < 0.01

# %% [markdown]
# The explorer moves the generator $p_g = \mathcal N(\text{shift}, \text{std}^2)$ against the data
# $\mathcal N(0, 1)$. Left: $D^*$ and the value (by the trapezoid rule, asserted against
# $-\log 4 + 2\,\mathrm{JSD}$ in the tests). Right: both generator losses as a
# function of $D(G(z))$, and where the generator's samples sit. Section 3 explains the right panel.

# %%
widgets.plot_optimal_discriminator();

# %%
widgets.optimal_discriminator_explorer()

# %% [markdown]
# ### Worked example: the optimal discriminator, from log densities
#
# From **log** densities, $D^*$ is one line, the logit form above. It matters in the tails: there
# both densities are $e^{-10^4} = 0$ in floating point and $p/(p+q)$ is $0/0$, while
# $\sigma(\log p - \log q)$ is exact. Check against `course_lib.gan.optimal_discriminator` and the
# naive ratio.

# %%
def optimal_discriminator(log_p_data, log_p_model):
    """D* = p_data / (p_data + p_model) from log densities (N,); returns (N,)."""
    return torch.sigmoid(log_p_data - log_p_model)


lp_tail = torch.tensor([-1e4, -2e4, -800.0, -3.0, -0.5], dtype=torch.float64)
lq_tail = torch.tensor([-1.2e4, -1.5e4, -900.0, -3.0, -2.0], dtype=torch.float64)
naive_tail = lp_tail.exp() / (lp_tail.exp() + lq_tail.exp())
d_tail = optimal_discriminator(lp_tail, lq_tail)
print(f"D* from log densities {d_tail.numpy().round(6).tolist()}; naive ratio {naive_tail.numpy().round(6).tolist()}")
assert torch.equal(d_tail, gan.optimal_discriminator(lp_tail, lq_tail, log_densities=True))
assert torch.isnan(naive_tail[:2]).all() and d_tail[3] == 0.5


# %% [markdown]
# ## 3. Saturation and the log-D trick
#
# Early in training the samples are bad, $D$ rejects them easily and $D(G(z)) \approx 0$. What does
# the generator's gradient look like there? Through the logit, with $D = \sigma(\ell)$ and
# $\sigma' = \sigma(1 - \sigma)$:
#
# $$\frac{\partial}{\partial \ell}\log\big(1 - \sigma(\ell)\big) = -\sigma(\ell) = -D, \qquad
#   \frac{\partial}{\partial \ell}\big[-\log \sigma(\ell)\big] = -(1 - \sigma(\ell)) = -(1 - D).$$
#
# The minimax generator loss $\log(1 - D(G(z)))$ has a gradient of size $D \to 0$ exactly where the
# generator most needs to learn: it **saturates** (the curve is flat where $D(G(z))$ is small). The
# **log-D trick** (Goodfellow et al. 2014, Section 3) maximizes
# $\log D(G(z))$ instead: the same fixed point ($D(G(z))$ as large as possible), but a gradient of
# size $1 - D \to 1$ on bad samples. Every gradient with respect to $\theta$ is this factor times
# $\partial \ell/\partial\theta$, by the chain rule.
#
# Check with autograd through `gan.generator_loss`, from $D(G(z)) = 10^{-6}$ to $1 - 10^{-6}$.

# %%
logits = torch.linspace(-14, 14, 57, dtype=torch.float64, requires_grad=True)
grad = {}
for saturating in (True, False):
    (g,) = torch.autograd.grad(gan.generator_loss(logits, saturating=saturating), logits)
    grad[saturating] = g * len(logits)                       # undo the batch mean
d_of_g = torch.sigmoid(logits.detach())
assert torch.allclose(grad[True], -d_of_g) and torch.allclose(grad[False], -(1 - d_of_g))
low = d_of_g < 1e-3
print(f"where D(G(z)) < 1e-3: |grad| minimax <= {grad[True][low].abs().max():.1e}, "
      f"log-D trick >= {grad[False][low].abs().min():.4f}")
assert grad[True][low].abs().max() < 1e-3 and grad[False][low].abs().min() > 0.999

# %% [markdown]
# **The game against a perfect discriminator, without any randomness.** Data
# $\mathcal N(4, 0.5^2)$; an affine generator $G(z) = a z + b$, $z \sim \mathcal N(0, 1)$, so
# $p_g = \mathcal N(b, a^2)$, starting at $\mathcal N(0, 1)$, far from the data. At every step the
# discriminator is the optimal one for the current generator, $D^* = \sigma(\log p_{\mathrm{data}} -
# \log p_g)$ (exact for two Gaussians), and the generator takes one plain gradient-descent step on
# its loss, the expectation over $z$ computed by Gauss-Hermite quadrature
# (`gan.affine_generator_vs_optimal_discriminator`): Algorithm 1 with a discriminator trained to
# optimality and infinite batches. Since $D^*$ maximizes $V$, the saturating generator's gradient is
# that of $V(G, D^*) = -\log 4 + 2\,\mathrm{JSD}$, which is flat (close to its maximum $\log 2$, within
# 2% at the start, asserted) when the two distributions barely overlap; the log-D trick's gradient is that of
# $\mathrm{KL}(p_g\,\|\,p_{\mathrm{data}}) - 2\,\mathrm{JSD}$
# ([Arjovsky and Bottou 2017](../docs/bibliography.md#arjovsky2017a), Theorem 2.5),
# whose KL term keeps pulling. Check of both identities at the start: the first step of each
# generator against central differences of the divergences (JSD by the quadrature of section 2, KL
# of two Gaussians in closed form), to $10^{-3}$ of the gradient's norm (the accuracy of the finite
# differences of a quadrature).
#
# The distance to the data is exact: the 2-Wasserstein distance between Gaussians,
# $W_2 = \sqrt{(b - 4)^2 + (|a| - 0.5)^2}$. Claims, asserted (deterministic, so up to rounding): the
# minimax generator's first gradient is less than 1% of the log-D trick's; after 300 steps
# (step size 0.05) the log-D generator has reached the data ($W_2 < 10^{-6}$) while the minimax one
# has not covered half of its initial distance.

# %%
def w2_to_data(b, s):
    """W2 between N(b, s^2) and the data N(4, 0.5^2)."""
    return math.hypot(b - 4.0, s - 0.5)


ideal = {loss: gan.affine_generator_vs_optimal_discriminator(
             4.0, 0.5, 0.0, 1.0, num_steps=300, lr=0.05, saturating=(loss == "saturating"))
         for loss in ("saturating", "non_saturating")}
first_grad = {loss: (path[1] - path[0]).norm().item() / 0.05 for loss, path in ideal.items()}
w2_ideal = {loss: w2_to_data(*path[-1].tolist()) for loss, path in ideal.items()}
w2_start = w2_to_data(0.0, 1.0)
for loss, path in ideal.items():
    print(f"{loss:>15}: first gradient norm {first_grad[loss]:.3e}; after 300 steps p_g = "
          f"N({path[-1, 0]:.4f}, {path[-1, 1]:.4f}^2), W2 to the data {w2_ideal[loss]:.2e} (start {w2_start:.3f})")
print(f"ratio of the first gradients, minimax / log-D: {first_grad['saturating'] / first_grad['non_saturating']:.2e}")
h = 1e-4
jsd_at = lambda b, s: value_and_jsd(stats.norm(4, 0.5), stats.norm(b, s))[1]
kl_at = lambda b, s: math.log(0.5 / s) + (s ** 2 + (b - 4) ** 2) / (2 * 0.5 ** 2) - 0.5   # KL(p_g || p_data)
central = lambda f: np.array([(f(h, 1) - f(-h, 1)) / (2 * h), (f(0, 1 + h) - f(0, 1 - h)) / (2 * h)])
grad_jsd, grad_kl = central(jsd_at), central(kl_at)
jsd_start = jsd_at(0.0, 1.0)
print(f"JSD(p_data || p_g) at the start: {jsd_start:.4f} nats, log 2 = {math.log(2):.4f}")
assert math.log(2) >= jsd_start > 0.98 * math.log(2)       # nearly disjoint: the JSD is flat there
for loss, want in (("saturating", 2 * grad_jsd), ("non_saturating", grad_kl - 2 * grad_jsd)):
    got = -(ideal[loss][1] - ideal[loss][0]).numpy() / 0.05          # the step is -lr * gradient
    print(f"{loss:>15}: first gradient (d/db, d/da) {np.round(got, 5).tolist()}, from the divergences "
          f"{np.round(want, 5).tolist()}")
    assert np.linalg.norm(got - want) < 1e-3 * np.linalg.norm(want)
assert first_grad["saturating"] < 0.01 * first_grad["non_saturating"]
assert w2_ideal["non_saturating"] < 1e-6 and w2_ideal["saturating"] > 0.5 * w2_start

# %% [markdown]
# ### Exercise 2: the log-D trick's loss against $D^*$
#
# **Exercise 2 (derivation, ★★☆, 3 points, graded by hand)**
#
# Against the optimal discriminator, the log-D trick's generator loss is
# $\mathbb E_{p_g}[-\log D^*(x)]$. With $M = \tfrac12(p_{\mathrm{data}} + p_g)$, show that
#
# $$\mathbb E_{p_g}\big[-\log D^*(x)\big] = \mathrm{KL}(p_g\,\|\,p_{\mathrm{data}})
#   - \mathrm{KL}(p_g\,\|\,M) + \log 2 ,$$
#
# show that $0 \le \mathrm{KL}(p_g\,\|\,M) \le \log 2$, and explain in two sentences why this loss
# keeps pulling a far-off generator towards the data, while the minimax value
# $V(G, D^*) = -\log 4 + 2\,\mathrm{JSD}$ is flat there. Write your answer in the cell below
# (Markdown and LaTeX); the cell after it checks the identity by quadrature.

# %% [markdown] nbgrader={"grade": true, "grade_id": "log_d_trick_derivation", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# **Model answer.** $D^* = p_{\mathrm{data}}/(p_{\mathrm{data}} + p_g) = p_{\mathrm{data}}/(2M)$, so
#
# $$-\log D^* = \log\frac{2M}{p_{\mathrm{data}}} = \log\frac{p_g}{p_{\mathrm{data}}} + \log 2
#   - \log\frac{p_g}{M}.$$
#
# Taking $\mathbb E_{p_g}$ term by term gives
# $\mathrm{KL}(p_g\|p_{\mathrm{data}}) + \log 2 - \mathrm{KL}(p_g\|M)$. Bounds: a KL is $\ge 0$; and
# $M \ge p_g/2$ pointwise, so $\log(p_g/M) \le \log 2$ and $\mathrm{KL}(p_g\|M) \le \log 2$. Hence
# the loss is at least $\mathrm{KL}(p_g\|p_{\mathrm{data}})$, which grows without bound as $p_g$ moves
# away (for the Gaussians above, like $(b - 4)^2 / (2 \cdot 0.5^2)$), so its gradient does not vanish;
# the minimax value $-\log 4 + 2\,\mathrm{JSD}$ is bounded by $\log 4 - \log 4 = 0$ and sits at its
# ceiling ($\mathrm{JSD} \approx \log 2$) once the supports barely overlap: flat, no gradient.
#
# **Rubric (3 points).** 1 point: $-\log D^*$ written with the densities and split into the three
# logarithms (any correct algebra). 1 point: the expectations identified as
# $\mathrm{KL}(p_g\|p_{\mathrm{data}})$, $\log 2$ and $-\mathrm{KL}(p_g\|M)$, with the bounds
# $0 \le \mathrm{KL}(p_g\|M) \le \log 2$ justified ($M \ge p_g/2$). 1 point: the conclusion, that the
# loss is $\ge \mathrm{KL}(p_g\|p_{\mathrm{data}})$, unbounded and still sloped far from the data, while
# the JSD is capped at $\log 2$. No credit for quoting Arjovsky and Bottou (2017) without the algebra;
# a gradient-level argument (their Theorem 2.5) earns full credit.
# ### END SOLUTION

# %% [markdown]
# **Check of the identity**, by quadrature in float64 for the data $\mathcal N(4, 0.5^2)$ and three
# generators (the first is this section's starting point): the left side integrates
# $p_g \cdot \mathrm{softplus}(-\ell^*)$ with the optimal logit $\ell^* = \log p_{\mathrm{data}} - \log p_g$,
# the right side uses the closed-form KL of two Gaussians and a quadrature of $\mathrm{KL}(p_g\|M)$.

# %%
p_data_3 = stats.norm(4, 0.5)
for b_g, s_g3 in [(0.0, 1.0), (2.0, 0.7), (3.8, 0.6)]:
    p_g3 = stats.norm(b_g, s_g3)
    lhs = quad(lambda x: p_g3.pdf(x) * np.logaddexp(0.0, -(p_data_3.logpdf(x) - p_g3.logpdf(x))))
    kl_g_data = math.log(0.5 / s_g3) + (s_g3 ** 2 + (b_g - 4) ** 2) / (2 * 0.5 ** 2) - 0.5
    kl_g_m = quad(lambda x: p_g3.pdf(x) * (p_g3.logpdf(x) - math.log(0.5 * (p_data_3.pdf(x) + p_g3.pdf(x)))))
    print(f"p_g = N({b_g}, {s_g3}^2): E[-log D*] = {lhs:.8f}, KL(p_g||p_data) - KL(p_g||M) + log 2 = "
          f"{kl_g_data - kl_g_m + math.log(2):.8f}, KL(p_g||M) = {kl_g_m:.4f} <= log 2")
    assert abs(lhs - (kl_g_data - kl_g_m + math.log(2))) < 1e-7 * max(1.0, lhs)
    assert -1e-12 <= kl_g_m <= math.log(2)

# %% [markdown]
# ### The log-D trick minimizes a reverse KL: it seeks modes
#
# Exercise 2's identity gives the **value** of the log-D trick's loss at $D^*$. The generator
# follows a **gradient**, taken with the discriminator held fixed: Algorithm 1 updates $G$ against
# the current $D$. So freeze $D^*$ at the current generator $\theta_0$. With
# $2\,\mathrm{JSD}(p_{\mathrm{data}}\|p_g) = \mathrm{KL}(p_{\mathrm{data}}\|M) + \mathrm{KL}(p_g\|M)$ and
# $\mathbb E_{p_{\mathrm{data}}}[\log D^*] = \mathbb E_{p_{\mathrm{data}}}[\log\frac{p_{\mathrm{data}}}{2M}]
# = \mathrm{KL}(p_{\mathrm{data}}\|M) - \log 2$, Exercise 2's identity becomes
#
# $$\mathbb E_{p_g}\big[-\log D^*(x)\big] = \mathrm{KL}(p_g\|p_{\mathrm{data}})
#   - 2\,\mathrm{JSD}(p_{\mathrm{data}}\|p_g) + 2\log 2
#   + \mathbb E_{x \sim p_{\mathrm{data}}}\big[\log D^*(x)\big].$$
#
# The last term is an expectation over the **data**, so with $D^*$ frozen it does not depend on
# $\theta$ and has no gradient. Hence Arjovsky and Bottou's Theorem 2.5:
#
# $$\nabla_\theta\,\mathbb E_{p_\theta}\big[-\log D^*_{\theta_0}(x)\big]\Big|_{\theta_0}
#   = \nabla_\theta\Big[\mathrm{KL}(p_\theta\|p_{\mathrm{data}})
#   - 2\,\mathrm{JSD}(p_{\mathrm{data}}\|p_\theta)\Big]_{\theta_0}.$$
#
# This is a statement about gradients. As a statement about values,
# "$\mathbb E_{p_g}[-\log D^*] = \mathrm{KL}(p_g\|p_{\mathrm{data}}) - 2\,\mathrm{JSD} + 2\log 2$" is
# **false**, because it drops $\mathbb E_{p_{\mathrm{data}}}[\log D^*] \in [-\log 2, 0]$. At
# $p_g = p_{\mathrm{data}}$, for example, $D^* = 1/2$ and the loss is $\log 2$, not $2\log 2$.
#
# **The bracket is a reverse KL.** Write both divergences as integrals and collect the terms:
#
# $$\mathrm{KL}(p_g\|p_{\mathrm{data}}) - 2\,\mathrm{JSD}
#   = \int p_g\log\frac{p_g}{p_{\mathrm{data}}} - \int p_{\mathrm{data}}\log\frac{p_{\mathrm{data}}}{M}
#     - \int p_g\log\frac{p_g}{M}
#   = \int (p_{\mathrm{data}} + p_g)\log\frac{M}{p_{\mathrm{data}}}
#   = 2\,\mathrm{KL}\big(M\,\big\|\,p_{\mathrm{data}}\big),$$
#
# with $M = \frac12(p_{\mathrm{data}} + p_g)$. Against an optimal discriminator, the log-D trick's
# generator descends $2\,\mathrm{KL}(M\|p_{\mathrm{data}})$ (`gan.non_saturating_objective`). This
# divergence is 0 only at $p_g = p_{\mathrm{data}}$, and the model's side comes first, as in
# notebook 00's reverse KL $\mathrm{KL}(q\|p)$. It treats the two kinds of error very differently:
#
# - **mass where there are no data** ($p_g > 0$, $p_{\mathrm{data}} \approx 0$) makes
#   $M/p_{\mathrm{data}}$ huge. The cost is unbounded ("zero forcing"): off-data samples are never
#   worth it;
# - **a data mode with no samples** has $M = p_{\mathrm{data}}/2$ there and contributes
#   $\int \frac{p_{\mathrm{data}}}{2}\log\frac12 < 0$. The cost of dropping a mode is bounded. Take two
#   far-apart modes of weight $\frac12$ and $p_g$ equal to one of them. Then
#   $M = \frac34(\text{kept}) + \frac14(\text{dropped})$ and
#   $2\,\mathrm{KL}(M\|p_{\mathrm{data}}) \to \frac32\log\frac32 - \frac12\log 2 \approx 0.26$ nats,
#   however far apart the modes are.
#
# Maximum likelihood, $\mathrm{KL}(p_{\mathrm{data}}\|p_g)$, works the other way round: a dropped
# mode costs without bound, and mass between the modes is cheap. That is what mode covering means.
#
# **Checks by quadrature** (float64; data: notebook 00's two unit-variance modes at $\pm 3$). For
# three generators (one mode, a wide Gaussian covering both, one in between):
# `gan.generator_loss_at_optimum` (trapezoid rule) against `scipy.integrate.quad` of
# $\mathbb E_{p_g}[-\log D^*]$; the value identity above, with the missing term
# $\mathbb E_{p_{\mathrm{data}}}[\log D^*]$ by `quad`; and
# $2\,\mathrm{KL}(M\|p_{\mathrm{data}}) = \mathrm{KL}(p_g\|p_{\mathrm{data}}) - 2\,\mathrm{JSD}$ (KL and
# JSD by `course_lib.divergences`). All three agree to $10^{-8}$ nats, the accuracy of the two
# quadratures. Then Theorem 2.5 on this bimodal target: the frozen-$D^*$ gradient in
# $(b, a)$ of $p_g = \mathcal N(b, a^2)$, computed by `quad` as
# $\int \partial_\theta p_g\,(-\log D^*_{\theta_0})$, against central differences of
# $2\,\mathrm{KL}(M\|p_{\mathrm{data}})$ (relative $10^{-5}$, the finite differences' accuracy).

# %%
D6 = 6.0
p_bi = toy.bimodal_1d(D6, 1.0, dtype=torch.float64)              # 0.5 N(-3, 1) + 0.5 N(3, 1)
log_pd_bi = lambda x: np.logaddexp(stats.norm.logpdf(x, -D6 / 2), stats.norm.logpdf(x, D6 / 2)) - math.log(2)


def on_grid(mean, std):
    """log p_data, log p_g on a quadrature grid covering both, for p_g = N(mean, std^2)."""
    q = toy.GaussianMixture(torch.tensor([[mean]], dtype=torch.float64), torch.tensor([std], dtype=torch.float64))
    xg = divergences.quadrature_grid(p_bi, q)
    return p_bi.log_prob(xg[:, None]), q.log_prob(xg[:, None]), xg


def quad_bi(f, mean, std):
    lo, hi = min(-D6 / 2 - 12, mean - 12 * std), max(D6 / 2 + 12, mean + 12 * std)
    return integrate.quad(f, lo, hi, limit=400, epsabs=1e-13)[0]


for mean, std in [(3.0, 1.0), (0.0, math.sqrt(10.0)), (0.5, 1.5)]:
    lp_b, lq_b, x_b = on_grid(mean, std)
    pg_b = stats.norm(mean, std)
    loss_ns = gan.generator_loss_at_optimum(lp_b, lq_b, x_b)
    loss_quad = quad_bi(lambda t: pg_b.pdf(t) * np.logaddexp(0.0, pg_b.logpdf(t) - log_pd_bi(t)), mean, std)
    kl_gd = divergences.kl_divergence_1d(lq_b, lp_b, x_b)
    jsd_b = divergences.js_divergence_1d(lp_b, lq_b, x_b)
    e_log_dstar = quad_bi(lambda t: -np.exp(log_pd_bi(t)) * np.logaddexp(0.0, pg_b.logpdf(t) - log_pd_bi(t)),
                          mean, std)                              # E_{p_data}[log D*], in [-log 2, 0]
    two_kl_m = gan.non_saturating_objective(lp_b, lq_b, x_b)
    print(f"p_g = N({mean:.2f}, {std:.2f}^2): E[-log D*] = {loss_ns:.9f} (quad {loss_quad:.9f}); "
          f"KL - 2 JSD + 2 log 2 = {kl_gd - 2 * jsd_b + 2 * math.log(2):.6f}, + E_data[log D*] ({e_log_dstar:.6f}) "
          f"= {kl_gd - 2 * jsd_b + 2 * math.log(2) + e_log_dstar:.9f}; 2 KL(M || p_data) = {two_kl_m:.6f}")
    assert abs(loss_ns - loss_quad) < 1e-8
    assert abs(loss_ns - (kl_gd - 2 * jsd_b + 2 * math.log(2) + e_log_dstar)) < 1e-8
    assert -math.log(2) <= e_log_dstar <= 0 and abs(e_log_dstar) > 1e-3   # the dropped term is not 0
    assert abs(two_kl_m - (kl_gd - 2 * jsd_b)) < 1e-8 and two_kl_m > 0

lp_b, _, x_b = on_grid(0.0, 1.0)
same = gan.generator_loss_at_optimum(lp_b, lp_b, x_b)                # p_g = p_data: D* = 1/2
print(f"p_g = p_data: E[-log D*] = {same:.12f} = log 2; the value form without E_data[log D*] would give "
      f"2 log 2 = {2 * math.log(2):.4f}")
assert abs(same - math.log(2)) < 1e-12 and abs(gan.non_saturating_objective(lp_b, lp_b, x_b)) < 1e-12

b0, a0, h_fd = 0.5, 1.5, 1e-4                                          # Theorem 2.5 on the bimodal target
pg0 = stats.norm(b0, a0)
neg_log_dstar0 = lambda t: np.logaddexp(0.0, pg0.logpdf(t) - log_pd_bi(t))   # -log D*, frozen at theta_0
frozen = np.array([quad_bi(lambda t: pg0.pdf(t) * (t - b0) / a0 ** 2 * neg_log_dstar0(t), b0, a0),
                   quad_bi(lambda t: pg0.pdf(t) * ((t - b0) ** 2 / a0 ** 3 - 1 / a0) * neg_log_dstar0(t), b0, a0)])
obj = lambda b, a: gan.non_saturating_objective(*on_grid(b, a))
central_fd = np.array([(obj(b0 + h_fd, a0) - obj(b0 - h_fd, a0)) / (2 * h_fd),
                       (obj(b0, a0 + h_fd) - obj(b0, a0 - h_fd)) / (2 * h_fd)])
print(f"gradient (d/db, d/da) against the frozen D*: {np.round(frozen, 7).tolist()}; "
      f"of 2 KL(M || p_data): {np.round(central_fd, 7).tolist()}")
assert np.allclose(central_fd, frozen, rtol=1e-5, atol=1e-8)

# %% [markdown]
# **One Gaussian fitted to two modes, four ways.** This is notebook 00's experiment: fit
# $q = \mathcal N(\mu, \sigma^2)$ to the two modes at $\pm 3$ by minimizing a divergence over
# $(\mu, \sigma)$ (`divergences.gaussian_fits`, L-BFGS-B on the quadrature). Each divergence is
# minimized from two starts, one on a mode and one at the moment-matched Gaussian that covers both
# modes, and the better of the two minima wins. The four divergences:
#
# - forward $\mathrm{KL}(p_{\mathrm{data}}\|q)$: maximum likelihood;
# - $\mathrm{JSD}$: what the minimax (saturating) generator descends against $D^*$, since
#   $V(G, D^*) = -\log 4 + 2\,\mathrm{JSD}$;
# - notebook 00's reverse $\mathrm{KL}(q\|p_{\mathrm{data}})$;
# - $2\,\mathrm{KL}(M\|p_{\mathrm{data}})$: the log-D trick.
#
# In the idealized game (the optimal discriminator at every step, infinite batches), the generator
# moves by gradient steps on its objective. So the local minima below are where it can stop.
#
# Claims, asserted (deterministic: quadrature and an optimizer, margins far above their
# tolerances):
#
# - **at separation 6**, maximum likelihood and the JSD cover both modes (best $\mu = 0$), while
#   the reverse KL and the log-D trick lock onto one mode ($\mu \approx 3$, $\sigma \approx 1$);
# - **at separation 5**, the log-D trick already locks onto a mode while notebook 00's reverse KL
#   still covers. On this target it is even more mode seeking;
# - **at separation 4.5**, covering is the log-D trick's global minimum, but a generator sitting on
#   one mode is a local minimum and stays there. This is mode collapse in its idealized form: with
#   a perfect discriminator and no sampling noise, gradient steps do not move the generator towards
#   the mode it misses.

# %%
fit_starts = lambda d: [(d / 2, 1.0), (0.0, math.sqrt(1 + d * d / 4))]   # on a mode; covering both
reverse_kl_div = lambda lp, lq, x: divergences.kl_divergence_1d(lq, lp, x)
OBJECTIVES = {"forward KL(p_data || q)": lambda lp, lq, x: divergences.kl_divergence_1d(lp, lq, x),
              "JSD (minimax generator)": divergences.js_divergence_1d,
              "reverse KL(q || p_data)": reverse_kl_div,
              "2 KL(M || p_data) (log-D trick)": gan.non_saturating_objective}
fits6 = {name: divergences.gaussian_fits(p_bi, f, fit_starts(D6)) for name, f in OBJECTIVES.items()}
best6 = {name: min(fs, key=lambda f: f.kl) for name, fs in fits6.items()}
for name, (on_mode, covering) in fits6.items():
    print(f"d = 6, {name:>32}: from a mode -> (mu, sigma) = ({on_mode.mean:+.3f}, {on_mode.std:.3f}), "
          f"{on_mode.kl:.4f} nats; from covering -> ({covering.mean:+.3f}, {covering.std:.3f}), {covering.kl:.4f} nats")
mu_fwd, sd_fwd = divergences.forward_kl_fit(p_bi)
for name in ("forward KL(p_data || q)", "JSD (minimax generator)"):            # covering
    on_mode, covering = fits6[name]      # the start on a mode ends covering, or at a worse local minimum
    assert abs(best6[name].mean) < 1e-3 and best6[name].std > 2.5 and on_mode.kl >= covering.kl
    assert abs(on_mode.mean) < 1e-3 or on_mode.kl > covering.kl + 0.05
assert abs(best6["forward KL(p_data || q)"].std - sd_fwd) < 1e-3                   # moment matching
for name in ("reverse KL(q || p_data)", "2 KL(M || p_data) (log-D trick)"):   # locked onto a mode
    on_mode, covering = fits6[name]
    assert abs(best6[name].mean - D6 / 2) < 0.05 and abs(best6[name].std - 1) < 0.05
    assert covering.kl > on_mode.kl + 0.1

p5 = toy.bimodal_1d(5.0, 1.0, dtype=torch.float64)
ns5 = divergences.gaussian_fits(p5, gan.non_saturating_objective, fit_starts(5.0))
rkl5 = divergences.gaussian_fits(p5, reverse_kl_div, fit_starts(5.0))
p45 = toy.bimodal_1d(4.5, 1.0, dtype=torch.float64)
ns45 = divergences.gaussian_fits(p45, gan.non_saturating_objective, fit_starts(4.5))
for d, name, (on_mode, covering) in [(5.0, "log-D trick", ns5), (5.0, "reverse KL", rkl5), (4.5, "log-D trick", ns45)]:
    print(f"d = {d}, {name:>11}: on a mode ({on_mode.mean:+.3f}, {on_mode.std:.3f}) {on_mode.kl:.4f} nats, "
          f"covering ({covering.mean:+.3f}, {covering.std:.3f}) {covering.kl:.4f} nats")
assert ns5[0].kl < ns5[1].kl - 0.01 and ns5[0].mean > 2.0           # d = 5: the log-D trick locks on
assert rkl5[1].kl < rkl5[0].kl - 0.01 and abs(rkl5[1].mean) < 1e-3    # ... the reverse KL still covers
assert ns45[1].kl < ns45[0].kl - 0.01 and ns45[0].mean > 1.5          # d = 4.5: covering is better, yet
assert abs(ns45[1].mean) < 1e-3                                       # the fit on a mode stays on it

# %%
widgets.plot_gaussian_fits(p_bi, best6, title="two modes at -3 and +3: the best Gaussian for each divergence");

# %% [markdown]
# **What each divergence charges for dropping a mode, and for covering the gap.** The same two
# modes at separations 4, 8 and 16, and two candidate generators: $q$ on one mode, $\mathcal N(d/2, 1)$
# (a collapsed generator), and the moment-matched $q$ that covers both modes and the gap between
# them. Once the modes no longer overlap, dropping a mode costs maximum likelihood
# $d^2/4 - \log 2$, without bound. It costs the reverse KL $\log 2$, the JSD $\frac34\log\frac43$ and
# the log-D trick $\frac32\log\frac32 - \frac12\log 2$, however far apart the modes are. These limits
# are asserted at $d = 16$, where the overlap is below $e^{-32}$, to $10^{-8}$. Covering the gap
# costs the log-D trick and the reverse KL more and more as $d$ grows (asserted). So a generator
# that has collapsed onto some modes gains little under the log-D trick by reaching for the missing
# ones, and pays for every sample in the gap on the way. Section 4 measures mode collapse in
# training.

# %%
cost_rows = []
for d in (4.0, 8.0, 16.0):
    p_d = toy.bimodal_1d(d, 1.0, dtype=torch.float64)
    for label, (mean, std) in (("drop a mode", (d / 2, 1.0)), ("cover", divergences.forward_kl_fit(p_d))):
        q = toy.GaussianMixture(torch.tensor([[mean]], dtype=torch.float64), torch.tensor([std], dtype=torch.float64))
        xg = divergences.quadrature_grid(p_d, q)
        lp_d, lq_d = p_d.log_prob(xg[:, None]), q.log_prob(xg[:, None])
        cost_rows.append((d, label, {name: f(lp_d, lq_d, xg) for name, f in OBJECTIVES.items()}))
print(f"{'d':>4}  {'q':<12}" + "".join(f"{name:>34}" for name in OBJECTIVES))
for d, label, costs in cost_rows:
    print(f"{d:4.0f}  {label:<12}" + "".join(f"{v:34.6f}" for v in costs.values()))
costs = {(d, label): c for d, label, c in cost_rows}
drop16 = costs[(16.0, "drop a mode")]
limits = {"forward KL(p_data || q)": 16.0 ** 2 / 4 - math.log(2),
          "JSD (minimax generator)": 0.75 * math.log(4 / 3),
          "reverse KL(q || p_data)": math.log(2),
          "2 KL(M || p_data) (log-D trick)": 1.5 * math.log(1.5) - 0.5 * math.log(2)}
for name, limit in limits.items():
    assert abs(drop16[name] - limit) < 1e-8, (name, drop16[name], limit)
for name in ("reverse KL(q || p_data)", "2 KL(M || p_data) (log-D trick)"):      # covering costs grow with d
    cover = [costs[(d, "cover")][name] for d in (4.0, 8.0, 16.0)]
    assert cover[0] < cover[1] < cover[2] and cover[2] > 10 * drop16[name]

# %% [markdown]
# **The same problem, trained.** Now the discriminator is a trained MLP (one Adam step per generator
# step, $k = 1$) and the expectations are minibatches of 256: Algorithm 1 as it is used. Training is
# random, so we run it **12 times per loss** (one `gan.MLPEnsemble` of 12 affine generators and one of
# 12 discriminators), 600 steps each. Both losses start from the same 12 initializations and draw the
# same random numbers, so run $i$ of one loss pairs with run $i$ of the other; the claim is about the
# paired difference of the final $W_2$. Adam divides each step by a running gradient scale, which
# hides part of the saturation, yet the minimax generator still lags behind: the mean paired
# difference is positive, asserted at 3 standard errors.

# %%
N_AFFINE = 12


def train_affine(loss, num_steps=600):
    g = seed_everything(SEED * 1000 + 2)                 # the same initializations for both losses
    x_data = 4 + 0.5 * torch.randn(20_000, 1, generator=g)
    G = gan.MLPEnsemble(N_AFFINE, 1, 1, hidden=())      # G_i(z) = a_i z + b_i
    D = gan.MLPEnsemble(N_AFFINE, 1, 1, hidden=(32, 32), activation="leaky_relu")
    b_of = lambda G: G(torch.zeros(N_AFFINE, 1))[:, 0]   # G(0) = b for each run
    hist = gan.train_gan(G, D, x_data, num_steps=num_steps, latent_dim=1, batch_size=N_AFFINE * 256,
                         loss=loss, lr_g=5e-3, lr_d=5e-3, generator=g, device=toy_device, progress=False,
                         eval_every=25, eval_fn=lambda G: {"b": b_of(G)})
    with torch.no_grad():
        b = b_of(G)
        a = G(torch.ones(N_AFFINE, 1))[:, 0] - b          # G(1) - G(0) = a
    return hist, torch.hypot(b - 4, a.abs() - 0.5)        # W2 to the data, one per run


affine = {loss: train_affine(loss) for loss in ("saturating", "non_saturating")}
w2_diff = affine["saturating"][1] - affine["non_saturating"][1]
diff_mean, diff_se = mean_se(w2_diff)
for loss, (_, w2) in affine.items():
    m, se = mean_se(w2)
    print(f"{loss:>15}: W2 to the data after 600 steps, {N_AFFINE} runs: {m:.3f} ± {se:.3f} (s.e.)")
print(f"paired difference minimax - log-D: {diff_mean:.3f} ± {diff_se:.3f} (s.e.), "
      f"{int((w2_diff > 0).sum())} of {N_AFFINE} runs farther with the minimax loss")
assert diff_mean > 3 * diff_se

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), layout="constrained")
for loss, color in (("saturating", "C3"), ("non_saturating", "C0")):
    path = ideal[loss]
    axes[0].plot(path[:, 0], color=color, label=f"{loss}: mean b of p_g")
    axes[0].plot(path[:, 1], color=color, ls="--", label=f"{loss}: std |a| of p_g")
    steps = [s for s, _ in affine[loss][0].metrics]
    bs = torch.stack([m["b"] for _, m in affine[loss][0].metrics])     # (checkpoints, N_AFFINE)
    axes[1].plot(steps, bs, color=color, lw=0.7, alpha=0.6)
    axes[1].plot([], [], color=color, label=f"{loss}: mean b of p_g, {N_AFFINE} runs")
for ax, title in zip(axes, ("against D* (plain gradient descent, deterministic)",
                            "trained D, Adam, minibatches (independent runs)")):
    ax.axhline(4, color="k", ls=":", label="data mean 4")
    ax.set_xlabel("generator step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)

# %% [markdown]
# ## 4. Mode collapse, measured with the published protocol
#
# A generator can make $D$ happy by producing a few modes well and ignoring the rest (**mode
# collapse**). The standard 2-D benchmarks are the **ring** (8 Gaussians on the unit circle, std
# 0.01) and the **grid** (25 Gaussians on $\{-4, -2, 0, 2, 4\}^2$, std 0.05), with the protocol of
# VEEGAN ([Srivastava et al. 2017](../docs/bibliography.md#srivastava2017)) and PacGAN
# ([Lin et al. 2018](../docs/bibliography.md#lin2018)):
#
# - draw **2500** samples from the trained generator;
# - a sample is **high quality** if it is within **3 standard deviations** of its nearest mode
#   (strictly: $\lVert x - \mu_k\rVert / s < 3$);
# - a mode is **captured** if it is the nearest mode of at least one high-quality sample;
# - **reverse KL** $= \sum_k \hat p_k \log(K \hat p_k)$ of the histogram $\hat p$ of high-quality
#   samples over the $K$ modes against the uniform distribution (0 when every mode gets the same share).
#
# `gan.mode_coverage(samples, means, std)` implements it. **Check on a perfect generator**: 2500
# samples of the data distribution itself. Every mode is captured; a sample is of high quality with
# probability $P(\lVert x - \mu\rVert < 3s) = 1 - e^{-9/2}$ (the distance of a 2-D isotropic Gaussian
# is Rayleigh-distributed), asserted within 5 binomial standard errors; and the reverse KL is only
# sampling noise: $2 N_{\mathrm{hq}}\,\widehat{\mathrm{KL}}$ is approximately $\chi^2$ with $K - 1$
# degrees of freedom (the G-test), asserted below its mean plus 5 standard deviations. This is the
# best a generator can score: the published tables' high-quality fractions are measured against it.

# %%
ring, grid = toy.ring_mixture(), toy.grid_mixture()
MIX, STD = {"ring": ring, "grid": grid}, {"ring": 0.01, "grid": 0.05}
hq_exact = 1 - math.exp(-9 / 2)
g_check = torch.Generator().manual_seed(SEED * 1000 + 3)
for name, mix in MIX.items():
    K = len(mix.means)
    cov = gan.mode_coverage(mix.sample(2500, generator=g_check), mix.means, STD[name])
    hq_se = math.sqrt(hq_exact * (1 - hq_exact) / 2500)
    kl_bound = (K - 1 + 5 * math.sqrt(2 * (K - 1))) / (2 * cov.counts.sum().item())
    print(f"{name}, the data itself: modes {cov.modes}/{K}, high quality {100 * cov.high_quality_fraction:.2f}% "
          f"(exact {100 * hq_exact:.2f}% ± {100 * hq_se:.2f}%), reverse KL {cov.reverse_kl:.4f} (bound {kl_bound:.4f})")
    assert cov.modes == K and abs(cov.high_quality_fraction - hq_exact) < 5 * hq_se and cov.reverse_kl < kl_bound

# %% [markdown]
# **Training runs.** Our training is far shorter than the papers' (PacGAN: 400 epochs of 100,000
# points, a 4-layer 400-unit generator, Adam lr $10^{-4}$). Here: 2-layer 64-unit MLPs, 1500
# generator steps of batch 128, Adam lr $10^{-3}$, $k = 1$. A GAN's outcome varies from run to run
# (a different initialization or minibatch order can end with a different number of modes), so one
# run is a sample, not a measurement: like PacGAN, we train **10 independent runs** per setting
# (one `gan.MLPEnsemble` each for the generators and the discriminators) and report the mean and
# its standard error. The ring is trained with both generator losses from the same 10
# initializations and random numbers, so the runs pair up.

# %%
RUNS = 10


def train_toy(mixture, loss, seed_offset, num_steps=1500, d_steps=1, lr=1e-3, betas=(0.5, 0.999)):
    """RUNS independent GANs: their samples (RUNS, 2500, 2), the training data, the discriminators, the
    generators (ensembles) and the loss history (means over the runs)."""
    g = seed_everything(SEED * 1000 + seed_offset)
    x_data = mixture.sample(20_000, generator=g)
    G = gan.MLPEnsemble(RUNS, 2, 2, hidden=(64, 64), activation="relu")
    D = gan.MLPEnsemble(RUNS, 2, 1, hidden=(64, 64), activation="leaky_relu")
    history = gan.train_gan(G, D, x_data, num_steps=num_steps, latent_dim=2, batch_size=RUNS * 128, loss=loss,
                            d_steps=d_steps, lr_g=lr, lr_d=lr, betas=betas, generator=g, device=toy_device,
                            progress=False)
    with torch.no_grad():
        samples = G.split(G(torch.randn(RUNS * 2500, 2, generator=g)))   # the protocol's 2500 per run
    return samples, x_data, D, G, history


def protocol(name, samples):
    """Modes, high-quality fraction and reverse KL of each run: three tensors (RUNS,)."""
    covs = [gan.mode_coverage(s, MIX[name].means, STD[name]) for s in samples]
    return {key: torch.tensor([float(getattr(c, key)) for c in covs], dtype=torch.float64)
            for key in ("modes", "high_quality_fraction", "reverse_kl")}


def mean_se_text(v, scale=1.0, digits=2):
    """'mean±se' over the runs with a finite value (the reverse KL is inf without high-quality samples)."""
    finite = v[torch.isfinite(v)]
    if len(finite) < 2:
        return "-"
    m, se = mean_se(finite * scale)
    return f"{m:.{digits}f}±{se:.{digits}f}" + (f" ({len(v) - len(finite)} inf)" if len(finite) < len(v) else "")


runs = {("ring", "non_saturating"): train_toy(ring, "non_saturating", 10),
        ("ring", "saturating"): train_toy(ring, "saturating", 10),
        ("grid", "non_saturating"): train_toy(grid, "non_saturating", 20)}
results = {key: protocol(key[0], samples) for key, (samples, *_) in runs.items()}
for (name, loss), r in results.items():
    print(f"{name} {loss:>15}: modes {mean_se_text(r['modes'], digits=1)} (runs: "
          f"{r['modes'].int().tolist()}), high quality % {mean_se_text(r['high_quality_fraction'], 100, 1)}, "
          f"reverse KL {mean_se_text(r['reverse_kl'])}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4), layout="constrained")
for ax, ((name, loss), (s, xd, *_)) in zip(axes, runs.items()):
    lim = (-1.5, 1.5) if name == "ring" else (-5.5, 5.5)
    plotting.scatter_samples(xd[:2500], ax=ax, color="0.6", s=1, label="data")
    plotting.scatter_samples(s[0], ax=ax, color="C3", s=1, label="GAN samples", xlim=lim, ylim=lim,
                             title=f"{name}, {loss}, run 1 of {RUNS}: {int(results[(name, loss)]['modes'][0])} modes")
    ax.set_aspect("equal")

# %% [markdown]
# What the runs show at this budget, each asserted below (the numbers are in the printout above and
# in the table of section 5):
#
# - **No complete collapse.** On average the runs capture several modes, more than VEEGAN's GAN row
#   (1 ring mode, 3.3 grid modes): the mean minus 3 standard errors is above those values. Different
#   implementations of "a GAN" differ a lot; PacGAN's GAN row is far better than VEEGAN's.
# - **Few samples of high quality.** The high-quality fraction is below PacGAN's GAN row (98.2% on the
#   ring, 94.8% on the grid) by more than 5 standard errors: a ring mode's 3-std disc has radius 0.03,
#   a small target for 1500 steps of training.
# - **The log-D trick buys no coverage.** The non-saturating loss does not capture more ring modes than
#   the saturating one: their mean paired difference is at most 3 standard errors above 0. Against
#   $D^*$ its gradient is that of $\mathrm{KL}(p_g\,\|\,p_{\mathrm{data}}) - 2\,\mathrm{JSD}$ (section 3),
#   and the reverse KL is mode-seeking (notebook 00); it was designed against the stall of section 3,
#   which needs a far-off start and a confident discriminator. Here the generator starts *inside* the
#   ring, close to the data.

# %%
VEEGAN_GAN_MODES = {"ring": 1.0, "grid": 3.3}
PACGAN_GAN_HQ = {"ring": 0.982, "grid": 0.948}
for (name, loss), r in results.items():
    m, se = mean_se(r["modes"])
    hq, hq_se = mean_se(r["high_quality_fraction"])
    assert m - 3 * se > VEEGAN_GAN_MODES[name], (name, loss, m, se)
    assert hq + 5 * hq_se < PACGAN_GAN_HQ[name], (name, loss, hq, hq_se)
paired = results[("ring", "non_saturating")]["modes"] - results[("ring", "saturating")]["modes"]
pm, pse = mean_se(paired)
print(f"ring, modes non-saturating - saturating (paired runs): {pm:+.2f} ± {pse:.2f} (s.e.)")
assert pm <= 3 * pse

# %% [markdown]
# ### The loss curves, and the trained discriminator against $D^*$
#
# **Loss curves.** A GAN's losses are the payoffs of a game, not an error that training drives
# to 0. A discriminator that cannot tell data from samples ($D = 1/2$, logit 0) has
# $\mathcal L_D = \log 4$ and gives the generator $\log 2$ (log-D trick) or $-\log 2$ (minimax).
# The curves below are those of the three settings above. Each value is the mean over the 10 runs
# of an ensemble, drawn with a 50-step moving average. Read them with care. Section 4's runs end
# with few samples of high quality. Below, on fresh samples, the trained discriminator's loss is
# under $\log 4$, and a plug-in estimate of $D^*$ scores far lower: the trained $D$, and so the
# loss curve, says little about how far the samples are from the data. A GAN's loss curve does not
# measure sample quality.
#
# **The trained discriminator against $D^*$.** Here $p_{\mathrm{data}}$ is known exactly and $p_g$
# is not: the generator is an MLP. We estimate $p_g$ by a Gaussian kernel density estimate
# (`gan.kde_log_prob`) built from 2000 of each run's samples. Its bandwidth is the one, from a
# geometric ladder, that gives 500 more samples the highest log-likelihood. The plug-in
# $\hat D^* = \sigma(\log p_{\mathrm{data}} - \log\hat p_g)$ is then itself a discriminator, and the
# two are compared by what any discriminator is trained on: the loss $\mathcal L_D$ on fresh samples
# (1000 data points and 1000 generator samples per run, not used above). For every fixed
# discriminator the expected loss is at least that of $D^*$,
# $\log 4 - 2\,\mathrm{JSD}(p_{\mathrm{data}}\|p_g)$ (section 2). So each loss gives, up to sampling
# noise, a lower bound on the JSD, $(\log 4 - \mathcal L_D)/2$.
#
# Claims, over the 10 runs of the ring and of the grid (non-saturating), each asserted at 3
# standard errors:
#
# - the trained $D$ beats chance: $\mathcal L_D < \log 4$;
# - it is far from optimal: the plug-in $\hat D^*$, a crude estimate, has a loss lower by more than
#   0.3 nats (paired over the runs).
#
# The printout also gives the mean of $D$ and of $\hat D^*$ on the data points. The discriminator
# gets one Adam step per generator step and tracks a moving target. The analysis of sections 2-3
# assumes $D = D^*$; these runs are far from that regime.

# %%
widgets.plot_gan_losses({f"{name}, {loss}": runs[(name, loss)][4] for name, loss in runs},
                        saturating_labels=["ring, saturating"]);

# %%
BANDWIDTHS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
LOG4 = math.log(4)


def discriminator_vs_plugin(name):
    """Per run: L_D of the trained D and of the plug-in D* on fresh samples; the bandwidths; the KDEs."""
    samples, _, D, G, _ = runs[(name, "non_saturating")]
    g_eval = torch.Generator().manual_seed(SEED * 1000 + 5)
    with torch.no_grad():
        fresh = G.split(G(torch.randn(RUNS * 1000, 2, generator=g_eval)))          # (RUNS, 1000, 2)
        real = MIX[name].sample(RUNS * 1000, generator=g_eval).reshape(RUNS, 1000, 2)
        pts = torch.cat([real, fresh], dim=1)                                        # (RUNS, 2000, 2)
        logit_d = D.split(D(pts.reshape(-1, 2)))[:, :, 0]                            # (RUNS, 2000)
    out = {"trained": [], "plug-in": [], "bandwidth": [], "d_real": [], "dstar_real": []}
    for i in range(RUNS):
        kde_pts, held_out = samples[i, :2000], samples[i, 2000:]
        h = max(BANDWIDTHS, key=lambda b: gan.kde_log_prob(held_out, kde_pts, b).mean().item())
        logit_star = MIX[name].log_prob(pts[i]) - gan.kde_log_prob(pts[i], kde_pts, h)   # log p_data - log p_g
        out["trained"].append(gan.discriminator_loss(logit_d[i, :1000], logit_d[i, 1000:]).item())
        out["plug-in"].append(gan.discriminator_loss(logit_star[:1000], logit_star[1000:]).item())
        out["bandwidth"].append(h)
        out["d_real"].append(torch.sigmoid(logit_d[i, :1000]).mean().item())
        out["dstar_real"].append(torch.sigmoid(logit_star[:1000]).mean().item())
    return out


vs_plugin = {name: discriminator_vs_plugin(name) for name in ("ring", "grid")}
for name, o in vs_plugin.items():
    lt, lt_se = mean_se(o["trained"])
    lk, lk_se = mean_se(o["plug-in"])
    gap, gap_se = mean_se(torch.tensor(o["trained"]) - torch.tensor(o["plug-in"]))
    print(f"{name}: L_D on fresh samples, trained D {lt:.3f} ± {lt_se:.3f}, plug-in D* {lk:.3f} ± {lk_se:.3f} "
          f"(log 4 = {LOG4:.3f}); paired gap {gap:.3f} ± {gap_se:.3f}; JSD >= {(LOG4 - lt) / 2:.3f} (trained), "
          f">= {(LOG4 - lk) / 2:.3f} (plug-in); mean D on data {np.mean(o['d_real']):.3f}, "
          f"D* {np.mean(o['dstar_real']):.3f}; bandwidths {sorted(set(o['bandwidth']))}")
    assert lt + 3 * lt_se < LOG4
    assert gap - 3 * gap_se > 0.3

# %%
_, x_grid_data, D_grid, G_grid, _ = runs[("grid", "non_saturating")]
side = torch.linspace(-5.5, 5.5, 160)
mesh = torch.cartesian_prod(side, side)[:, [1, 0]]                  # row-major: x varies fastest
s_grid = runs[("grid", "non_saturating")][0][0]                     # run 1's 2500 samples
h1 = vs_plugin["grid"]["bandwidth"][0]
with torch.no_grad():
    d_map = torch.sigmoid(D_grid.member(0)(mesh))[:, 0]
dstar_map = gan.optimal_discriminator(grid.log_prob(mesh), gan.kde_log_prob(mesh, s_grid[:2000], h1),
                                      log_densities=True)
widgets.plot_discriminator_vs_optimal(
    mesh, d_map, dstar_map, data=x_grid_data[:1000], samples=s_grid[:1000],
    titles=(f"grid, run 1: trained D (L_D {vs_plugin['grid']['trained'][0]:.2f} nats)",
            f"plug-in D* (KDE of p_g, bandwidth {h1}; L_D {vs_plugin['grid']['plug-in'][0]:.2f} nats)"));

# %% [markdown]
# ### Exercise 3: the high-quality test of the protocol
#
# **Exercise 3 (implementation, ★☆☆, 2 points)**
#
# Implement `high_quality_counts(samples, means, std, threshold=3.0)` for samples `(N, 2)`, mode
# centres `(K, 2)` and a number `std`, returning a long tensor `(K,)`: the number of high-quality
# samples (distance to the nearest mode, in units of `std`, **strictly** below `threshold`) whose
# nearest mode is $k$. `torch.cdist` and `torch.bincount(..., minlength=K)` help. The check compares
# with `gan.mode_coverage(...).counts`, including samples exactly at 3 std (not counted).

# %% nbgrader={"grade": false, "grade_id": "high_quality_counts", "locked": false, "schema_version": 3, "solution": true, "task": false}
def high_quality_counts(samples, means, std, threshold=3.0):
    """High-quality samples per mode: long tensor (K,)."""
    ### BEGIN SOLUTION
    dist = torch.cdist(samples, means) / std                 # (N, K), in standard deviations
    best, nearest = dist.min(dim=1)
    return torch.bincount(nearest[best < threshold], minlength=means.shape[0])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "high_quality_counts_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("high_quality_counts", high_quality_counts)


# %% [markdown]
# ## 5. A stabler objective: WGAN-GP
#
# Goodfellow et al.'s JSD is not the only choice: other divergences give other losses, some more
# stable. When $p_g$ and $p_{\mathrm{data}}$ barely overlap, the JSD is stuck near $\log 2$
# (notebook 00) and $D^*$ is nearly a step function: little signal for $G$. The Wasserstein-1
# distance keeps decreasing as the supports approach each other. By Kantorovich-Rubinstein duality
#
# $$W_1(p_{\mathrm{data}}, p_g)
#   = \sup_{\lVert f\rVert_L \le 1} \mathbb E_{p_{\mathrm{data}}}[f(x)] - \mathbb E_{p_g}[f(x)],$$
#
# so a **critic** $f$ (no sigmoid) maximizes $\mathbb E[f(x)] - \mathbb E[f(G(z))]$ and $G$
# minimizes $-\mathbb E[f(G(z))]$ ([Arjovsky et al. 2017](../docs/bibliography.md#arjovsky2017b)).
# WGAN-GP ([Gulrajani et al. 2017](../docs/bibliography.md#gulrajani2017), eq. 3)
# enforces the 1-Lipschitz constraint softly, with a penalty $\lambda\,\mathbb E_{\hat x}
# [(\lVert\nabla_{\hat x} f(\hat x)\rVert - 1)^2]$ at random interpolates
# $\hat x = u x + (1 - u) G(z)$. Gulrajani et al.'s Algorithm 1 uses $\lambda = 10$,
# $n_{\mathrm{critic}} = 5$ critic steps per generator step, and Adam with learning rate
# $\alpha = 10^{-4}$ and $(\beta_1, \beta_2) = (0, 0.9)$. We keep $\lambda = 10$ and
# $n_{\mathrm{critic}} = 5$; the optimizer settings are **the course's choice, not the paper's**: the
# learning rate $10^{-3}$ of every toy run here (our runs are 1500 critic steps, not the paper's
# hundreds of thousands) and $(\beta_1, \beta_2) = (0.5, 0.9)$, i.e. DCGAN's $\beta_1 = 0.5$
# (Radford et al. 2016) with the paper's $\beta_2 = 0.9$. Both differ from the paper's
# ($\alpha$ 10 times larger, $\beta_1 = 0.5$ instead of 0).
#
# Check of the critic loss on a case with a known answer: for $p_{\mathrm{data}} = \delta_0$ and
# $p_g = \delta_c$, $W_1 = |c|$ and the best 1-Lipschitz critic is linear, $f(x) = -\mathrm{sign}(c)\,x$,
# whose gradient has norm 1 everywhere: the penalty vanishes and the critic loss is $-W_1$.

# %%
c = 2.5
critic = lambda x: -math.copysign(1.0, c) * x[:, 0]
real_pt, fake_pt = torch.zeros(64, 1, dtype=torch.float64), torch.full((64, 1), c, dtype=torch.float64)
wloss = gan.wgan_critic_loss(critic(real_pt), critic(fake_pt))
gp = gan.gradient_penalty(critic, real_pt, fake_pt, generator=gen)
print(f"critic loss {wloss.item():+.4f} (= -W1 = {-abs(c)}), gradient penalty {gp.item():.1e}")
assert abs(wloss.item() + abs(c)) < 1e-12 and gp.item() < 1e-20

# %% [markdown]
# ### Exercise 4: one WGAN-GP critic loss, penalty included
#
# **Exercise 4 (multi-step, ★★★, 5 points)**
#
# Implement `wgan_gp_critic_loss(critic, real, fake, u, lam=10.0)`: the loss the critic descends at
# one step of Gulrajani et al.'s Algorithm 1 (lines 4-7). `critic` maps `(N, D)` to scores `(N, 1)`
# or `(N,)`; `real` and `fake` are `(N, D)`; `u` `(N, 1)` holds the interpolation weights (given,
# so that the result is deterministic). Return the tuple `(loss, wasserstein_estimate, penalty)`
# of scalars:
#
# 1. interpolates $\hat x_i = u_i x_i + (1 - u_i)\tilde x_i$ from the **detached** real and fake points,
#    made a leaf that requires a gradient;
# 2. $\nabla_{\hat x} f(\hat x_i)$ for every $i$ at once with `torch.autograd.grad` of the summed
#    scores, with `create_graph=True`: the penalty must itself be differentiable with respect to the
#    critic's weights, or the critic's optimizer never sees it;
# 3. `penalty` $= \frac1N\sum_i (\lVert\nabla_{\hat x} f(\hat x_i)\rVert_2 - 1)^2$;
# 4. `wasserstein_estimate` $= \frac1N\sum_i f(x_i) - \frac1N\sum_i f(\tilde x_i)$ (the critic's estimate
#    of $W_1$);
# 5. `loss` $= -$`wasserstein_estimate` $+\ \lambda\,$`penalty`.
#
# The check compares the three values with `course_lib.gan` on small float64 critics (a unit-norm
# linear critic has penalty exactly 0), with $u \in \{0, 1\}$ among the weights, and requires the
# penalty to carry a gradient. The grader also runs tests you do not see.

# %% nbgrader={"grade": false, "grade_id": "wgan_gp_critic_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def wgan_gp_critic_loss(critic, real, fake, u, lam=10.0):
    """(loss, wasserstein_estimate, penalty), three scalars; real, fake (N, D), u (N, 1)."""
    ### BEGIN SOLUTION
    real, fake = real.detach(), fake.detach()
    x_hat = (u * real + (1 - u) * fake).requires_grad_(True)        # interpolates, a leaf
    scores_hat = critic(x_hat).reshape(-1)                          # (N,)
    (grad,) = torch.autograd.grad(scores_hat.sum(), x_hat, create_graph=True)
    penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
    wasserstein_estimate = critic(real).reshape(-1).mean() - critic(fake).reshape(-1).mean()
    loss = -wasserstein_estimate + lam * penalty
    return loss, wasserstein_estimate, penalty
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "wgan_gp_critic_loss_check", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
grading.check("wgan_gp_critic_loss", wgan_gp_critic_loss)
### BEGIN HIDDEN TESTS
from course_lib.exercises.gan import SmoothCritic, wgan_gp_critic_loss_reference  # noqa: E402

grading.check("wgan_gp_critic_loss", wgan_gp_critic_loss, seed=500, verbose=False)      # other inputs
g_h = torch.Generator().manual_seed(SEED * 1000 + 904)
critic_h = SmoothCritic(2, 16, g_h)
real_h = torch.randn(64, 2, generator=g_h, dtype=torch.float64)
fake_h = 1 + torch.randn(64, 2, generator=g_h, dtype=torch.float64)
u_h = torch.rand(64, 1, generator=g_h, dtype=torch.float64)
grads_h = [torch.autograd.grad(f(critic_h, real_h, fake_h, u_h)[0], list(critic_h.parameters()))
           for f in (wgan_gp_critic_loss, wgan_gp_critic_loss_reference)]
for got_h, want_h in zip(*grads_h):       # the gradient the critic's optimizer sees, penalty included
    torch.testing.assert_close(got_h, want_h, rtol=1e-8, atol=1e-10)
# trained: data delta_0, samples delta_2, a linear critic f(x) = w x; the loss 2 w + 10 (|w| - 1)^2
# is smallest at w = -1.1 (a penalty without gradient would let w run off to -infinity)
lin_h = torch.nn.Linear(1, 1, bias=False).double()
with torch.no_grad():
    lin_h.weight.fill_(-0.5)
sgd_h = torch.optim.SGD(lin_h.parameters(), lr=0.02)
for _ in range(100):
    loss_h = wgan_gp_critic_loss(lin_h, torch.zeros(32, 1, dtype=torch.float64),
                                 torch.full((32, 1), 2.0, dtype=torch.float64), u_h[:32])[0]
    sgd_h.zero_grad()
    loss_h.backward()
    sgd_h.step()
assert abs(lin_h.weight.item() + 1.1) < 1e-6, f"trained linear critic: w = {lin_h.weight.item():.4f}, expected -1.1"
### END HIDDEN TESTS

# %% [markdown]
# WGAN-GP on the grid (the wider modes, std 0.05), same networks, same metrics, 10 runs from the same
# initializations as the non-saturating grid runs above (paired). It runs 300 generator steps of
# $k = 5$ critic steps each, so it sees as many critic steps (1500) as the GANs above saw
# discriminator steps. Its advertised gain is *stability* (a loss that keeps pointing towards the
# data), not speed.
#
# ### Exercise 5: predict, then run
#
# **Exercise 5 (prediction, ★☆☆, 1 point)**
#
# Before running the next cell, predict what WGAN-GP will do on the grid, compared with the paired
# non-saturating GAN runs above (10 runs each, mean over the runs):
#
# - **a**: clearly more modes (the paired difference more than 3 standard errors above 0), and more
#   than half of the samples of high quality;
# - **b**: clearly more modes, but fewer than 10% of the samples of high quality;
# - **c**: not clearly more modes, and fewer than 10% of the samples of high quality;
# - **d**: not clearly more modes, but more than half of the samples of high quality.
#
# Set `prediction` to one letter; the cell after the run computes which one happened.

# %% nbgrader={"grade": false, "grade_id": "wgan_gp_prediction", "locked": false, "schema_version": 3, "solution": true, "task": false}
prediction = None  # one of "a", "b", "c", "d"
### BEGIN SOLUTION
prediction = "c"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "wgan_gp_prediction_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
grading.check_prediction(prediction, "abcd")
### BEGIN HIDDEN TESTS
assert prediction == "c", "the runs below: not clearly more modes, under 10% of the samples of high quality"
### END HIDDEN TESTS

# %%
# the course's Adam settings (lr 1e-3, betas (0.5, 0.9)); Gulrajani et al. use lr 1e-4, betas (0, 0.9)
runs[("grid", "wgan-gp")] = train_toy(grid, "wgan-gp", 20, num_steps=300, d_steps=5, betas=(0.5, 0.9))
results[("grid", "wgan-gp")] = protocol("grid", runs[("grid", "wgan-gp")][0])
r = results[("grid", "wgan-gp")]
print(f"grid wgan-gp: modes {mean_se_text(r['modes'], digits=1)} (runs: {r['modes'].int().tolist()}), "
      f"high quality % {mean_se_text(r['high_quality_fraction'], 100, 1)}, reverse KL {mean_se_text(r['reverse_kl'])}")

# %% [markdown]
# **The answer.** Computed from the runs (whatever was predicted): "clearly more modes" means a
# paired difference more than 3 standard errors above 0.

# %%
more_modes_mean, more_modes_se = mean_se(results[("grid", "wgan-gp")]["modes"]
                                         - results[("grid", "non_saturating")]["modes"])
hq_wgan = results[("grid", "wgan-gp")]["high_quality_fraction"].mean().item()
clearly_more = more_modes_mean > 3 * more_modes_se
if hq_wgan > 0.5:
    outcome = "a" if clearly_more else "d"
elif hq_wgan < 0.1:
    outcome = "b" if clearly_more else "c"
else:
    outcome = "none of the four (between 10% and 50% of high quality)"
print(f"modes, WGAN-GP - non-saturating (paired): {more_modes_mean:+.2f} ± {more_modes_se:.2f} (s.e.); "
      f"high-quality fraction {100 * hq_wgan:.1f}%: answer {outcome}")

# %% [markdown]
# **All the runs beside the published tables.** VEEGAN's Table 1 (Srivastava et al. 2017) and PacGAN's
# Table 1 (Lin et al. 2018, 10 trials, mean ± standard error) use the same protocol with far
# longer training; ours are 10 runs of a few seconds each on a CPU, mean ± standard error (the reverse
# KL over the runs with at least one high-quality sample; "inf" counts the others). The first row is
# the perfect generator's expected score.

# %%
published = [  # (method, ring modes, ring HQ %, ring rev. KL, grid modes, grid HQ %, grid rev. KL)
    ("the data itself (exact)", "8", f"{100 * hq_exact:.1f}", "0", "25", f"{100 * hq_exact:.1f}", "0"),
    ("GAN (VEEGAN Table 1)", "1", "99.3", "-", "3.3", "0.5", "-"),
    ("Unrolled GAN (VEEGAN Table 1)", "7.6", "35.6", "-", "23.6", "16", "-"),
    ("VEEGAN (VEEGAN Table 1)", "8", "52.9", "-", "24.6", "40", "-"),
    ("GAN (PacGAN Table 1)", "6.3±0.5", "98.2±0.2", "0.45±0.09", "17.3±0.8", "94.8±0.7", "0.70±0.07"),
    ("PacGAN4 (PacGAN Table 1)", "7.8±0.1", "95.9±1.4", "0.07±0.02", "24.8±0.2", "93.6±0.6", "0.04±0.01"),
]


def ours(loss):
    row = [f"this notebook: {loss}"]
    for name in ("ring", "grid"):
        if (name, loss) in results:
            r = results[(name, loss)]
            row += [mean_se_text(r["modes"], digits=1), mean_se_text(r["high_quality_fraction"], 100, 1),
                    mean_se_text(r["reverse_kl"])]
        else:
            row += ["-"] * 3
    return tuple(row)


table = published + [ours(loss) for loss in ("non_saturating", "saturating", "wgan-gp")]
header = ("method", "ring modes /8", "ring HQ %", "ring rev KL", "grid modes /25", "grid HQ %", "grid rev KL")
widths = [max(len(str(r[i])) for r in table + [header]) for i in range(len(header))]
for r in [header] + table:
    print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))

# %%
s_w, x_w, critic_w, *_ = runs[("grid", "wgan-gp")]
fig, ax = plt.subplots(figsize=(4.2, 4.2), layout="constrained")
plotting.scatter_samples(x_w[:2500], ax=ax, color="0.6", s=1)
plotting.scatter_samples(s_w[0], ax=ax, color="C2", s=1, xlim=(-5.5, 5.5), ylim=(-5.5, 5.5),
                         title=f"grid, WGAN-GP, run 1 of {RUNS}: {int(results[('grid', 'wgan-gp')]['modes'][0])} modes")
ax.set_aspect("equal");

# %% [markdown]
# What this budget shows, honestly (asserted below): WGAN-GP is **not** better than the
# non-saturating GAN after 1500 critic steps (it does not capture more grid modes: paired difference
# at most 3 standard errors above 0), and with both, most samples are spread between the modes:
# fewer than 1 in 10 is of high quality (mean plus 5 standard errors), against 94.8% in PacGAN's
# GAN row. WGAN-GP's promise is about long runs: the critic's value tracks $W_1$ and does not
# saturate. What we can check is the constraint itself, at random interpolates $\hat x$ between
# data and samples, as in the penalty:
#
# - the trained critic's slope is held near 1: its median gradient norm (per run, averaged over the
#   runs) is within 0.2 of 1, and at more than 85% of the interpolates the norm is within 0.5 of 1
#   (both at 3 standard errors);
# - nothing constrains the slope of a GAN discriminator's logit, and it is spread out: its norm is
#   within 0.5 of 1 at fewer than 65% of the interpolates (at 3 standard errors).

# %%
def grad_norms(f, x_real, x_fake):
    """|grad_x f| at random interpolates, per run: x_real (2500, 2), x_fake (RUNS, 2500, 2) -> (RUNS, 2500)."""
    g_u = torch.Generator().manual_seed(SEED * 1000 + 4)
    x_real = x_real[None].expand_as(x_fake)
    u = torch.rand(*x_fake.shape[:2], 1, generator=g_u)
    x_hat = (u * x_real + (1 - u) * x_fake).reshape(-1, 2).requires_grad_(True)
    (g,) = torch.autograd.grad(f(x_hat).sum(), x_hat)          # runs are independent: row i's gradient
    return g.norm(dim=1).reshape(x_fake.shape[:2])


s_g, x_g, disc_g, *_ = runs[("grid", "non_saturating")]
norms = {"WGAN-GP critic": grad_norms(critic_w, x_w[:2500], s_w),
         "GAN discriminator logit": grad_norms(disc_g, x_g[:2500], s_g)}
slope = {}
for name, n in norms.items():
    slope[name] = {"median": mean_se(n.median(dim=1).values),
                   "near 1": mean_se(((n - 1).abs() < 0.5).double().mean(dim=1))}
    (md, md_se), (fr, fr_se) = slope[name]["median"], slope[name]["near 1"]
    print(f"{name:>23}: median gradient norm {md:.3f} ± {md_se:.3f}, fraction within 0.5 of 1: "
          f"{fr:.3f} ± {fr_se:.3f} (mean ± s.e. over {RUNS} runs)")
paired_w = results[("grid", "wgan-gp")]["modes"] - results[("grid", "non_saturating")]["modes"]
pwm, pw_se = mean_se(paired_w)
print(f"grid, modes WGAN-GP - non-saturating (paired runs): {pwm:+.2f} ± {pw_se:.2f} (s.e.)")
assert pwm <= 3 * pw_se
for loss in ("non_saturating", "wgan-gp"):
    hq, hq_se = mean_se(results[("grid", loss)]["high_quality_fraction"])
    assert hq + 5 * hq_se < 0.1, (loss, hq, hq_se)
(md, md_se), (fr, fr_se) = slope["WGAN-GP critic"]["median"], slope["WGAN-GP critic"]["near 1"]
assert abs(md - 1) + 3 * md_se < 0.2 and fr - 3 * fr_se > 0.85
fr, fr_se = slope["GAN discriminator logit"]["near 1"]
assert fr + 3 * fr_se < 0.65

# %% [markdown]
# ### Another loss: least squares (LSGAN)
#
# Another of the "better loss functions" is LSGAN ([Mao et al. 2017](../docs/bibliography.md#mao2017)).
# (Some slide decks attribute it to Zhu 2017; the paper is Mao et al.'s.) The discriminator outputs a
# score with no sigmoid and regresses it to $b$ on data and to $a$ on samples. The generator pulls
# its samples' scores towards $c$ (eq. 2; `gan.lsgan_discriminator_loss`, `gan.lsgan_generator_loss`):
#
# $$\min_D\ \tfrac12\,\mathbb E_{p_{\mathrm{data}}}\big[(D(x) - b)^2\big]
#   + \tfrac12\,\mathbb E_{p_z}\big[(D(G(z)) - a)^2\big], \qquad
#   \min_G\ \tfrac12\,\mathbb E_{p_z}\big[(D(G(z)) - c)^2\big].$$
#
# **Optimal discriminator.** At each $x$ the discriminator's loss
# $\tfrac12[p_{\mathrm{data}}(D - b)^2 + p_g (D - a)^2]$ is a parabola in $D$. Its minimum is at
#
# $$D^*(x) = \frac{b\,p_{\mathrm{data}}(x) + a\,p_g(x)}{p_{\mathrm{data}}(x) + p_g(x)}$$
#
# (`gan.lsgan_optimal_discriminator`).
#
# **The generator's objective at $D^*$ is a Pearson $\chi^2$.** Mao et al. add
# $\tfrac12\mathbb E_{p_{\mathrm{data}}}[(D(x) - c)^2]$ to the generator's loss. The term has no
# gradient through $G$. Then $C(G) = \tfrac12\int (p_{\mathrm{data}} + p_g)(D^* - c)^2$, and
# $D^* - c = \frac{(b - c)(p_{\mathrm{data}} + p_g) - (b - a)\,p_g}{p_{\mathrm{data}} + p_g}$. For
# $b - c = 1$ and $b - a = 2$:
#
# $$C(G) = \frac12\int\frac{\big(2p_g - (p_{\mathrm{data}} + p_g)\big)^2}{p_{\mathrm{data}} + p_g}\,dx
#   = \tfrac12\,\chi^2_{\mathrm{Pearson}}\big(p_{\mathrm{data}} + p_g\,\big\|\,2p_g\big),$$
#
# in Mao et al.'s notation $\chi^2_{\mathrm{Pearson}}(P\|Q) = \int (Q - P)^2/P$. It is 0 exactly when
# $p_g = p_{\mathrm{data}}$, and at most 1. The course's defaults $a = -1$, $b = 1$, $c = 0$ satisfy
# both conditions.
#
# **Checks** (float64, data $\mathcal N(0, 1)$, generators as in section 2):
#
# - $D^*$ is the minimum. Perturbing it by $\varepsilon h$ raises the discriminator's loss by exactly
#   $\tfrac12\varepsilon^2\int(p_{\mathrm{data}} + p_g)h^2$, with no first-order term (three functions
#   $h$, $\varepsilon = \pm 0.1$, to $10^{-10}$);
# - `gan.lsgan_generator_value` (from the definition, trapezoid rule) against
#   $\tfrac12\int (p_g - p_{\mathrm{data}})^2/(p_{\mathrm{data}} + p_g)$ by `scipy.integrate.quad`, for
#   two target triples $(a, b, c)$ that satisfy the conditions, to $10^{-8}$.

# %%
x_ls = torch.linspace(-14.0, 14.0, 28_001, dtype=torch.float64)       # covers every density below
lp_ls = stats.norm(0, 1).logpdf(x_ls.numpy())
for loc, scale in [(1.5, 0.7), (3.0, 0.5), (0.0, 2.0), (0.0, 1.0)]:
    lq_ls = stats.norm(loc, scale).logpdf(x_ls.numpy())
    p_ls, q_ls = torch.from_numpy(np.exp(lp_ls)), torch.from_numpy(np.exp(lq_ls))
    d_ls = gan.lsgan_optimal_discriminator(torch.from_numpy(lp_ls), torch.from_numpy(lq_ls), log_densities=True)
    d_loss_at = lambda d: 0.5 * torch.trapezoid(p_ls * (d - 1.0) ** 2 + q_ls * (d + 1.0) ** 2, x_ls)   # a=-1, b=1
    for h_ls in (torch.ones_like(x_ls), x_ls, torch.sin(3 * x_ls)):
        for eps in (0.1, -0.1):
            rise = d_loss_at(d_ls + eps * h_ls) - d_loss_at(d_ls)
            assert abs(rise - 0.5 * eps ** 2 * torch.trapezoid((p_ls + q_ls) * h_ls ** 2, x_ls)) < 1e-10
    pd_ls, pg_ls = stats.norm(0, 1), stats.norm(loc, scale)
    chi2_half = 0.5 * integrate.quad(
        lambda t: (pg_ls.pdf(t) - pd_ls.pdf(t)) ** 2 / (pd_ls.pdf(t) + pg_ls.pdf(t)), -12, 12, limit=400,
        epsabs=1e-13)[0]
    values = [gan.lsgan_generator_value(lp_ls, lq_ls, x_ls, a=a, b=b, c=c) for a, b, c in ((-1, 1, 0), (0, 2, 1))]
    print(f"p_g = N({loc}, {scale}^2): C(G) at D* = {values[0]:.9f} (a, b, c = -1, 1, 0), {values[1]:.9f} "
          f"(0, 2, 1); 1/2 Pearson chi2 by quad = {chi2_half:.9f}")
    assert all(abs(v - chi2_half) < 1e-8 for v in values) and 0 <= chi2_half <= 1
    if loc == 0.0 and scale == 1.0:
        assert abs(values[0]) < 1e-12                     # p_g = p_data

# %% [markdown]
# ## 6. A DCGAN on the digits
#
# The DCGAN guidelines ([Radford et al. 2016](../docs/bibliography.md#radford2016)): no pooling
# (strided convolutions in $D$, fractionally-strided ones in $G$), batch normalization in both, no
# fully connected hidden layers, ReLU in $G$ with a tanh output, LeakyReLU in $D$.
# `gan.DCGANGenerator` maps $z \in \mathbb R^{16}$ to a $2\times 2$ feature map and up to
# $8 \times 8$; `gan.DCGANDiscriminator` mirrors it.
# A short run with the non-saturating loss:

# %%
images, labels = data.load_digits()
G_img, D_img = gan.DCGANGenerator(latent_dim=16, channels=16), gan.DCGANDiscriminator(channels=16)
hist_img = gan.train_gan(G_img, D_img, images, num_steps=300, latent_dim=16, batch_size=64,
                         lr_g=2e-3, lr_d=2e-3, generator=gen, device=device)
G_img.eval()
with torch.no_grad():
    fake_img = G_img(torch.randn(400, 16, generator=gen).to(device)).cpu()
plotting.image_grid(fake_img[:40], nrow=10, title="DCGAN samples");

# %% [markdown]
# A simple quantitative check that the generator learned something about the data, and did not just
# copy it, with the distance from each of 400 samples to its nearest training digit (asserted
# below): the median is less than half that of uniform-noise images; it is still larger than the
# median distance from a real digit to the nearest *other* real digit (the samples are digit-like
# strokes after a few seconds of training, not yet clean digits); and no sample is a copy: even the
# closest one is farther from its nearest training digit than a quarter of that real-to-real
# median.

# %%
flat = images.flatten(1)
nn_fake = torch.cdist(fake_img.flatten(1), flat).min(1).values
nn_noise = torch.cdist(torch.rand(400, 64, generator=gen) * 2 - 1, flat).min(1).values
nn_real = torch.cdist(flat[:400], flat[400:]).min(1).values
print(f"median distance to the nearest training digit: GAN samples {nn_fake.median():.2f}, "
      f"uniform noise {nn_noise.median():.2f}, real digits {nn_real.median():.2f}; "
      f"closest GAN sample {nn_fake.min():.2f}")
assert nn_fake.median() < 0.5 * nn_noise.median()
assert nn_fake.median() > nn_real.median() and nn_fake.min() > 0.25 * nn_real.median()

# %% [markdown]
# ### Walking in the latent space
#
# Radford et al. (2016, Section 6.1) walk in the latent space. Along a path from $z_0$ to $z_1$ the
# images should change gradually; they argue that sharp transitions would be a sign of
# memorization. `gan.interpolate`
# gives two kinds of path:
#
# - **linear**, $(1 - t)z_0 + t z_1$;
# - **spherical (slerp)**, $\frac{\sin((1 - t)\Omega)}{\sin\Omega}z_0 + \frac{\sin(t\Omega)}{\sin\Omega}z_1$
#   with $\Omega$ the angle between $z_0$ and $z_1$ ([White 2016](../docs/bibliography.md#white2016)).
#
# Why slerp: for independent $z_0, z_1 \sim \mathcal N(0, I_d)$ the linear midpoint
# $(z_0 + z_1)/2$ is $\mathcal N(0, I_d/2)$, so its squared norm has mean exactly $d/2$. The prior's
# mass, where the generator was trained, sits at squared norms near $d$ (a $\chi^2_d$). The linear
# path therefore cuts through a region the generator rarely saw. Slerp keeps the norm near the
# endpoints' (exactly, when their norms are equal).
#
# Claims, asserted for the generator trained above on 500 random pairs, with 9 points per path:
#
# - the paths start and end at $z_0$ and $z_1$ bitwise, and their end images equal $G(z_0)$ and
#   $G(z_1)$ computed on their own (up to float32 rounding, $10^{-5}$; batch-size-dependent kernels
#   may round differently). Every image is finite and in $[-1, 1]$;
# - the linear midpoints' mean squared norm is $d/2$ (within 4 standard errors). The slerp
#   midpoints' is within 2% of $d$ (plus 4 standard errors);
# - no jumps along the slerp paths: the largest of the 8 steps between consecutive images is, on
#   average over the pairs, less than 0.4 of the distance between the two end images (3 standard
#   errors). A straight line in pixel space would give exactly 1/8; a single jump, close to 1.

# %%
N_PAIRS, N_POINTS, LATENT = 500, 9, 16
g_walk = torch.Generator().manual_seed(SEED * 1000 + 6)
z_a, z_b = torch.randn(N_PAIRS, LATENT, generator=g_walk), torch.randn(N_PAIRS, LATENT, generator=g_walk)
walks = {m: gan.interpolate(z_a, z_b, N_POINTS, method=m) for m in ("linear", "slerp")}    # (N_PAIRS, 9, 16)
with torch.no_grad():
    walk_images = {m: G_img(w.reshape(-1, LATENT).to(device)).cpu().reshape(N_PAIRS, N_POINTS, 64)
                   for m, w in walks.items()}
    ends_alone = [G_img(z.to(device)).cpu().reshape(N_PAIRS, 64) for z in (z_a, z_b)]
end_err = max((walk_images[m][:, j] - e).abs().max().item() for m in walks for j, e in ((0, ends_alone[0]),
                                                                                        (-1, ends_alone[1])))
print(f"largest |image at a path's end - G(z) alone|: {end_err:.1e}")
for m, w in walks.items():
    assert torch.equal(w[:, 0], z_a) and torch.equal(w[:, -1], z_b)
    assert torch.isfinite(walk_images[m]).all() and walk_images[m].abs().max() <= 1.0
assert end_err < 1e-5
mid_sq = {m: w[:, N_POINTS // 2].pow(2).sum(dim=1) for m, w in walks.items()}
(lin_m, lin_se), (sl_m, sl_se) = mean_se(mid_sq["linear"]), mean_se(mid_sq["slerp"])
print(f"midpoint squared norm (d = {LATENT}): linear {lin_m:.2f} ± {lin_se:.2f} (exact mean d/2 = {LATENT / 2}), "
      f"slerp {sl_m:.2f} ± {sl_se:.2f}")
assert abs(lin_m - LATENT / 2) < 4 * lin_se and abs(sl_m - LATENT) < 0.02 * LATENT + 4 * sl_se
steps = (walk_images["slerp"][:, 1:] - walk_images["slerp"][:, :-1]).norm(dim=2)          # (N_PAIRS, 8)
jump = steps.max(dim=1).values / (walk_images["slerp"][:, -1] - walk_images["slerp"][:, 0]).norm(dim=1)
jump_m, jump_se = mean_se(jump)
print(f"largest step / distance between the end images (slerp, 8 steps): {jump_m:.3f} ± {jump_se:.3f} "
      f"(uniform in pixel space: {1 / 8:.3f})")
assert jump_m + 3 * jump_se < 0.4

# %%
widgets.plot_latent_interpolation(G_img, z_a[0].to(device), z_b[0].to(device), N_POINTS);

# %% [markdown]
# ## 7. What a GAN cannot answer: $p(x)$ and $p(z \mid x)$
#
# GANs are trickier to train than likelihood models, and they cannot answer inference queries such
# as $p(x)$ or $p(z \mid x)$. Both follow from what a GAN *is*: a deterministic map $G_\theta$ pushed
# forward from $p(z)$, and a classifier.
#
# - **No $p(x)$.** The density of $x = G(z)$ would need the change of variables
#   $p_g(x) = \sum_{z: G(z) = x} p(z)\,/\,|\det J_G(z)|$, which requires $G$ to be invertible (all
#   preimages found) with a square Jacobian. Our digit generator maps $\mathbb R^{16}$ to
#   $\mathbb R^{64}$: its samples lie on an (at most) 16-dimensional surface, so $p_g$ has **no
#   density** in $\mathbb R^{64}$, and almost every real digit has "likelihood" 0. The discriminator
#   does not help: at best it estimates the *ratio* $p_{\mathrm{data}}/p_g$, not either density.
# - **No $p(z \mid x)$.** Nothing maps $x$ back to $z$: no encoder (unlike the VAE's $q(z\mid x)$);
#   finding a $z$ with $G(z) \approx x$ is a non-convex optimization with no probabilistic meaning.
#
# Check, at three random $z_0$ (in float64): the $64 \times 16$ Jacobian of the trained generator has
# numerical rank **exactly** 16 (its smallest singular value is above $10^{-6}$ times its largest:
# the generator uses all 16 latent directions), and samples near $G(z_0)$,
# $G(z_0 + \varepsilon u)$ for 200 random directions $u$ and $\varepsilon = 10^{-6}$, span a
# 16-dimensional set in $\mathbb R^{64}$: the 17th singular value of the centred cloud is below
# $10^{-3}$ times the 16th (what is left is the curvature of the surface, of order $\varepsilon^2$).

# %%
G_cpu = G_img.to("cpu").double().eval()
for i in range(3):
    z0 = torch.randn(16, generator=gen, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda z: G_cpu(z[None]).flatten(), z0)
    sv = torch.linalg.svdvals(J)                                     # (16,): J is 64 x 16
    with torch.no_grad():
        cloud = G_cpu(z0 + 1e-6 * torch.randn(200, 16, generator=gen, dtype=torch.float64)).flatten(1)
    sv_cloud = torch.linalg.svdvals(cloud - cloud.mean(0))           # (64,)
    print(f"z0 #{i + 1}: Jacobian {tuple(J.shape)}, singular values {sv[0]:.2e} .. {sv[-1]:.2e}; "
          f"nearby samples: singular values 16 and 17 {sv_cloud[15]:.2e}, {sv_cloud[16]:.2e}")
    assert J.shape == (64, 16) and sv[-1] > 1e-6 * sv[0]
    assert sv_cloud[16] < 1e-3 * sv_cloud[15]

# %% [markdown]
# ## Summary
#
# - The GAN game $\min_G\max_D V(D, G)$ is trained by alternating $k$ discriminator steps and one
#   generator step; all losses are computed from logits with softplus (finite at $\pm 10^4$).
# - For a fixed $G$, $D^* = p_{\mathrm{data}}/(p_{\mathrm{data}} + p_g)$ (trained discriminators
#   approach it), and $V(G, D^*) = -\log 4 + 2\,\mathrm{JSD}(p_{\mathrm{data}}\|p_g)$ (checked by
#   quadrature).
# - The minimax generator loss saturates where $D(G(z)) \to 0$ (gradient $D$); the log-D trick's
#   gradient is $1 - D$. Against $D^*$ from a far-off start the minimax generator stalls while the
#   log-D one reaches the data; trained with Adam, the minimax generator still lags on average.
# - Against a frozen $D^*$ the log-D trick descends
#   $\mathrm{KL}(p_g\|p_{\mathrm{data}}) - 2\,\mathrm{JSD} = 2\,\mathrm{KL}(M\|p_{\mathrm{data}})$, a
#   reverse KL (its value at $D^*$ carries an extra $\mathbb E_{p_{\mathrm{data}}}[\log D^*]$). It
#   charges a bounded amount for a dropped mode and an unbounded one for samples off the data. Fitted
#   to two modes, it locks onto one, where maximum likelihood and the JSD cover both.
# - Mode collapse is measured by modes captured, high-quality fraction and reverse KL (2500 samples,
#   3 std), as a mean over independent runs beside the published tables. At our budget the log-D
#   trick does not buy more modes, and few samples are of high quality.
# - The loss curves flatten although the samples stay poor. The trained discriminator stays near
#   $1/2$, far from $D^*$: a plug-in $\hat D^*$ (a KDE of $p_g$) has a much lower loss.
# - WGAN-GP replaces the JSD by a Wasserstein distance with a gradient penalty; its critic's slope
#   is held near 1, while a GAN discriminator's is not. LSGAN's least-squares loss has
#   $D^* = (b\,p_{\mathrm{data}} + a\,p_g)/(p_{\mathrm{data}} + p_g)$, and at $D^*$ its generator
#   minimizes half a Pearson $\chi^2$.
# - Paths in the DCGAN's latent space give gradually changing images. Slerp keeps the latent norm
#   typical; the linear midpoint's squared norm is $d/2$.
# - A GAN gives samples, not $p(x)$ or $p(z\mid x)$. Notebooks 04-05 (diffusion) get both samples of
#   high quality and a bound on $\log p(x)$.
