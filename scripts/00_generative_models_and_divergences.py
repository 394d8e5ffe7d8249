# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Generative modeling and divergences
#
# **What you will learn**
#
# - what a generative model is for (density estimation, sampling, representation) and the three
#   families of this course: likelihood-based (explicit) models, implicit models (GANs), diffusion;
# - the course's toy distributions, with their **exact** densities where they exist, and the digits;
# - the Kullback-Leibler divergence: why it is never negative (Jensen), why it is not symmetric, and
#   its closed form between two Gaussians (checked by Monte Carlo and by quadrature);
# - what the asymmetry does when a model is too simple: fitting **one** Gaussian to two modes by
#   forward KL covers both (moment matching), by reverse KL it picks one (mode seeking);
# - the Jensen-Shannon divergence, its bounds $0 \le \mathrm{JS} \le \log 2$, and the GAN objective
#   it hides (proved in notebook 03).
#
# Sources (full entries in the [bibliography](../docs/bibliography.md)): the three families follow
# [Prince 2023](../docs/bibliography.md#prince2023), chapter 14; KL and its asymmetry,
# [Bishop 2006](../docs/bibliography.md#bishop2006), sections 1.6.1 and 10.1.2 (Fig. 10.3 is the
# forward vs reverse fit); Jensen-Shannon, [Lin 1991](../docs/bibliography.md#lin1991); the ring
# and grid toys are the benchmarks of [Srivastava et al. 2017](../docs/bibliography.md#srivastava2017)
# and [Lin et al. 2018](../docs/bibliography.md#lin2018).
#
# Every derivation is followed by a cell that computes the claim and **asserts** it.

# %%
import math

import matplotlib.pyplot as plt
import torch
from scipy.optimize import minimize

from course_lib import (
    course_seed,
    data,
    divergences,
    gaussians,
    get_device,
    grading,
    metrics,
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

# %% [markdown]
# ## 1. What generative models are for
#
# A data set $\mathcal D = \{x_1, \dots, x_n\}$ is viewed as a sample from an unknown distribution
# $P$ on a set $\mathcal X$, each $x_i \sim P$ with density $p_{\mathrm{data}}$. A generative model
# is a $p_{\mathrm{model}}$ (or $p_\theta$) that we want *similar to* $p_{\mathrm{data}}$, for one of
# three inference tasks:
#
# - **density estimation**: estimate $p(x)$ itself (how likely is this $x$?);
# - **data generation**: draw new samples $\hat x \sim p_{\mathrm{model}} \approx p_{\mathrm{data}}$;
# - **representation learning**: learn features $z$ of $x$ that are useful downstream, from
#   unlabelled data.
#
# Three families, by what they give access to:
#
# | family | what is learned | trained by | in this course |
# |---|---|---|---|
# | likelihood-based (explicit density) | $p_\theta(x)$, or a lower bound on $\log p_\theta(x)$ | $\max_\theta \mathbb E_{x \sim p_{\mathrm{data}}}[\log p_\theta(x)]$ | 01 autoencoders (representation), 02 VAE (ELBO) |
# | implicit | a sampler $x = G_\theta(z)$, $z \sim p(z)$; no density | a two-player game with a discriminator | 03 GAN |
# | diffusion / score-based | the score $\nabla_x \log p(x)$ of noised data; sampled by many small denoising steps | denoising (a sum of ELBO terms / score matching) | 04 DDPM, 05 Tweedie, score matching |
#
# Likelihood-based models care about $\nabla_\theta \log p_\theta(x)$ (how to change the
# *parameters*); diffusion models care about $\nabla_x \log p(x)$ (how to change the *input*).
# All of them need a way to say how far $p_{\mathrm{model}}$ is from $p_{\mathrm{data}}$: that is a
# **divergence**, the second half of this notebook.

# %% [markdown]
# ## 2. The course's toy distributions
#
# Most checks in this course are done in 2-D, where the truth is known exactly. The two mode-collapse
# benchmarks (VEEGAN, PacGAN) are Gaussian mixtures
#
# $$p(x) = \sum_{k=1}^K w_k\, \mathcal N\big(x;\ \mu_k,\ s_k^2 I\big),$$
#
# the **ring** (8 modes on the unit circle, $s = 0.01$) and the **grid** (25 modes on
# $\{-4,-2,0,2,4\}^2$, $s = 0.05$). `toy.GaussianMixture` evaluates $\log p$ by log-sum-exp.

# %%
ring = toy.ring_mixture()   # 8 modes, radius 1, std 0.01
grid = toy.grid_mixture()   # 25 modes on {-4,...,4}^2, std 0.05
print(ring, grid, sep="\n")
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
plotting.density_contours(ring.log_prob, (-1.3, 1.3), (-1.3, 1.3), ax=axes[0], resolution=400,
                          log=True, colorbar=True, title="ring: exact log-density")
plotting.density_contours(grid.log_prob, (-5, 5), (-5, 5), ax=axes[1], resolution=400,
                          log=True, colorbar=True, title="grid: exact log-density")
fig.tight_layout();

# %% [markdown]
# **Check 1: the density integrates to one.** A Gaussian is smooth and decays fast, so the plain
# trapezoid rule on a uniform grid of spacing $h$ is extremely accurate once $h$ is a fraction of
# the standard deviation (its error for one Gaussian is of order $e^{-2\pi^2 s^2/h^2}$). With
# $h = s/2$ the sum of $p$ over the grid times $h^2$ must be 1 to many digits, *if* the
# normalising constants $(2\pi s^2)^{-D/2}$ and the weights are right.

# %%
def integrate_2d(log_prob, lim, h):
    """Trapezoid rule on [-lim, lim]^2 with spacing h, in float64 (p is ~0 at the border)."""
    t = torch.arange(-lim, lim + h / 2, h, dtype=torch.float64)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    p = log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp().reshape(xx.shape)
    return torch.trapezoid(torch.trapezoid(p, t, dim=1), t).item()


mass_ring = integrate_2d(toy.ring_mixture(dtype=torch.float64).log_prob, lim=1.2, h=0.005)
mass_grid = integrate_2d(toy.grid_mixture(dtype=torch.float64).log_prob, lim=4.6, h=0.025)
print(f"integral of p: ring {mass_ring:.10f}, grid {mass_grid:.10f}")
assert abs(mass_ring - 1) < 1e-8 and abs(mass_grid - 1) < 1e-8

# %% [markdown]
# **Check 2: samples have the mixture's moments.** Sampling is ancestral: $k \sim \mathrm{Cat}(w)$,
# then $x = \mu_k + s_k \varepsilon$. By the laws of total expectation and total variance,
#
# $$\mathbb E[x] = \sum_k w_k \mu_k, \qquad
#   \mathrm{Cov}[x] = \underbrace{\sum_k w_k s_k^2 I}_{\text{within}} +
#   \underbrace{\sum_k w_k (\mu_k - \bar\mu)(\mu_k - \bar\mu)^\top}_{\text{between}} .$$
#
# For the ring, $\bar\mu = 0$ and $\mathrm{Cov} = (r^2/2 + s^2) I$; for the grid,
# $\mathrm{Cov} = (s^2 + 8) I$ (the coordinates $\{-4,\dots,4\}$ have variance 8). The sample mean
# of $n$ draws has standard error $\sqrt{\mathrm{Var}/n}$; we assert agreement within 5 standard
# errors (a false alarm has probability below $10^{-5}$ per coordinate).

# %%
def moments_check(mix, n=20_000):
    m = mix.to(device)
    x = m.sample(n, generator=gen).double().cpu()
    w, mu, s = mix.weights.double(), mix.means.double(), mix.stds.double()
    mean = w @ mu                                                     # sum_k w_k mu_k
    dev = mu - mean
    cov = torch.diag(w @ s**2) + (w[:, None] * dev).T @ dev           # within + between
    se_mean = (torch.diag(cov) / n).sqrt()
    emp_cov = torch.cov(x.T)
    # standard error of an empirical (co)variance entry: sqrt(Var[(x_i - m_i)(x_j - m_j)] / n)
    xc = x - x.mean(0)
    se_cov = ((xc[:, :, None] * xc[:, None, :]).reshape(n, -1).var(0) / n).sqrt().reshape(2, 2)
    assert ((x.mean(0) - mean).abs() <= 5 * se_mean).all(), (x.mean(0), mean)
    assert ((emp_cov - cov).abs() <= 5 * se_cov).all(), (emp_cov, cov)
    return mean, cov, x.mean(0), emp_cov


for name, mix, expected in [("ring", ring, 0.5 + 0.01**2), ("grid", grid, 8 + 0.05**2)]:
    mean, cov, emp_mean, emp_cov = moments_check(mix)
    assert torch.allclose(cov, expected * torch.eye(2, dtype=torch.float64))
    print(f"{name}: exact Cov = {expected:.4f} I; empirical mean {emp_mean.numpy().round(3)}, "
          f"empirical variances {emp_cov.diagonal().numpy().round(3)}")

# %% [markdown]
# Three more toys are defined by how they are **sampled** (two moons, a Swiss roll, a
# checkerboard). Moons and the roll have no density in closed form (with noise, it is a convolution
# of a curve with a Gaussian); the checkerboard has one: uniform, density $1/2$, on the 8 dark
# squares of side $1/2$ in $[-1,1]^2$, and 0 on the light ones.

# %%
toys = {"two moons": toy.two_moons(2000, noise=0.05, generator=gen),
        "swiss roll": toy.swiss_roll(2000, noise=0.02, generator=gen),
        "checkerboard": toy.checkerboard(2000, generator=gen)}
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, (name, x) in zip(axes, toys.items()):
    plotting.scatter_samples(x, ax=ax, title=name)
fig.tight_layout();

# %% [markdown]
# **Check 3: the checkerboard density.** If $p = 1/2$ on each dark square of area $1/4$, each of the
# 8 dark squares holds probability $1/8$ and the light ones hold none. The count in one square is
# binomial, standard deviation $\sqrt{n \cdot \tfrac18 \cdot \tfrac78}$.

# %%
n_cb = 40_000
xc = toy.checkerboard(n_cb, generator=gen, dtype=torch.float64)
col = ((xc[:, 0] + 1) * 2).floor().long().clamp(0, 3)   # square index 0..3 from the left
row = ((xc[:, 1] + 1) * 2).floor().long().clamp(0, 3)   # square index 0..3 from the bottom
counts = torch.zeros(4, 4)
counts.index_put_((row, col), torch.ones(n_cb), accumulate=True)
dark = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 == 0
sd = math.sqrt(n_cb * (1 / 8) * (7 / 8))
print("fraction per square (rows from the bottom):\n", (counts / n_cb).flip(0).numpy().round(3))
assert counts[~dark].sum() == 0
assert ((counts[dark] - n_cb / 8).abs() <= 5 * sd).all()

# %% [markdown]
# The one real data set is the 8×8 **digits** bundled with scikit-learn: 1797 images in
# $\mathbb R^{64}$, scaled to $[-1, 1]$. Its density is unknown; models of it are judged by samples
# and by bounds on $\log p(x)$.

# %%
images, labels = data.load_digits()
assert images.shape == (1797, 1, 8, 8) and images.min() == -1 and images.max() == 1
plotting.image_grid(images[:40], nrow=10, title="digits (first 40), -1 black, +1 white");

# %% [markdown]
# ## 3. The Kullback-Leibler divergence
#
# For two distributions $P$ and $Q$ on the same support,
#
# $$\mathrm{KL}(P \,\|\, Q) = \mathbb E_{x \sim P}\Big[\log \frac{P(x)}{Q(x)}\Big] .$$
#
# **Non-negativity (Gibbs' inequality), via Jensen.** $\log$ is concave, so
# $\mathbb E[\log Y] \le \log \mathbb E[Y]$. With $Y = Q(x)/P(x)$, $x \sim P$:
#
# $$-\mathrm{KL}(P\,\|\,Q) = \mathbb E_P\Big[\log\frac{Q(x)}{P(x)}\Big]
#   \le \log \mathbb E_P\Big[\frac{Q(x)}{P(x)}\Big] = \log \sum_{x:\,P(x)>0} Q(x) \le \log 1 = 0,$$
#
# with equality iff $Q/P$ is constant on the support of $P$, i.e. $P = Q$. KL is **not symmetric**:
# $\mathrm{KL}(P\|Q) \ne \mathrm{KL}(Q\|P)$ in general, so it is a divergence, not a distance.
#
# The check below draws random discrete distributions, many with exact zeros (the convention
# $0 \log 0 = 0$), and verifies both sides of Jensen's inequality. The other direction,
# $\mathrm{KL}(Q\,\|\,P)$, is infinite as soon as $Q$ puts mass where $P$ has none: each of the
# last five entries of $P$ is zeroed with probability 0.2 (the first never is), so that happens
# for a fraction $1 - 0.8^5 \approx 0.672$ of the pairs, which the sample must reproduce within
# 5 binomial standard errors. Where both directions are finite they differ for almost every pair.

# %%
def random_simplex(b, k, zero_fraction=0.2):
    w = torch.rand(b, k, generator=gen, dtype=torch.float64) ** 2
    w = torch.where(torch.rand(b, k, generator=gen, dtype=torch.float64) < zero_fraction, 0.0, w)
    w[:, 0] += 1e-3                               # no empty row
    return w / w.sum(-1, keepdim=True)


P = random_simplex(2000, 6)                          # with exact zeros
Q = random_simplex(2000, 6, zero_fraction=0.0)       # full support, so KL(P||Q) < inf
kl_pq = (torch.xlogy(P, P) - torch.xlogy(P, Q)).sum(-1)  # KL(P || Q) = E_P[log P/Q], 0 log 0 = 0
assert torch.allclose(kl_pq, metrics.kl_divergence_discrete(P, Q), atol=1e-12)
jensen_rhs = torch.log((Q * (P > 0)).sum(-1))         # log E_P[Q/P] = log sum_{P>0} Q <= 0
print(f"KL(P||Q) over 2000 random pairs: min {kl_pq.min():.2e}, max {kl_pq.max():.3f}")
assert (-kl_pq <= jensen_rhs + 1e-12).all() and (jensen_rhs <= 1e-15).all() and (kl_pq >= 0).all()
assert metrics.kl_divergence_discrete(P, P).abs().max() < 1e-12   # equality iff P = Q

kl_qp = metrics.kl_divergence_discrete(Q, P)          # the other direction: inf where P = 0 < Q
finite = torch.isfinite(kl_qp)
assert (finite == (P > 0).all(-1)).all()              # inf exactly when P has a zero (Q never does)
frac_inf, p_inf = 1 - finite.double().mean().item(), 1 - 0.8**5
se_inf = math.sqrt(p_inf * (1 - p_inf) / P.shape[0])
asym = (kl_qp[finite] - kl_pq[finite]).abs()
frac_asym = (asym > 1e-3).double().mean().item()
print(f"KL(Q||P) = inf for {frac_inf:.1%} of the pairs (expected {p_inf:.1%} ± {se_inf:.1%}); "
      f"where finite, {frac_asym:.1%} of the pairs have |KL(P||Q) - KL(Q||P)| > 1e-3 nats "
      f"(median {asym.median():.3f} nats)")
assert abs(frac_inf - p_inf) <= 5 * se_inf
assert frac_asym >= 0.98                               # asymmetric for almost every pair

# %% [markdown]
# **Predict, then run (★☆☆, 1 point).** Take a narrow and a wide Gaussian with the same mean,
# $P = \mathcal N(0, 0.5^2)$ and $Q = \mathcal N(0, 2^2)$. Which is larger?
#
# - (a) $\mathrm{KL}(P\,\|\,Q)$, the narrow one measured against the wide one;
# - (b) $\mathrm{KL}(Q\,\|\,P)$, the wide one measured against the narrow one;
# - (c) neither: with equal means the two directions agree.
#
# Set `prediction` to `"a"`, `"b"` or `"c"` before you run the next cells (think about where
# each distribution puts mass that the other one does not).

# %% nbgrader={"grade": false, "grade_id": "predict_kl_direction", "locked": false, "schema_version": 3, "solution": true, "task": false}
prediction = None  # one of "a", "b", "c"
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "predict_kl_direction_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
grading.check_prediction(prediction, "abc")
### BEGIN HIDDEN TESTS
assert prediction == "b", "KL(Q||P) is larger: the wide Q puts mass where the narrow P is tiny"
### END HIDDEN TESTS

# %% [markdown]
# The run, by quadrature (no formula yet; the closed form comes next):

# %%
t_pred = torch.linspace(-40, 40, 80_001, dtype=torch.float64)
log_narrow = torch.distributions.Normal(0.0, 0.5).log_prob(t_pred)
log_wide = torch.distributions.Normal(0.0, 2.0).log_prob(t_pred)
kl_narrow_wide = torch.trapezoid(log_narrow.exp() * (log_narrow - log_wide), t_pred).item()
kl_wide_narrow = torch.trapezoid(log_wide.exp() * (log_wide - log_narrow), t_pred).item()
print(f"KL(P || Q) = {kl_narrow_wide:.4f} nats, KL(Q || P) = {kl_wide_narrow:.4f} nats: answer "
      f"{'(b)' if kl_wide_narrow > kl_narrow_wide else '(a)'}")
assert kl_wide_narrow > 5 * kl_narrow_wide

# %% [markdown]
# ### KL between two Gaussians, in closed form
#
# For $P = \mathcal N(\mu_1, \sigma_1^2)$ and $Q = \mathcal N(\mu_2, \sigma_2^2)$,
# $\log\frac{P(x)}{Q(x)} = \log\frac{\sigma_2}{\sigma_1} - \frac{(x-\mu_1)^2}{2\sigma_1^2}
#  + \frac{(x-\mu_2)^2}{2\sigma_2^2}$. Under $P$, $\mathbb E[(x-\mu_1)^2] = \sigma_1^2$ and
# $\mathbb E[(x-\mu_2)^2] = \sigma_1^2 + (\mu_1 - \mu_2)^2$, so
#
# $$\mathrm{KL}(P\,\|\,Q) = \log\frac{\sigma_2}{\sigma_1} + \frac{\sigma_1^2 + (\mu_1-\mu_2)^2}{2\sigma_2^2} - \frac12
#   = \frac12\Big[\log\sigma_2^2 - \log\sigma_1^2 + \frac{\sigma_1^2}{\sigma_2^2}
#   + \frac{(\mu_1-\mu_2)^2}{\sigma_2^2} - 1\Big].$$
#
# For a diagonal Gaussian in $D$ dimensions, sum over dimensions. This term is the KL in every VAE
# (notebook 02) and every DDPM loss term (notebook 04); `gaussians.gaussian_kl(mean1, logvar1,
# mean2, logvar2)` computes it in the mean / log-variance parameterization. Three independent checks:
# a Monte Carlo average of $\log P(x) - \log Q(x)$ over $x \sim P$ (within 5 standard errors),
# trapezoid quadrature, and `torch.distributions`. Swapping the arguments gives a different number:
# a narrow $P$ inside a wide $Q$ costs little, a wide $Q$ measured against a narrow $P$ costs a lot
# ($P$ is tiny where $Q$ still has mass).

# %%
mu1, sigma1, mu2, sigma2 = 1.0, 0.5, -0.5, 1.5
f64 = dict(dtype=torch.float64)
kl_closed = gaussians.gaussian_kl(torch.tensor(mu1, **f64), torch.tensor(2 * math.log(sigma1), **f64),
                                  torch.tensor(mu2, **f64), torch.tensor(2 * math.log(sigma2), **f64)).item()
normal_p = torch.distributions.Normal(torch.tensor(mu1, dtype=torch.float64), sigma1)
normal_q = torch.distributions.Normal(torch.tensor(mu2, dtype=torch.float64), sigma2)

n_mc = 200_000
x = mu1 + sigma1 * torch.randn(n_mc, generator=gen, dtype=torch.float64)
log_ratio = normal_p.log_prob(x) - normal_q.log_prob(x)
kl_mc, se_mc = log_ratio.mean().item(), (log_ratio.std() / math.sqrt(n_mc)).item()

t = torch.linspace(mu1 - 12 * sigma1, mu1 + 12 * sigma1, 20_001, dtype=torch.float64)
kl_quad = torch.trapezoid(normal_p.log_prob(t).exp() * (normal_p.log_prob(t) - normal_q.log_prob(t)), t).item()
kl_torch = torch.distributions.kl_divergence(normal_p, normal_q).item()

print(f"closed form {kl_closed:.6f} | Monte Carlo {kl_mc:.6f} ± {se_mc:.6f} | "
      f"quadrature {kl_quad:.6f} | torch.distributions {kl_torch:.6f}")
assert abs(kl_mc - kl_closed) < 5 * se_mc
assert abs(kl_quad - kl_closed) < 1e-9 and abs(kl_torch - kl_closed) < 1e-12

kl_swapped = torch.distributions.kl_divergence(normal_q, normal_p).item()
print(f"KL(P||Q) = {kl_closed:.4f} nats, KL(Q||P) = {kl_swapped:.4f} nats")
assert kl_swapped > 2 * kl_closed

# %% [markdown]
# ### Exercise 1: KL between univariate Gaussians
#
# **Exercise 1 (short, ★☆☆, 2 points).** Implement the closed form above for tensors `mu1, sigma1,
# mu2, sigma2` of shape `(N,)` (**standard deviations**, not variances), returning the `(N,)` KL
# divergences in nats. The check compares with `course_lib` on random float64 inputs, including
# equal distributions (KL = 0) and standard deviations down to $10^{-6}$.

# %% nbgrader={"grade": false, "grade_id": "kl_univariate_gaussians", "locked": false, "schema_version": 3, "solution": true, "task": false}
def kl_univariate_gaussians(mu1, sigma1, mu2, sigma2):
    """KL(N(mu1, sigma1^2) || N(mu2, sigma2^2)) elementwise; all inputs and the output (N,)."""
    ### BEGIN SOLUTION
    return torch.log(sigma2 / sigma1) + (sigma1**2 + (mu1 - mu2) ** 2) / (2 * sigma2**2) - 0.5
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kl_univariate_gaussians_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("kl_univariate_gaussians", kl_univariate_gaussians)

# %% [markdown]
# **Derivation 1 (graded by hand, ★★☆, 3 points).** The closed form above is for one dimension;
# for diagonal Gaussians we "sum over dimensions". Show why: for
# $P(x_1, x_2) = P_1(x_1)P_2(x_2)$ and $Q(x_1, x_2) = Q_1(x_1)Q_2(x_2)$ (independent coordinates),
#
# $$\mathrm{KL}(P\,\|\,Q) = \mathrm{KL}(P_1\,\|\,Q_1) + \mathrm{KL}(P_2\,\|\,Q_2).$$
#
# Then use it to write $\mathrm{KL}\big(\mathcal N(\mu, \mathrm{diag}\,\sigma^2)\,\|\,
# \mathcal N(0, I)\big)$ in $D$ dimensions (the KL term of every VAE, notebook 02). Write your
# answer (Markdown with LaTeX) in the cell below.

# %% [markdown] nbgrader={"grade": true, "grade_id": "kl_independent_sum", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# **Model answer.** The log-ratio splits,
# $\log\frac{P(x)}{Q(x)} = \log\frac{P_1(x_1)}{Q_1(x_1)} + \log\frac{P_2(x_2)}{Q_2(x_2)}$, and the
# expectation under $P$ is linear; each term depends on one coordinate only, and its expectation
# under $P = P_1P_2$ is its expectation under that coordinate's marginal:
# $\mathbb E_P\big[\log\frac{P_1(x_1)}{Q_1(x_1)}\big] = \int\!\!\int P_1(x_1)P_2(x_2)
# \log\frac{P_1(x_1)}{Q_1(x_1)}\,dx_2\,dx_1 = \mathrm{KL}(P_1\|Q_1)$ since $\int P_2 = 1$; the
# same for the second term. By induction over coordinates, with the univariate closed form at
# $\mu_2 = 0$, $\sigma_2 = 1$ for each:
#
# $$\mathrm{KL}\big(\mathcal N(\mu, \mathrm{diag}\,\sigma^2)\,\|\,\mathcal N(0, I)\big)
#   = \sum_{j=1}^D\Big(-\log\sigma_j + \frac{\sigma_j^2 + \mu_j^2}{2} - \frac12\Big)
#   = \frac12\sum_{j=1}^D\big(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\big).$$
#
# **Rubric (3 points).** 1 point: the log of a product is the sum of the logs (the log-ratio
# splits). 1 point: each term's expectation under the product reduces to its marginal (the other
# factor integrates to 1), stated, not just asserted. 1 point: the $D$-dimensional formula, with
# $\mu_2 = 0, \sigma_2 = 1$ substituted correctly (half a point if a factor $\frac12$ or the
# $-1$ is wrong).
# ### END SOLUTION

# %% [markdown]
# ## 4. Forward vs reverse KL: fitting one Gaussian to two modes
#
# Let $p = w\,\mathcal N(-d/2, 1) + (1-w)\,\mathcal N(d/2, 1)$ play the data and
# $q = \mathcal N(\mu, \sigma^2)$ the model, too simple to represent two modes. Which $q$ is "closest"
# depends on the direction of the KL.
#
# **Forward KL, $\min_q \mathrm{KL}(p\,\|\,q)$, is moment matching.** Only the cross-entropy depends
# on $q$:
#
# $$\mathrm{KL}(p\,\|\,q) = \underbrace{\mathbb E_p[\log p]}_{\text{const}}
#   + \tfrac12\log(2\pi\sigma^2) + \frac{\mathbb E_p[(x-\mu)^2]}{2\sigma^2},\qquad
#   \mathbb E_p[(x-\mu)^2] = \mathrm{Var}_p[x] + (\mathbb E_p[x] - \mu)^2 .$$
#
# The minimum over $\mu$ is at $\mu^* = \mathbb E_p[x]$; then setting
# $\partial/\partial\sigma^2 = \frac{1}{2\sigma^2} - \frac{\mathrm{Var}_p[x]}{2\sigma^4} = 0$ gives
# $\sigma^{*2} = \mathrm{Var}_p[x]$. For our mixture,
# $\mathbb E_p[x] = (1-2w)\,d/2$ and $\mathbb E_p[x^2] = 1 + d^2/4$, so
#
# $$\mu^* = (1-2w)\,\frac d2, \qquad \sigma^{*2} = 1 + w(1-w)\,d^2 .$$
#
# Minimizing forward KL is maximum likelihood ($-\mathbb E_{p_{\mathrm{data}}}[\log q]$ is the
# negative log-likelihood on infinitely many data): $q$ must put mass **wherever $p$ has mass**,
# even if that means putting mass in the gap between the modes (*mode covering*).
#
# Check: minimize the forward KL, computed by trapezoid quadrature on a fine grid, numerically
# over $(\mu, \log\sigma)$ and compare with the closed form.

# %%
x_grid = torch.linspace(-25, 25, 10_001, dtype=torch.float64)          # spacing 0.005


def bimodal(separation, weight):
    """p = w N(-d/2, 1) + (1 - w) N(d/2, 1) as an exact mixture (float64)."""
    return toy.bimodal_1d(separation, std=1.0, weights=torch.tensor([weight, 1 - weight]),
                          dtype=torch.float64)


def log_normal(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


def kl_quadrature(log_a, log_b):
    """KL(a || b) = int a (log a - log b) dx by the trapezoid rule on x_grid."""
    return torch.trapezoid(log_a.exp() * (log_a - log_b), x_grid).item()


def fit_gaussian(separation, weight, direction, mu0, sigma0=1.0):
    """argmin over (mu, log sigma) of KL(p||q) ("forward") or KL(q||p) ("reverse")."""
    log_p = bimodal(separation, weight).log_prob(x_grid[:, None])

    def objective(params):
        log_q = log_normal(x_grid, params[0], math.exp(params[1]))
        return kl_quadrature(log_p, log_q) if direction == "forward" else kl_quadrature(log_q, log_p)

    res = minimize(objective, x0=[mu0, math.log(sigma0)], method="L-BFGS-B",
                   bounds=[(-20, 20), (math.log(0.05), math.log(8.0))], options={"ftol": 1e-14})
    return res.x[0], math.exp(res.x[1]), res.fun

# %%
for d, w in [(2.0, 0.5), (8.0, 0.5), (8.0, 0.2)]:
    mu_num, sigma_num, _ = fit_gaussian(d, w, "forward", mu0=1.0)
    mu_star, sigma_star = (1 - 2 * w) * d / 2, math.sqrt(1 + w * (1 - w) * d**2)
    print(f"d={d}, w={w}: numerical (mu, sigma) = ({mu_num:.4f}, {sigma_num:.4f}), "
          f"closed form ({mu_star:.4f}, {sigma_star:.4f})")
    assert abs(mu_num - mu_star) < 1e-3 and abs(sigma_num - sigma_star) < 1e-3

# %% [markdown]
# **Reverse KL, $\min_q \mathrm{KL}(q\,\|\,p)$, is mode seeking.**
#
# $$\mathrm{KL}(q\,\|\,p) = -\underbrace{\tfrac12\log(2\pi e\sigma^2)}_{H(q)} - \mathbb E_q[\log p(x)] .$$
#
# Now the expectation is under $q$: wherever $q$ puts mass where $p \approx 0$, $-\log p$ is huge, so
# $q$ avoids the gap between the modes (*zero forcing*). When the modes are far apart, the best it
# can do is to sit on one of them: for $q = \mathcal N(-d/2, 1)$, on the support of $q$ the other
# component is negligible, $p(x) \approx w\,q(x)$, hence
#
# $$\mathrm{KL}(q\,\|\,p) \approx \mathbb E_q\Big[\log\frac{q(x)}{w\,q(x)}\Big] = -\log w ,$$
#
# while covering both modes costs a KL that grows like $d^2$. There is no closed form for the
# minimizer; we minimize the quadrature from one initialization on each mode and keep the best.
# Claims checked: at $d = 8$ the fit locks onto a mode ($\mu \approx \pm 4$, $\sigma \approx 1$,
# KL $\approx -\log w$) and the best one is the heavier mode; at $d = 2$ (unimodal $p$) both
# initializations reach the same centred fit, narrower than the forward fit. In between, for
# $w = 1/2$, the centred ("covering") fit and the fit locked on a mode coexist, and the better of
# the two switches between $d = 5.5$ and $d = 5.75$ (second cell).

# %%
def best_reverse_fit(d, w):
    fits = [fit_gaussian(d, w, "reverse", mu0=m0) for m0 in (-d / 2, d / 2)]
    return fits, min(fits, key=lambda f: f[2])


for w in (0.5, 0.2):
    fits, best = best_reverse_fit(8.0, w)
    for (mu, sigma, kl), mode in zip(fits, (-4.0, 4.0)):
        weight_of_mode = w if mode < 0 else 1 - w
        print(f"d=8, w={w}: start at {mode:+.0f} -> mu={mu:+.4f}, sigma={sigma:.4f}, "
              f"KL(q||p)={kl:.5f}, -log(weight of that mode)={-math.log(weight_of_mode):.5f}")
        assert abs(mu - mode) < 0.01 and abs(sigma - 1) < 0.01
        assert abs(kl + math.log(weight_of_mode)) < 2e-3
    if w < 0.5:
        assert best[0] > 0                         # the best fit is on the heavier (right) mode

fits_2, best_2 = best_reverse_fit(2.0, 0.5)
print("d=2: reverse fits (mu, sigma) =", ", ".join(f"({m:+.4f}, {s:.4f})" for m, s, _ in fits_2),
      f"| forward sigma = {math.sqrt(2):.4f}")
assert all(abs(m) < 1e-3 and abs(s - fits_2[0][1]) < 1e-3 for m, s, _ in fits_2)
assert best_2[1] < math.sqrt(2)                   # reverse KL under-estimates the spread

# %%
for d, covering_is_best in [(5.0, True), (5.5, True), (5.75, False), (6.0, False)]:
    locked = fit_gaussian(d, 0.5, "reverse", mu0=d / 2)
    covering = fit_gaussian(d, 0.5, "reverse", mu0=0.0, sigma0=math.sqrt(1 + d**2 / 4))
    print(f"d={d}: covering (mu, sigma, KL) = ({covering[0]:+.3f}, {covering[1]:.3f}, {covering[2]:.4f}); "
          f"locked = ({locked[0]:+.3f}, {locked[1]:.3f}, {locked[2]:.4f})")
    assert abs(covering[0]) < 1e-3 and abs(locked[0] - d / 2) < 0.2
    assert (covering[2] < locked[2]) == covering_is_best

# %% [markdown]
# The explorer draws $p$, the forward fit (closed form) and the reverse fit (the best of several
# local minima). Move the separation: for equal weights the reverse fit jumps from covering to one
# mode between $d = 5.5$ and $5.75$; just before that the mode-locked solutions already exist as
# worse local minima (dotted). With $w \ne 1/2$ the two modes are no longer equally good: the
# heavier one has the smaller $-\log w$.
#
# The explorer computes its fits with `course_lib.divergences`, independently of the cells above:
# the forward fit from the mixture's moments (`forward_kl_fit`), the reverse KL by adaptive
# quadrature split at the modes (`reverse_kl`), minimized from several starts (`reverse_kl_fits`),
# and the divergences on a grid (`kl_divergence_1d`, `js_divergence_1d`). Asserted first: they agree
# with the closed forms and with the trapezoid rule and L-BFGS-B fits above (the reverse fits within
# $10^{-3}$, the accuracy of the search above; the forward fit within $10^{-6}$, as `bimodal` stores its
# weights in float32; the divergences within $10^{-8}$), and the JS
# divergence of two Gaussians 20 standard deviations apart is $\log 2$.

# %%
for d, w in [(2.0, 0.5), (8.0, 0.5), (8.0, 0.2)]:
    p_dw = bimodal(d, w)
    closed_form = ((1 - 2 * w) * d / 2, math.sqrt(1 + w * (1 - w) * d**2))
    assert all(abs(a - b) < 1e-6 for a, b in zip(divergences.forward_kl_fit(p_dw), closed_form))  # weights float32
    lib_best = min(divergences.reverse_kl_fits(p_dw), key=lambda f: f.kl)
    _, best_here = best_reverse_fit(d, w)
    print(f"d={d}, w={w}: best reverse fit, library ({lib_best.mean:+.4f}, {lib_best.std:.4f}, "
          f"KL {lib_best.kl:.5f}); above ({best_here[0]:+.4f}, {best_here[1]:.4f}, KL {best_here[2]:.5f})")
    mean_lib, mean_here = lib_best.mean, best_here[0]
    if w == 0.5:                                    # equal weights: the two modes tie, either may be "best"
        mean_lib, mean_here = abs(mean_lib), abs(mean_here)
    assert abs(mean_lib - mean_here) < 1e-3 and abs(lib_best.std - best_here[1]) < 1e-3
    assert abs(lib_best.kl - best_here[2]) < 1e-3
    assert abs(divergences.reverse_kl(p_dw, *best_here[:2]) - best_here[2]) < 1e-8
log_p_dw, log_q_dw = bimodal(8.0, 0.2).log_prob(x_grid[:, None]), log_normal(x_grid, 1.0, 2.0)
assert abs(divergences.kl_divergence_1d(log_p_dw, log_q_dw, x_grid) - kl_quadrature(log_p_dw, log_q_dw)) < 1e-12
far = divergences.js_divergence_1d(log_normal(x_grid, -10.0, 1.0), log_normal(x_grid, 10.0, 1.0), x_grid)
assert abs(far - math.log(2)) < 1e-8

# %%
widgets.plot_forward_reverse_kl();

# %%
widgets.forward_reverse_kl_explorer()

# %% [markdown]
# Which direction do the models of this course minimize? Maximum likelihood (and the VAE's lower
# bound on it, notebook 02) minimizes the forward KL $\mathrm{KL}(p_{\mathrm{data}}\|p_\theta)$: blurry,
# mode-covering fits.
# Variational inference, $q(z\mid x)$ inside the ELBO, minimizes a reverse KL
# $\mathrm{KL}(q\|p(z\mid x))$: posteriors that are too narrow. GANs minimize neither; the original
# objective is tied to the Jensen-Shannon divergence (section 5).

# %% [markdown]
# ### Exercise 2: the log-density of a mixture, without underflow
#
# **Exercise 2 (short, ★★☆, 2 points).** Implement $\log p(x) = \log \sum_k w_k\,\mathcal N(x; m_k,
# s_k^2)$ for 1-D points `x` of shape `(N,)` and components `means, stds, weights` of shape `(K,)`,
# returning `(N,)`. Far from every component each $w_k \mathcal N(x; m_k, s_k^2)$ underflows to 0
# and the naive `log(sum(...))` returns `-inf`: compute the log of each term and combine them with
# `torch.logsumexp` ($\log\sum_k e^{a_k} = a^* + \log\sum_k e^{a_k - a^*}$, $a^* = \max_k a_k$). The
# check includes points hundreds of standard deviations away.

# %% nbgrader={"grade": false, "grade_id": "mixture_log_prob", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mixture_log_prob(x, means, stds, weights):
    """log sum_k w_k N(x; m_k, s_k^2) for x (N,) and means, stds, weights (K,); returns (N,)."""
    ### BEGIN SOLUTION
    z = (x[:, None] - means[None, :]) / stds[None, :]                              # (N, K)
    log_terms = torch.log(weights) - 0.5 * z**2 - torch.log(stds) - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(log_terms, dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "mixture_log_prob_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("mixture_log_prob", mixture_log_prob)

# %% [markdown]
# ### Exercise 3: the KL between two mixtures, by Monte Carlo
#
# Between two Gaussians the KL has a closed form; between two **mixtures** it has none (the log of
# a sum does not simplify), and in more than a few dimensions quadrature is out of reach. What
# always works is Monte Carlo: $\mathrm{KL}(p\,\|\,q) = \mathbb E_{x\sim p}[\log p(x) - \log q(x)]$,
# estimated by an average over samples of $p$, with a standard error so that we know how far to
# trust it.
#
# **Exercise 3 (multi-step, ★★★, 5 points).** Implement `mixture_kl_monte_carlo(means_p, stds_p,
# weights_p, means_q, stds_q, weights_q, u, eps)` for 1-D mixtures ($K_p$ and $K_q$ components,
# each parameter of shape `(K,)`), with the randomness given as `u` (uniform on $[0, 1)$) and `eps`
# (standard normal), both of shape `(N,)`:
#
# 1. Ancestral sampling from $p$: the component of sample $i$ is the first $k$ with
#    $u_i < \sum_{j\le k} w_j$ (`torch.cumsum`; take the last component if rounding leaves none),
#    and $x_i = m_k + s_k\,\varepsilon_i$.
# 2. $\log p(x_i)$ and $\log q(x_i)$, stably (your Exercise 2, or its idea).
# 3. Return `(estimate, standard_error)`, two 0-dim tensors: the mean of
#    $r_i = \log p(x_i) - \log q(x_i)$ and $\mathrm{sd}(r)/\sqrt N$ with the $N - 1$ sample
#    standard deviation.
#
# The visible check compares both numbers with a reference on random float64 mixtures, including
# $q = p$ (both exactly 0), a $q$ so far away that $\log q(x) \approx -10^4$, single Gaussians, and
# $u = 0$ and $u \to 1$. Hidden tests check more cases, and that your estimate agrees with the
# closed form (Exercise 1) and with quadrature within 5 of its own standard errors.

# %% nbgrader={"grade": false, "grade_id": "mixture_kl_monte_carlo", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mixture_kl_monte_carlo(means_p, stds_p, weights_p, means_q, stds_q, weights_q, u, eps):
    """(estimate, standard error) of KL(p || q) between 1-D Gaussian mixtures; u, eps (N,)."""
    ### BEGIN SOLUTION
    cdf = torch.cumsum(weights_p, dim=0)                                    # (K_p,)
    k = (u[:, None] >= cdf[None, :]).sum(dim=1).clamp(max=len(weights_p) - 1)  # first k: u < cdf[k]
    x = means_p[k] + stds_p[k] * eps                                        # (N,) samples of p

    def log_mixture(means, stds, weights):
        z = (x[:, None] - means[None, :]) / stds[None, :]                   # (N, K)
        log_terms = torch.log(weights) - 0.5 * z**2 - torch.log(stds) - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(log_terms, dim=1)

    r = log_mixture(means_p, stds_p, weights_p) - log_mixture(means_q, stds_q, weights_q)
    n = r.shape[0]
    estimate = r.mean()
    standard_error = torch.sqrt(((r - estimate) ** 2).sum() / (n - 1)) / math.sqrt(n)
    return estimate, standard_error
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "mixture_kl_monte_carlo_check", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
grading.check("mixture_kl_monte_carlo", mixture_kl_monte_carlo)
### BEGIN HIDDEN TESTS
grading.check("mixture_kl_monte_carlo", mixture_kl_monte_carlo, num_cases=10, seed=1000, verbose=False)
_g = torch.Generator().manual_seed(SEED * 1000 + 900)
_u = torch.rand(20_000, generator=_g, dtype=torch.float64)
_eps = torch.randn(20_000, generator=_g, dtype=torch.float64)
_one = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
# single Gaussians: the closed form of Exercise 1, within 5 standard errors
_est, _se = mixture_kl_monte_carlo(_one(0.3), _one(0.7), _one(1.0), _one(-1.0), _one(1.5), _one(1.0), _u, _eps)
_closed = math.log(1.5 / 0.7) + (0.7**2 + 1.3**2) / (2 * 1.5**2) - 0.5
assert abs(float(_est) - _closed) < 5 * float(_se), (float(_est), float(_se), _closed)
# the bimodal p of section 4 (d = 8, w = 0.2) against its forward-KL fit: quadrature, 5 standard errors
_mp, _sp, _wp = _one(-4.0, 4.0), _one(1.0, 1.0), _one(0.2, 0.8)
_sq = math.sqrt(1 + 0.2 * 0.8 * 64)
_est, _se = mixture_kl_monte_carlo(_mp, _sp, _wp, _one(2.4), _one(_sq), _one(1.0), _u, _eps)
_quad = kl_quadrature(bimodal(8.0, 0.2).log_prob(x_grid[:, None]), log_normal(x_grid, 2.4, _sq))
assert abs(float(_est) - _quad) < 5 * float(_se), (float(_est), float(_se), _quad)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. The Jensen-Shannon divergence
#
# With the mixture $M = \tfrac12(P + Q)$,
#
# $$\mathrm{JS}(P\,\|\,Q) = \tfrac12\,\mathrm{KL}(P\,\|\,M) + \tfrac12\,\mathrm{KL}(Q\,\|\,M).$$
#
# It is symmetric, and always finite because $M > 0$ wherever $P$ or $Q$ is. **Bounds.** It is
# $\ge 0$ as an average of two KLs, $= 0$ iff $P = M = Q$. Since $P \le P + Q = 2M$,
# $\log\frac{P}{M} \le \log 2$, so $\mathrm{KL}(P\|M) \le \log 2$, and the same for $Q$:
#
# $$0 \le \mathrm{JS}(P\,\|\,Q) \le \log 2,$$
#
# with equality on the right iff $P$ and $Q$ have disjoint supports (then $P = 2M$ wherever $P>0$).
# For disjoint supports the KL is infinite in **both** directions ($P > 0 = Q$ somewhere and vice
# versa), so it cannot tell a near miss from a distant one; JS is $\log 2$ for both.

# %%
P2, Q2 = random_simplex(5000, 8, zero_fraction=0.3), random_simplex(5000, 8, zero_fraction=0.3)
js = metrics.js_divergence_discrete(P2, Q2)
print(f"JS over 5000 random pairs: min {js.min():.4f}, max {js.max():.4f}, log 2 = {math.log(2):.4f}")
assert torch.isfinite(js).all() and (js >= 0).all() and (js <= math.log(2) + 1e-12).all()
assert torch.allclose(js, metrics.js_divergence_discrete(Q2, P2))            # symmetric

disjoint_p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
disjoint_q = torch.tensor([0.0, 0.0, 0.3, 0.7], dtype=torch.float64)
js_disjoint = metrics.js_divergence_discrete(disjoint_p, disjoint_q).item()
kl_disjoint = (metrics.kl_divergence_discrete(disjoint_p, disjoint_q).item(),
               metrics.kl_divergence_discrete(disjoint_q, disjoint_p).item())
print(f"disjoint supports: JS = {js_disjoint:.12f} (log 2 = {math.log(2):.12f}), "
      f"KL(P||Q) = {kl_disjoint[0]}, KL(Q||P) = {kl_disjoint[1]}")
assert abs(js_disjoint - math.log(2)) < 1e-12
assert kl_disjoint == (math.inf, math.inf)            # KL is infinite both ways, JS stays log 2

# %% [markdown]
# The same holds for densities. Take $P = \mathcal N(-\Delta/2, 1)$ and $Q = \mathcal N(\Delta/2, 1)$:
# as $\Delta$ grows, $\mathrm{KL}(P\|Q) = \Delta^2/2$ grows without bound, while JS saturates at
# $\log 2$. That saturation is a warning for GANs: once the model's and the data's supports barely
# overlap, the JS (and so the GAN loss) hardly changes when the model moves.
#
# **Preview of notebook 03.** For a fixed generator with density $p_g$, the discriminator that
# maximizes $V(G, D) = \mathbb E_{p_{\mathrm{data}}}[\log D(x)] + \mathbb E_{p_g}[\log(1 - D(x))]$
# is $D^*(x) = \frac{p_{\mathrm{data}}(x)}{p_{\mathrm{data}}(x) + p_g(x)}$, and substituting it gives
# $V(G, D^*) = -\log 4 + 2\,\mathrm{JS}(p_{\mathrm{data}}\,\|\,p_g)$. We check both identities by
# quadrature (JS computed by `metrics.js_divergence_discrete` on the grid probabilities
# $p(x_i)\,h$, a Riemann sum of the integral).

# %%
h = (x_grid[1] - x_grid[0]).item()
for delta in (0.0, 1.0, 3.0, 10.0):
    log_p, log_q = log_normal(x_grid, -delta / 2, 1.0), log_normal(x_grid, delta / 2, 1.0)
    js_c = metrics.js_divergence_discrete(log_p.exp() * h, log_q.exp() * h).item()
    kl_c = kl_quadrature(log_p, log_q)
    log_d = log_p - torch.logaddexp(log_p, log_q)                 # log D*,  D* = p / (p + q)
    log_1md = log_q - torch.logaddexp(log_p, log_q)               # log (1 - D*)
    v_star = (torch.trapezoid(log_p.exp() * log_d, x_grid) + torch.trapezoid(log_q.exp() * log_1md, x_grid)).item()
    print(f"Delta={delta:4.1f}: KL={kl_c:8.4f} (Delta^2/2={delta**2 / 2:6.2f}), JS={js_c:.6f}, "
          f"V(G, D*)={v_star:+.6f}, -log 4 + 2 JS={-math.log(4) + 2 * js_c:+.6f}")
    assert abs(kl_c - delta**2 / 2) < 1e-8 and 0 <= js_c <= math.log(2) + 1e-12
    assert abs(v_star - (-math.log(4) + 2 * js_c)) < 1e-6
assert abs(js_c - math.log(2)) < 1e-4                             # Delta = 10: nearly disjoint

# %% [markdown]
# ### Exercise 4: Jensen-Shannon divergence of discrete distributions
#
# **Exercise 4 (short, ★★☆, 2 points).** Implement $\mathrm{JS}(p\,\|\,q)$ for probability tensors
# `p, q` of the same shape `(..., K)`, over the **last** axis, returning shape `(...)`. Entries may
# be exactly 0: use $0 \log 0 = 0$ (e.g. `torch.xlogy`, or `torch.where`), otherwise you get `nan`.
# The check includes zeros, probabilities of $10^{-30}$, identical rows (JS = 0) and disjoint
# supports (JS = $\log 2$).

# %% nbgrader={"grade": false, "grade_id": "js_divergence", "locked": false, "schema_version": 3, "solution": true, "task": false}
def js_divergence(p, q):
    """JS(p || q) over the last axis of (..., K) probability tensors; returns (...)."""
    ### BEGIN SOLUTION
    m = 0.5 * (p + q)
    kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(-1)
    kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(-1)
    return 0.5 * (kl_pm + kl_qm)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "js_divergence_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("js_divergence", js_divergence)

# %% [markdown]
# ## Summary
#
# - A generative model is judged by how close $p_{\mathrm{model}}$ is to $p_{\mathrm{data}}$; the
#   toys of this course have exact densities (checked: they integrate to 1, samples match the
#   moments), the digits do not.
# - $\mathrm{KL}(P\|Q) \ge 0$ by Jensen, $= 0$ iff $P = Q$, asymmetric; between Gaussians it is
#   closed form (checked three ways).
# - Forward KL (maximum likelihood) makes a too-simple model **cover** all modes (moment matching);
#   reverse KL makes it **pick** one (mode seeking), with KL $\approx -\log w$.
# - $0 \le \mathrm{JS} \le \log 2$, saturating for disjoint supports; the GAN value at the optimal
#   discriminator is $-\log 4 + 2\,\mathrm{JS}$.
#
# Next: notebook 01, autoencoders, the representation-learning side.
