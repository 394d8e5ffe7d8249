# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · VAE, ELBO and the reparameterization trick
#
# **What you will learn**
#
# - why the marginal likelihood $p_\theta(x) = \int p_\theta(x|z)\,p(z)\,dz$ of a latent-variable
#   model is intractable, and how it looks when it is not (a 1-D latent, by quadrature);
# - the evidence lower bound (ELBO) derived two ways, by Jensen's inequality and by the identity
#   $\log p(x) = \mathrm{ELBO}(x) + \mathrm{KL}(q(z|x)\,\|\,p(z|x))$, **checked exactly** on a
#   linear-Gaussian model where $\log p(x)$ and $p(z|x)$ are closed form;
# - the closed-form Gaussian KL against its Monte Carlo estimate; why a Gaussian decoder is an
#   $L_2$ loss, and what its variance does;
# - the reparameterization trick against the score-function (REINFORCE) gradient: both unbiased,
#   very different variances; and a full covariance, $x = \mu + \Sigma^{1/2} w$, by
#   eigendecomposition or Cholesky;
# - what a diagonal $q(z\mid x)$ can and cannot fit: ellipses of $q$ against the exact posterior;
# - a VAE on the 8x8 digits: ELBO curve, reconstructions, ancestral samples with and without the
#   decoder's noise, the 2-D latent manifold, interpolation; the importance-weighted bound
#   tightening towards $\log p(x)$;
# - why VAE samples are blurry, posterior collapse, and what a two-level hierarchical VAE's
#   learned prior adds; the VAE's pros and cons, and where the field went next.
#
# Every derivation is followed by a cell that computes the claim and **asserts** it.
#
# **Sources.** The papers and books cited here by author and year are listed, with links, in the
# course [bibliography](../docs/bibliography.md). The VAE is due to
# [Kingma & Welling 2014](../docs/bibliography.md#kingma2014) and, independently,
# [Rezende et al. 2014](../docs/bibliography.md#rezende2014); good companions are
# [Prince 2023](../docs/bibliography.md#prince2023), chapter 17, and
# [Chan 2024](../docs/bibliography.md#chan2024).
#
# **Notation.** Texts write the same objects differently; this notebook uses the left column.
#
# | here | Kingma & Welling (2014) | Chan (2024) | notebook 01 (autoencoders) |
# |---|---|---|---|
# | data $x$, latent $z$, prior $p(z)=\mathcal N(0, I)$ | $\mathbf x$, $\mathbf z$, $p_\theta(\mathbf z)$ | $x$, $z$ ($x_0$, $x_T$ in diffusion) | $x$, code $z = f_\theta(x)$, no prior |
# | decoder $p_\theta(x \mid z)$, mean $\mathrm{decode}_\theta(z)$ | $p_\theta(\mathbf x\mid\mathbf z)$, "probabilistic decoder" | $p_\theta(x\mid z)$, mean $\mathrm{decode}_\theta(z)$ | $\hat x = g_\phi(z)$, deterministic |
# | encoder $q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \mathrm{diag}\,\sigma^2_\phi(x))$ | $q_\phi(\mathbf z\mid\mathbf x)$, "recognition model", "probabilistic encoder" | $q_\phi(z\mid x)$ | $z = f_\theta(x)$, deterministic |
# | $\mathrm{ELBO}(x) = \mathbb E_{q}[\log p_\theta(x\mid z)] - \mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))$ | $\mathcal L(\theta, \phi; \mathbf x^{(i)})$, "variational lower bound" | $\mathrm{ELBO}(x)$: "reconstruction" minus "prior matching" | (no bound: a squared error) |
#
# **Notebook 01's letters are swapped.** Notebook 01 writes the encoder $f_\theta$ and the decoder
# $g_\phi$; here, following Kingma & Welling (2014), $\phi$ are the encoder's parameters and $\theta$
# the decoder's. The correspondence: $f_\theta(x) \leftrightarrow \mu_\phi(x)$, the mean of
# $q_\phi(z\mid x)$ (a VAE's encoder adds a spread $\sigma_\phi(x)$), and
# $g_\phi(z) \leftrightarrow \mathrm{decode}_\theta(z) = \mathbb E_{p_\theta}[x\mid z]$ (a VAE's
# decoder adds noise around it, section 6). Kingma & Welling's own $g_\phi(\boldsymbol\epsilon, \mathbf x)$ is
# yet another map, the reparameterization $z = \mu + \sigma\odot\epsilon$ of section 5.
#
# In code: `mean`, `logvar` $=\log\sigma^2$ describe a Gaussian; per-example quantities are
# `(N,)` tensors in nats; images are `(N, 1, 8, 8)` in $[-1, 1]$.

# %%
import math

import matplotlib.pyplot as plt
import torch

from course_lib import (
    course_seed,
    data,
    gaussians,
    get_device,
    grading,
    plotting,
    seed_everything,
    set_num_threads,
    toy,
    vae,
    widgets,
)

SEED = course_seed()      # COURSE_SEED from the environment (default 0): rerun under any seed
gen = seed_everything(SEED)
set_num_threads(1)       # tiny networks: one CPU thread is fastest (COURSE_THREADS overrides)
device = get_device()
print("device:", device)

# %% [markdown]
# ## 1. Latent-variable models and the intractable marginal
#
# A latent-variable model explains a complicated $p(x)$ with two simple distributions (Prince 2023,
# chapter 17):
# a prior $p(z) = \mathcal N(0, I)$ on a (lower-dimensional) latent $z$ and a decoder
# $p_\theta(x\mid z)$, here a Gaussian whose mean is a network of $z$. New data come by
# **ancestral sampling**: $z \sim p(z)$, then $x \sim p_\theta(x\mid z)$. The likelihood of data
# is the marginal
#
# $$p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,dz ,$$
#
# an integral over all of latent space for every single $x$. With a 1-D latent it can be done by
# quadrature on a grid of $P$ points; with $K$ latent dimensions the grid needs $P^K$ points, which
# is why it is "intractable" for a real VAE (Kingma & Welling 2014, section 2.1).
#
# First a check that the quadrature is right, on a model whose marginal is known: the
# **linear-Gaussian model** $p(x\mid z) = \mathcal N(Wz + b, s^2 I)$, for which
# $p(x) = \mathcal N(b, WW^\top + s^2 I)$ (probabilistic PCA, Tipping & Bishop 1999).

# %%
lin1 = vae.LinearGaussianModel(torch.tensor([[1.0], [-0.5], [2.0]], dtype=torch.float64),
                               torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64), noise_std=0.4)
x_lin1 = lin1.sample(5, generator=gen)
by_quadrature = vae.log_marginal_quadrature(lin1, x_lin1, num_points=2001)
exact = lin1.log_marginal(x_lin1)
print("log p(x) by quadrature:", by_quadrature.numpy().round(6))
print("log p(x) exact:        ", exact.numpy().round(6))
assert torch.allclose(by_quadrature, exact, atol=1e-7)


# %% [markdown]
# Now a decoder with no closed-form marginal: the mean traces a curve,
# $f(z) = (1.5\,z,\ \sin 2z)$, with noise $s = 0.15$. The marginal density is a blurred copy of
# the curve, heavier where $p(z)$ is large. It is a density, so it must integrate to 1 over the
# plane; the quadrature (inside) and a Riemann sum over the plane (outside) check that.

# %%
class CurveModel:
    """p(z) = N(0, 1), p(x | z) = N(f(z), s^2 I) with f(z) = (1.5 z, sin 2z): a 1-D latent model."""

    latent_dim = 1

    def __init__(self, noise_std=0.15):
        self.noise_std = noise_std

    def decode(self, z):
        return torch.cat([1.5 * z, torch.sin(2 * z)], dim=1)

    def log_likelihood(self, x, z):
        return gaussians.gaussian_log_likelihood(x, self.decode(z), 2 * math.log(self.noise_std))


curve = CurveModel()
u = torch.linspace(-6, 6, 121, dtype=torch.float64)
v = torch.linspace(-2, 2, 41, dtype=torch.float64)
grid = torch.cartesian_prod(u, v)
log_px = vae.log_marginal_quadrature(curve, grid, num_points=801)
mass = log_px.exp().sum() * (u[1] - u[0]) * (v[1] - v[0])
print(f"integral of p(x) over the plane: {mass:.4f}")
assert abs(mass - 1) < 0.01

# %%
fig, ax = plt.subplots(figsize=(7, 2.8), layout="constrained")
ax.contourf(u, v, log_px.exp().reshape(121, 41).T, levels=30, cmap="viridis")
zs = torch.linspace(-2.5, 2.5, 200, dtype=torch.float64)[:, None]
ax.plot(*curve.decode(zs).T, "w--", lw=0.8, label="decoder mean f(z), |z| < 2.5")
ax.set_title("marginal p(x) of a 1-D latent model, by quadrature")
ax.legend(loc="upper left", fontsize=8)
ax.set_aspect("equal");

# %% [markdown]
# The naive Monte Carlo estimate $p(x) \approx \frac1S \sum_s p(x\mid z_s)$ with $z_s \sim p(z)$
# is unbiased, but for a given $x$ only a small range of $z$ explains it, so most prior samples
# contribute almost nothing and a few contribute a lot: the estimate is noisy (one term's standard
# deviation, printed below, is larger than $p(x)$ itself). Guessing *where* the good $z$ are, from
# $x$, is exactly the encoder's job (and importance sampling with it gives the IWAE bound, section 8).

# %% [markdown]
# How noisy it is can be computed exactly as well: the variance of one term is
# $\mathbb E_{p(z)}[p(x\mid z)^2] - p(x)^2$,
# and $\mathbb E_{p(z)}[p(x\mid z)^2]$ is the same 1-D integral with the likelihood squared, so the
# same quadrature gives it. The spread of many independent estimates must match it (checked to 5
# standard errors of a sample variance, $\sqrt{(m_4 - v^2)/n}$ with $m_4$ the fourth central moment).

# %%
class SquaredLikelihood:
    """log_likelihood = 2 log p(x | z) of the curve model: its 'marginal' is E_p(z)[p(x | z)^2]."""

    latent_dim = 1

    def log_likelihood(self, x, z):
        return 2 * curve.log_likelihood(x, z)


x_one = torch.tensor([[1.2, 0.9]], dtype=torch.float64)  # close to f(0.8)
exact_p = vae.log_marginal_quadrature(curve, x_one, num_points=4001).exp().item()
second_moment = vae.log_marginal_quadrature(SquaredLikelihood(), x_one, num_points=4001).exp().item()
rel_std_one = math.sqrt(second_moment - exact_p**2) / exact_p   # relative std of a single term
n_est, S_prior = 400, 100
z_prior = torch.randn(n_est, S_prior, 1, dtype=torch.float64, generator=gen)
lik = curve.log_likelihood(x_one.expand(n_est * S_prior, 2), z_prior.reshape(-1, 1)).exp().reshape(n_est, S_prior)
estimates = lik.mean(1)                                          # 400 independent estimates, S = 100 each
se = estimates.std() / math.sqrt(n_est)
var_exact = (second_moment - exact_p**2) / S_prior
var_se = math.sqrt(((estimates - estimates.mean()).pow(4).mean() - estimates.var()**2) / n_est)
print(f"p(x) by quadrature {exact_p:.4g}; {n_est} prior-sampling estimates (S = {S_prior}): "
      f"mean {estimates.mean():.4g} +- {se:.2g}")
print(f"relative std of one term: {rel_std_one:.2f} (quadrature); of an S = {S_prior} estimate: "
      f"{estimates.std() / exact_p:.3f} measured, {rel_std_one / math.sqrt(S_prior):.3f} predicted")
assert abs(estimates.mean() - exact_p) < 5 * se                 # unbiased ...
assert abs(estimates.var() - var_exact) < 5 * var_se            # ... with the predicted variance ...
assert rel_std_one > 1                                           # ... which is large: one term's std exceeds p(x)

# %% [markdown]
# **A slip to avoid: $\frac1n$, not $p(z_i)$.** Some texts write the naive estimate as
# $p(x) \approx \sum_{i=1}^n p(x\mid z_i)\,p(z_i)$ with $z_i \sim p(z)$: no $\frac1n$, and an extra
# $p(z_i)$. That mixes two recipes. A *quadrature* on a grid $z_1, \dots, z_n$ with spacing
# $\Delta z$ does weight each point by its density, $\sum_i p(x\mid z_i)\,p(z_i)\,\Delta z$ (what
# `log_marginal_quadrature` computes above). *Monte Carlo* draws the $z_i$ from $p(z)$, so the
# density is already in where the points fall:
#
# $$\hat p_n(x) = \frac1n\sum_{i=1}^n p(x\mid z_i), \qquad
#   \mathbb E[\hat p_n(x)] = \int p(x\mid z)\,p(z)\,dz = p(x)\quad\text{(unbiased for every } n).$$
#
# The slip's expectation is $n\int p(x\mid z)\,p(z)^2\,dz$. For the linear-Gaussian model it is
# closed form: $\mathcal N(z; 0, I_K)^2 = (4\pi)^{-K/2}\,\mathcal N(z; 0, \tfrac12 I_K)$, and
# $z \sim \mathcal N(0, \tfrac12 I)$ pushed through the model gives $\mathcal N(b, \tfrac12 WW^\top + s^2 I)$, so
#
# $$\mathbb E\Big[\sum_{i=1}^n p(x\mid z_i)\,p(z_i)\Big] = n\,(4\pi)^{-K/2}\,
#   \mathcal N\big(x;\ b,\ \tfrac12 WW^\top + s^2 I\big),$$
#
# which grows with $n$: it cannot estimate $p(x)$ for every $n$. Checked on the model `lin1` of
# the first cell ($K = 1$) with its exact $p(x)$, for $n = 10$ and $n = 1000$ (1000 repeats each):
# the right estimator averages to $p(x)$ and the slip to its predicted expectation (both to 5
# standard errors of the mean over repeats), which at $n = 1000$ is more than 5 standard errors
# away from $p(x)$. (The same texts then take the logarithm: even the
# unbiased $\hat p_n$ gives $\mathbb E\log\hat p_n \le \log p(x)$ by Jensen; that is the IWAE bound
# of section 8 with the prior as the proposal.)

# %%
g_slip = torch.Generator().manual_seed(SEED * 1000 + 904)   # its own stream: later cells draw as before
x_slip = x_lin1[:1]
p_exact = lin1.log_marginal(x_slip).exp().item()
half = vae.LinearGaussianModel(lin1.weight / math.sqrt(2), lin1.bias, lin1.noise_std)  # N(b, WW^T/2 + s^2 I)
K1 = lin1.latent_dim
repeats = 1000
for n_mc in (10, 1000):
    z_mc = torch.randn(repeats * n_mc, K1, dtype=torch.float64, generator=g_slip)
    lik_mc = lin1.log_likelihood(x_slip.expand(len(z_mc), -1), z_mc).exp().reshape(repeats, n_mc)
    prior_mc = vae.standard_normal_log_prob(z_mc).exp().reshape(repeats, n_mc)
    right, slip = lik_mc.mean(1), (lik_mc * prior_mc).sum(1)     # (1/n) sum p(x|z_i)  vs  sum p(x|z_i) p(z_i)
    se_right, se_slip = right.std().item() / math.sqrt(repeats), slip.std().item() / math.sqrt(repeats)
    slip_expected = n_mc * (4 * math.pi) ** (-K1 / 2) * half.log_marginal(x_slip).exp().item()
    print(f"n = {n_mc:4d}: p(x) = {p_exact:.5f}; (1/n) sum p(x|z_i): {right.mean():.5f} +- {se_right:.5f}; "
          f"sum p(x|z_i) p(z_i): {slip.mean():.5f} +- {se_slip:.5f} (predicted {slip_expected:.5f})")
    assert abs(right.mean().item() - p_exact) < 5 * se_right        # unbiased
    assert abs(slip.mean().item() - slip_expected) < 5 * se_slip    # the slip estimates something else ...
    if n_mc == 1000:
        assert abs(slip_expected - p_exact) > 5 * se_slip           # ... which is not p(x)

# %% [markdown]
# ## 2. The ELBO, two ways
#
# **By Jensen** (Prince 2023, chapter 17; the result is Kingma & Welling 2014, eq. 3). For any
# distribution $q(z\mid x)$ that is positive where $p(x, z)$ is, multiply and divide by it, then
# use that $\log$ is concave,
# $\log \mathbb E[Y] \ge \mathbb E[\log Y]$:
#
# $$\log p_\theta(x) = \log \mathbb E_{q(z|x)}\Big[\frac{p_\theta(x\mid z)\,p(z)}{q(z\mid x)}\Big]
#   \ \ge\ \mathbb E_{q(z|x)}\Big[\log \frac{p_\theta(x, z)}{q(z\mid x)}\Big] = \mathrm{ELBO}(x)
#   = \underbrace{\mathbb E_{q}[\log p_\theta(x\mid z)]}_{\text{reconstruction}}
#   - \underbrace{\mathrm{KL}(q(z\mid x)\,\|\,p(z))}_{\text{prior matching}} .$$
#
# The second term compares $q(z\mid x)$ with the **prior** $p(z)$: it is the *prior-matching* term
# (Chan 2024's name). Some texts label it "matching posteriors"; that is misleading, since the
# posterior $p(z\mid x)$ does not appear in it. The term that matches posteriors,
# $\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$, is the gap in the next derivation, and it is not part
# of the ELBO (the orthogonal-columns cell at the end of this section shows the two differ: one is
# 0 where the other is not).
#
# **By the exact identity** (Kingma & Welling 2014, eq. 1; Chan 2024). Since $p(x) = p(x, z)/p(z\mid x)$ for every $z$,
#
# $$\log p(x) = \mathbb E_{q}\Big[\log \frac{p(x,z)}{q(z\mid x)}\Big]
#   + \mathbb E_{q}\Big[\log\frac{q(z\mid x)}{p(z\mid x)}\Big]
#   = \mathrm{ELBO}(x) + \mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x)) .$$
#
# The gap is a KL, so it is $\ge 0$ (the bound) and it is $0$ exactly when $q(z\mid x)$ is the true
# posterior $p(z\mid x)$: for a fixed model, maximizing the ELBO over $q$ *is* minimizing
# $\mathrm{KL}(q\,\|\,p(z\mid x))$, approximate posterior inference (Prince 2023, chapter 17).
#
# The linear-Gaussian model has everything in closed form:
# $p(z\mid x) = \mathcal N\big(M^{-1}W^\top(x-b),\ s^2 M^{-1}\big)$ with $M = W^\top W + s^2 I$.
# `vae.elbo` estimates the reconstruction term with $S$ reparameterized samples and uses the KL in
# closed form (Kingma & Welling 2014, eq. 10). We check, for the exact posterior and for deliberately
# wrong encoders: ELBO $\le \log p(x)$ and $\log p(x) - \mathrm{ELBO} = \mathrm{KL}(q\,\|\,p(z|x))$,
# both within 5 standard errors of the Monte Carlo estimate (the table shows the first data point).

# %%
lin = vae.LinearGaussianModel(torch.randn(5, 2, dtype=torch.float64, generator=gen),
                              torch.randn(5, dtype=torch.float64, generator=gen), noise_std=0.5)
x_lin = lin.sample(3, generator=gen)
log_p = lin.log_marginal(x_lin)
marginal = torch.distributions.MultivariateNormal(lin.bias, lin.weight @ lin.weight.T + 0.25 * torch.eye(5))
assert torch.allclose(log_p, marginal.log_prob(x_lin))  # closed form vs torch.distributions
post_mean, post_cov = lin.posterior(x_lin)

# %%
encoders = {
    "diagonal of the exact posterior": lin.encode(x_lin),
    "mean shifted by 0.5": (post_mean + 0.5, lin.encode(x_lin)[1]),
    "variance x 4": (post_mean, lin.encode(x_lin)[1] + math.log(4)),
    "the prior N(0, I)": (torch.zeros_like(post_mean), torch.zeros_like(post_mean)),
}
S = 20_000
print(f"{'encoder q(z|x)':32s} {'log p(x) - ELBO':>16s} {'KL(q || p(z|x))':>16s} {'MC s.e.':>8s}")
for name, (m, lv) in encoders.items():
    # S single-sample ELBOs per data point: their mean is the estimate, their spread its standard error
    singles = vae.elbo(lin, x_lin.repeat(S, 1), 1, gen, encoded=(m.repeat(S, 1), lv.repeat(S, 1))).reshape(S, -1)
    est, se = singles.mean(0), singles.std(0) / math.sqrt(S)
    q = torch.distributions.MultivariateNormal(m, torch.diag_embed(lv.exp()))
    gap = torch.distributions.kl_divergence(q, torch.distributions.MultivariateNormal(post_mean, post_cov))
    print(f"{name:32s} {(log_p - est)[0]:16.4f} {gap[0]:16.4f} {se[0]:8.4f}")
    assert torch.all(est <= log_p + 5 * se)                      # the bound, to 5 s.e.
    assert torch.all((log_p - est - gap).abs() < 5 * se)        # the gap is KL(q || p(z|x)), to 5 s.e.

# %% [markdown]
# ### What a diagonal $q(z\mid x)$ can and cannot fit
#
# A VAE's encoder is a *diagonal* Gaussian; the exact posterior of the linear-Gaussian model,
# $p(z\mid x) = \mathcal N(\mu, \Sigma)$, is correlated unless $W$'s columns are orthogonal. Which
# diagonal $q = \mathcal N(m, \mathrm{diag}\,v)$ does the ELBO pick? With the precision
# $\Lambda = \Sigma^{-1}$,
#
# $$\mathrm{KL}(q\,\|\,p) = \tfrac12\Big[\sum_j \Lambda_{jj} v_j + (m-\mu)^\top\Lambda(m-\mu) - K
#   - \sum_j \log v_j - \log\det\Lambda\Big].$$
#
# Setting the derivatives to zero gives $m = \mu$ and $v_j = 1/\Lambda_{jj}$: the ELBO's $q$ matches
# the **precision's** diagonal, and its gap is the minimum
# $\tfrac12\big[\sum_j\log\Lambda_{jj} - \log\det\Lambda\big]$; in two dimensions
# $1/\Lambda_{jj} = \Sigma_{jj}(1-\rho^2)$ and the gap is $-\tfrac12\log(1-\rho^2)$ nats for every
# $x$, with $\rho$ the posterior correlation (Bishop 2006, section 10.1.2). Even the best diagonal
# encoder leaves that gap, and it is *narrower* than the posterior. The other natural choice, the
# posterior's own marginal variances $v_j = \Sigma_{jj}$ (what `LinearGaussianModel.encode` returns, the
# first row of the table above), minimizes the *forward* KL $\mathrm{KL}(p\,\|\,q)$ instead: notebook
# 00's covering vs seeking, again.
#
# A model with strongly non-orthogonal columns (fixed, so the picture is the same for every seed)
# shows both, as one- and two-standard-deviation ellipses. Asserted: the best diagonal's KL equals
# $-\tfrac12\log(1-\rho^2)$ and its variances $\Sigma_{jj}(1-\rho^2)$ (float64 precision, $10^{-12}$);
# the KL's gradient vanishes there ($10^{-10}$); each choice wins its own KL; and its ELBO gap,
# estimated with `vae.elbo`, is that KL to 5 Monte Carlo standard errors.

# %%
lin_corr = vae.LinearGaussianModel(torch.tensor([[1.0, 0.9], [0.6, 0.8], [0.3, 0.2]], dtype=torch.float64),
                                   torch.zeros(3, dtype=torch.float64), noise_std=0.5)
g_corr = torch.Generator().manual_seed(SEED * 1000 + 905)
x_corr = lin_corr.sample(1, generator=g_corr)
mu_c, cov_c = lin_corr.posterior(x_corr)                       # (1, 2), (2, 2)
rho = (cov_c[0, 1] / cov_c.diagonal().prod().sqrt()).item()
p_c = torch.distributions.MultivariateNormal(mu_c[0], cov_c)
q_best = gaussians.mean_field_gaussian(mu_c, cov_c)            # v_j = 1 / (Sigma^-1)_jj
q_marg = lin_corr.encode(x_corr)                               # v_j = Sigma_jj
def diag_q(q):
    return torch.distributions.MultivariateNormal(q[0][0], torch.diag(q[1][0].exp()))
reverse = {k: torch.distributions.kl_divergence(diag_q(q), p_c).item() for k, q in (("best", q_best), ("marg", q_marg))}
forward = {k: torch.distributions.kl_divergence(p_c, diag_q(q)).item() for k, q in (("best", q_best), ("marg", q_marg))}
print(f"posterior correlation rho = {rho:.3f}; -1/2 log(1 - rho^2) = {-0.5 * math.log(1 - rho**2):.6f} nats")
print(f"KL(q || p(z|x)): best diagonal {reverse['best']:.6f}, marginal variances {reverse['marg']:.6f}; "
      f"KL(p(z|x) || q): best diagonal {forward['best']:.6f}, marginal variances {forward['marg']:.6f}")
assert abs(reverse["best"] + 0.5 * math.log(1 - rho**2)) < 1e-12
assert torch.allclose(q_best[1][0].exp(), cov_c.diagonal() * (1 - rho**2), rtol=1e-12, atol=0)
m_var = q_best[0][0].clone().requires_grad_()
lv_var = q_best[1][0].clone().requires_grad_()
kl_at_best = torch.distributions.kl_divergence(
    torch.distributions.MultivariateNormal(m_var, torch.diag(lv_var.exp())), p_c)
grads = torch.autograd.grad(kl_at_best, (m_var, lv_var))
assert max(g.abs().max().item() for g in grads) < 1e-10        # a stationary point (KL is convex in m, log v)
assert reverse["best"] < reverse["marg"] and forward["marg"] < forward["best"]  # each wins its own KL
singles_c = vae.elbo(lin_corr, x_corr.expand(S, -1), 1, g_corr,
                     encoded=(q_best[0].expand(S, -1), q_best[1].expand(S, -1)))
gap_c, gap_c_se = (lin_corr.log_marginal(x_corr) - singles_c.mean()).item(), singles_c.std().item() / math.sqrt(S)
print(f"ELBO gap of the best diagonal encoder: {gap_c:.4f} +- {gap_c_se:.4f} nats (Monte Carlo)")
assert abs(gap_c - reverse["best"]) < 5 * gap_c_se
post_draws = vae.reparameterize_full(mu_c.expand(2000, -1), cov_c, generator=g_corr)   # section 5
widgets.plot_posterior_ellipses(
    mu_c[0], cov_c,
    {f"best diagonal q: KL(q||p) = {reverse['best']:.2f} nats": (q_best[0][0], q_best[1][0]),
     f"marginal variances: KL(q||p) = {reverse['marg']:.2f} nats": (q_marg[0][0], q_marg[1][0])},
    samples=post_draws);

# %% [markdown]
# When $W$ has orthogonal columns, $M$ is diagonal and the exact posterior is a diagonal Gaussian,
# so the encoder can be exact. Then $\log p(x, z) - \log q(z\mid x) = \log p(x)$ for **every** $z$:
# the single-sample estimate of the ELBO written as $\mathbb E_q[\log p(x,z) - \log q(z|x)]$
# (Kingma & Welling's estimator A, eq. 6, `analytic_kl=False`) has zero variance and equals
# $\log p(x)$. (With the KL in closed form, estimator B, the two terms fluctuate separately, so it is
# exact only on average.)

# %%
q_orth, _ = torch.linalg.qr(torch.randn(5, 2, dtype=torch.float64, generator=gen))
lin_orth = vae.LinearGaussianModel(q_orth * torch.tensor([1.5, 0.7], dtype=torch.float64),
                                   torch.zeros(5, dtype=torch.float64), noise_std=0.5)
x_orth = lin_orth.sample(4, generator=gen)
single_samples = torch.stack([vae.elbo(lin_orth, x_orth, 1, gen, analytic_kl=False) for _ in range(5)])
print("five single-sample ELBOs:\n", single_samples.numpy().round(10))
print("log p(x):", lin_orth.log_marginal(x_orth).numpy().round(10))
assert torch.allclose(single_samples, lin_orth.log_marginal(x_orth).expand(5, -1), rtol=0, atol=1e-10)
prior_matching = gaussians.kl_standard_normal(*lin_orth.encode(x_orth))   # KL(q(z|x) || p(z))
print("with q = p(z|x): KL(q || p(z|x)) = 0, but the prior-matching term KL(q || p(z)) =",
      prior_matching.numpy().round(4))
assert torch.all(prior_matching > 0.1)    # prior matching is not posterior matching

# %% [markdown]
# **Derivation 1 (graded by hand, ★★☆, 4 points).** For the linear-Gaussian model
# $p(z) = \mathcal N(0, I_K)$, $p(x\mid z) = \mathcal N(x;\ Wz + b,\ s^2 I_D)$, derive the
# posterior used above,
# $p(z\mid x) = \mathcal N\big(M^{-1}W^\top(x-b),\ s^2 M^{-1}\big)$ with $M = W^\top W + s^2 I$.
# Then explain in one sentence why, when $W$ has orthogonal columns, a diagonal Gaussian encoder
# can be exact. Write your answer (in Markdown, with LaTeX) in the cell below.

# %% [markdown] nbgrader={"grade": true, "grade_id": "linear_gaussian_posterior", "locked": false, "points": 4, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# **Model answer.** By Bayes, $\log p(z\mid x) = \log p(x\mid z) + \log p(z) + \text{const}(x)$:
#
# $$\log p(z\mid x) = -\frac{\lVert x - b - Wz\rVert^2}{2s^2} - \frac{\lVert z\rVert^2}{2} + c
#   = -\frac{1}{2s^2}\Big(z^\top (W^\top W + s^2 I) z - 2 z^\top W^\top (x - b)\Big) + c' .$$
#
# It is quadratic in $z$, so the posterior is Gaussian. Matching it with
# $-\frac12 (z-\mu)^\top\Sigma^{-1}(z-\mu) = -\frac12 z^\top\Sigma^{-1}z + z^\top\Sigma^{-1}\mu + c''$
# gives $\Sigma^{-1} = M/s^2$, i.e. $\Sigma = s^2 M^{-1}$, and $\Sigma^{-1}\mu = W^\top(x-b)/s^2$,
# i.e. $\mu = M^{-1}W^\top(x-b)$ ($M$ is symmetric positive definite, so invertible). If
# $W^\top W$ is diagonal, so are $M$ and $\Sigma$: the exact posterior is a diagonal Gaussian, which
# the encoder family contains, so the ELBO gap $\mathrm{KL}(q\,\|\,p(z\mid x))$ can be 0.
#
# **Rubric (4 points).** 1 point: Bayes' rule in log form, dropping the terms free of $z$.
# 1 point: expanding the square and collecting the quadratic and linear terms in $z$ correctly.
# 1 point: completing the square (or matching coefficients) to read off both the covariance
# $s^2M^{-1}$ and the mean $M^{-1}W^\top(x-b)$; half a point if only one is right. 1 point: the
# orthogonal-columns remark ($M$ diagonal, so the posterior is diagonal and the gap can vanish).
# Quoting the result without the algebra earns at most 1 point.
# ### END SOLUTION

# %% [markdown]
# ## 3. The KL term in closed form, and by Monte Carlo
#
# For $q = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)$ and $p = \mathcal N(0, I)$ the KL term needs no
# sampling (Kingma & Welling 2014, Appendix B):
#
# $$\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q(z) - \log p(z)]
#   = \tfrac12 \sum_{j=1}^K \big(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\big).$$
#
# **Worked example.** This is notebook 00's KL between univariate Gaussians with
# $\mu_2 = 0$, $\sigma_2 = 1$, summed over the $K$ independent coordinates (you implemented that
# formula in notebook 00, so it is not an exercise again; you use it in Exercise 1 below).
# `gaussians.kl_standard_normal` and the general `gaussians.gaussian_kl` agree:

# %%
m_kl = torch.tensor([[0.0, 0.0], [1.0, -2.0], [0.3, 0.0]], dtype=torch.float64)
lv_kl = torch.tensor([[0.0, 0.0], [math.log(0.5), 1.0], [-20.0, 4.0]], dtype=torch.float64)
kl_closed_form = 0.5 * (m_kl.pow(2) + lv_kl.exp() - 1.0 - lv_kl).sum(dim=1)   # (N, K) -> (N,)
kl_general = gaussians.gaussian_kl(m_kl, lv_kl, torch.zeros_like(m_kl), torch.zeros_like(lv_kl)).sum(1)
print("KL(q || N(0, I)) per row:", kl_closed_form.numpy().round(6))
assert torch.allclose(kl_closed_form, gaussians.kl_standard_normal(m_kl, lv_kl), rtol=1e-12)
assert torch.allclose(kl_closed_form, kl_general, rtol=1e-12) and kl_closed_form[0] == 0

# %% [markdown]
# The Monte Carlo estimate $\frac1S\sum_s [\log q(z_s) - \log p(z_s)]$, $z_s \sim q$, agrees within
# its standard error (course_lib's implementation is used from here on):

# %%
m_q = torch.tensor([[1.0, -0.5, 0.0]], dtype=torch.float64)
lv_q = torch.tensor([[math.log(0.25), 0.0, math.log(3.0)]], dtype=torch.float64)
z_q = vae.reparameterize(m_q.expand(100_000, 3), lv_q.expand(100_000, 3), generator=gen)
q_dist = torch.distributions.Normal(m_q, (0.5 * lv_q).exp())
log_ratio = (q_dist.log_prob(z_q) - torch.distributions.Normal(0.0, 1.0).log_prob(z_q)).sum(1)
closed = gaussians.kl_standard_normal(m_q, lv_q).item()
mc, mc_se = log_ratio.mean().item(), log_ratio.std().item() / math.sqrt(100_000)
print(f"KL closed form {closed:.4f}, Monte Carlo {mc:.4f} +- {mc_se:.4f}")
assert abs(mc - closed) < 5 * mc_se

# %% [markdown]
# ## 4. A Gaussian decoder is an $L_2$ loss
#
# With $p_\theta(x\mid z) = \mathcal N(x;\ \hat x,\ \sigma_{\mathrm{dec}}^2 I)$,
# $\hat x = \mathrm{decode}_\theta(z)$, $x \in \mathbb R^D$ (Kingma & Welling 2014, Appendix C.2;
# Chan 2024):
#
# $$\log p_\theta(x\mid z) = -\frac{\lVert x - \hat x\rVert^2}{2\sigma_{\mathrm{dec}}^2}
#   - \frac D2 \log(2\pi\sigma_{\mathrm{dec}}^2),$$
#
# so maximizing the reconstruction term is minimizing the squared error. The variance is not
# innocent: multiplying the ELBO by $2\sigma_{\mathrm{dec}}^2$,
# $-\lVert x-\hat x\rVert^2 - 2\sigma_{\mathrm{dec}}^2\,\mathrm{KL} + \text{const}$: a larger decoder
# variance is a larger weight on the KL term (section 10 shows what that does).

# %%
small = vae.VAE(4, latent_dim=2, hidden_dims=(8,), decoder_std=0.3).double()
x4, z4 = torch.randn(6, 4, dtype=torch.float64, generator=gen), torch.randn(6, 2, dtype=torch.float64, generator=gen)
x_hat = small.decode(z4)
l2_form = -(x4 - x_hat).pow(2).sum(1) / (2 * 0.3**2) - 4 / 2 * math.log(2 * math.pi * 0.3**2)
assert torch.allclose(small.log_likelihood(x4, z4), l2_form)

# %% [markdown]
# **Exercise 1 (short, ★☆☆, 2 points).** The one-sample ELBO of a Gaussian decoder, given the
# decoder output $\hat x$ and the encoder's `mean`, `logvar`: the log-likelihood above (with its
# constant) minus the KL of section 3. The check compares with `course_lib` on random float64
# inputs, including $q$ equal to the prior (KL = 0) and log-variances from $-20$ to $4$.

# %% nbgrader={"grade": false, "grade_id": "gaussian_elbo", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gaussian_elbo(x, x_hat, mean, logvar, decoder_std):
    """One-sample ELBO with decoder N(x; x_hat, decoder_std^2 I) and prior N(0, I).

    x, x_hat: (N, D); mean, logvar: (N, K); decoder_std: float. Returns (N,), nats.
    """
    ### BEGIN SOLUTION
    d = x.shape[1]
    rec = -(x - x_hat).pow(2).sum(1) / (2 * decoder_std**2) - 0.5 * d * math.log(2 * math.pi * decoder_std**2)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
    return rec - kl
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "gaussian_elbo_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("gaussian_elbo", gaussian_elbo)

# %% [markdown]
# ## 5. Gradients through a sample: reparameterization vs score function
#
# Training needs $\nabla_\phi \mathbb E_{q_\phi(z|x)}[f(z)]$, but $z$ is *sampled* from a
# distribution that depends on $\phi$. Two unbiased estimators:
#
# - **Score function / REINFORCE** (Williams 1992): $\nabla_\phi \mathbb E_q[f] =
#   \mathbb E_q[f(z)\,\nabla_\phi \log q_\phi(z)]$. Needs only values of $f$, but multiplies them by a
#   zero-mean score: high variance.
# - **Reparameterization** (Kingma & Welling 2014, section 2.4; Rezende et al. 2014): write
#   $z = \mu + \sigma \odot \epsilon$, $\epsilon \sim \mathcal N(0, I)$. The randomness no longer
#   depends on $\phi$, so $\nabla_\phi \mathbb E_\epsilon[f(\mu + \sigma\epsilon)] =
#   \mathbb E_\epsilon[\nabla_\phi f(\mu + \sigma\epsilon)]$: backpropagation only passes through
#   the deterministic path $\mu + \sigma\odot\epsilon$, the noise being an input like $x$. Uses the
#   slope of $f$: much lower variance.
#
# **Worked example.** The reparameterized sample is one line, $z = \mu + e^{\log\sigma^2/2}\odot
# \epsilon$ (you write it again inside Exercise 2). Gradients flow to $\mu$ and $\log\sigma^2$
# through it: $\partial z_j/\partial\mu_j = 1$ and $\partial z_j/\partial\log\sigma_j^2 =
# \tfrac12\sigma_j\epsilon_j$, which autograd reproduces:

# %%
eps_demo = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED * 1000 + 901))
mean_demo = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
logvar_demo = torch.tensor([math.log(0.25), 1.0], dtype=torch.float64, requires_grad=True)
z_demo = mean_demo + torch.exp(0.5 * logvar_demo) * eps_demo            # (4, 2), one row per draw
z_demo.sum().backward()
print("dz/dmean summed over draws:", mean_demo.grad.numpy(), "| dz/dlogvar:", logvar_demo.grad.numpy().round(6))
assert torch.equal(mean_demo.grad, torch.full((2,), 4.0, dtype=torch.float64))
assert torch.allclose(logvar_demo.grad, (0.5 * torch.exp(0.5 * logvar_demo) * eps_demo).sum(0).detach())

# %% [markdown]
# A check with a known answer: $f(z) = \lVert z - c\rVert^2$ gives
# $\mathbb E_q f = \lVert\mu - c\rVert^2 + \sum_j \sigma_j^2$, so $\nabla_\mu = 2(\mu - c)$ and
# $\partial / \partial \log\sigma_j^2 = \sigma_j^2$. Both estimators average to these (within 5
# standard errors); the score function's variance is more than ten times larger (the ratio is
# printed).

# %%
c = torch.tensor([1.0, -0.5], dtype=torch.float64)
m0, lv0 = torch.tensor([-1.0, 1.0], dtype=torch.float64), torch.tensor([0.0, math.log(0.5)], dtype=torch.float64)
truth = {"mean": 2 * (m0 - c), "logvar": lv0.exp()}
draws = {name: est(lambda z: (z - c).pow(2).sum(1), m0, lv0, 50_000, generator=gen)
         for name, est in (("reparameterization", vae.reparameterization_gradient),
                           ("score function", vae.score_function_gradient))}
for name, g_s in draws.items():
    for field in ("mean", "logvar"):
        vals = getattr(g_s, field)
        se_g = vals.std(0) / math.sqrt(50_000)
        print(f"{name:18s} d/d{field:6s}: {vals.mean(0).numpy().round(3)} (true {truth[field].numpy().round(3)}), "
              f"per-sample variance {vals.var(0).numpy().round(2)}")
        assert torch.all((vals.mean(0) - truth[field]).abs() < 5 * se_g)
ratio = draws["score function"].mean.var(0) / draws["reparameterization"].mean.var(0)
print("variance ratio score / reparameterization (d/dmean):", ratio.numpy().round(1))
assert torch.all(ratio > 10)

# %% [markdown]
# The widget shows one coordinate: move $\mu - c$ and $\sigma$ and watch both histograms stay
# centred on the true gradient while the score-function one spreads out.

# %%
widgets.plot_gradient_estimators();

# %%
widgets.gradient_estimator_explorer()

# %% [markdown]
# ### A full covariance: $x = \mu + \Sigma^{1/2} w$
#
# The trick is not limited to diagonal Gaussians. Let $w \sim \mathcal N(0, I_D)$ and
# $x = \mu + A w$ for a fixed $D\times D$ matrix $A$. An affine map of a Gaussian is Gaussian, with
#
# $$\mathbb E[x] = \mu, \qquad \mathrm{Cov}[x] = A\,\mathbb E[ww^\top]\,A^\top = AA^\top ,$$
#
# so **any** $A$ with $AA^\top = \Sigma$ samples $\mathcal N(\mu, \Sigma)$, differentiably in $\mu$
# and $A$. Two standard choices (Chan 2024 uses the first; Kingma & Welling 2019, section 2.5, the
# second):
#
# - **Eigendecomposition.** $\Sigma$ is symmetric positive semi-definite, so $\Sigma = U\Lambda U^\top$
#   with $U$ orthogonal and $\Lambda \ge 0$ diagonal. The symmetric square root
#   $\Sigma^{1/2} = U\Lambda^{1/2}U^\top$ satisfies $\Sigma^{1/2}\Sigma^{1/2\top} =
#   U\Lambda^{1/2}U^\top U\Lambda^{1/2}U^\top = U\Lambda U^\top = \Sigma$: stretch $w$ by
#   $\sqrt{\lambda_i}$ along the eigenvectors.
# - **Cholesky.** A positive definite $\Sigma$ has a unique $\Sigma = LL^\top$ with $L$ lower
#   triangular and $L_{ii} > 0$. Cheaper ($D^3/3$ operations), $\log\det\Sigma = 2\sum_i\log L_{ii}$
#   for free, and an encoder can output $L$ directly: the usual full-covariance encoder.
#
# **The two maps differ, the distributions do not.** $Q = L^{-1}\Sigma^{1/2}$ is orthogonal
# ($QQ^\top = L^{-1}\Sigma L^{-\top} = I$), so $\Sigma^{1/2} w = L\,(Qw)$: the same $w$ lands on
# different points, but $Qw \sim \mathcal N(0, I)$ too. For a diagonal $\Sigma$ both are
# $\mathrm{diag}(\sigma)$ and $x = \mu + \sigma\odot w$, the reparameterization above.
#
# `gaussians.covariance_sqrt` computes both factors and `vae.reparameterize_full` samples with
# either. Checked on the exact posterior covariance of section 2's figure: both factors reproduce
# $\Sigma$ to float64 rounding ($10^{-14}$ relative); $Q$ is orthogonal ($10^{-12}$); the same $w$
# gives points a typical distance apart comparable to $\Sigma$'s scale; each entry of the sample
# covariance of $10^5$ draws is within 5 standard errors of $\Sigma_{ij}$ (for Gaussian data the
# sample covariance's standard error is $\sqrt{(\Sigma_{ii}\Sigma_{jj} + \Sigma_{ij}^2)/n}$); and a
# diagonal $\Sigma$ gives exactly `vae.reparameterize`'s draws. One practical difference: autograd
# through a generic eigendecomposition is undefined where eigenvalues repeat, e.g. at
# $\Sigma = I$ (PyTorch returns NaN), while the square root itself is smooth there;
# `covariance_sqrt` uses the closed-form derivative ($A\,dA + dA\,A = d\Sigma$), finite for every
# positive definite $\Sigma$.

# %%
factors = {m: gaussians.covariance_sqrt(cov_c, m) for m in ("eigh", "cholesky")}
for m, a in factors.items():
    rel_err = ((a @ a.T - cov_c).abs().max() / cov_c.abs().max()).item()
    print(f"{m:8s}: A =\n{a.numpy().round(4)}\n  max |A A^T - Sigma| / max |Sigma| = {rel_err:.1e}")
    assert rel_err < 1e-14
q_rot = torch.linalg.solve_triangular(factors["cholesky"], factors["eigh"], upper=False)  # L^-1 Sigma^(1/2)
assert torch.allclose(q_rot @ q_rot.T, torch.eye(2, dtype=torch.float64), rtol=0, atol=1e-12)
n_full = 100_000
w_full = torch.randn(n_full, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(SEED * 1000 + 906))
full_draws = {m: vae.reparameterize_full(torch.zeros(n_full, 2, dtype=torch.float64), cov_c, m, noise=w_full)
              for m in factors}
apart = (full_draws["eigh"] - full_draws["cholesky"]).norm(dim=1).mean().item()
print(f"same w, two maps: mean distance {apart:.3f} (sqrt of trace Sigma: {cov_c.trace().sqrt():.3f})")
assert apart > 0.1 * cov_c.trace().sqrt().item()                 # different points ...
se_cov = ((cov_c.diagonal()[:, None] * cov_c.diagonal()[None] + cov_c**2) / n_full).sqrt()
for m, x_m in full_draws.items():
    emp = x_m.T @ x_m / n_full                                    # the mean is known (0)
    print(f"{m:8s}: sample covariance {emp.numpy().round(4).tolist()}, "
          f"largest |error| / s.e. {((emp - cov_c) / se_cov).abs().max():.2f}")
    assert ((emp - cov_c).abs() < 5 * se_cov).all()              # ... the same distribution
lv_d = torch.log(torch.tensor([[0.3, 2.0]], dtype=torch.float64)).expand(5, 2)
diag_draws = vae.reparameterize(torch.zeros(5, 2, dtype=torch.float64), lv_d, torch.Generator().manual_seed(SEED))
for m in factors:
    same = vae.reparameterize_full(torch.zeros(5, 2, dtype=torch.float64), torch.diag(lv_d[0].exp()), m,
                                   torch.Generator().manual_seed(SEED))
    assert torch.allclose(same, diag_draws, rtol=0, atol=1e-15)  # diagonal: both are mu + sigma * eps
eye = torch.eye(2, dtype=torch.float64, requires_grad=True)
evals, evecs = torch.linalg.eigh(eye)
((evecs * evals.sqrt()) @ evecs.T).sum().backward()
print("gradient of sum(Sigma^(1/2)) at Sigma = I: through torch.linalg.eigh", eye.grad.numpy().tolist())
naive_nan = bool(eye.grad.isnan().any())
eye.grad = None
gaussians.covariance_sqrt(eye).sum().backward()
print("                                          course_lib's closed form ", eye.grad.numpy().tolist())
assert naive_nan and torch.allclose(eye.grad, torch.full((2, 2), 0.5, dtype=torch.float64))  # d sqrt(S) = dS/2
widgets.plot_square_root_maps(mu_c[0], cov_c, seed=SEED);

# %% [markdown]
# ## 6. A VAE on the digits
#
# Two networks. The encoder $q_\phi(z\mid x)$ infers a latent from the data: Kingma & Welling (2014)
# call it the **recognition model**, others the **inference network**. The decoder
# $p_\theta(x\mid z)$ generates data from a latent: the **generative model** or **generation
# network**. Here both are MLPs; $q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \mathrm{diag}\,
# \sigma^2_\phi(x))$ with a 2-D latent, so the latent space can be drawn; Gaussian decoder with a
# learned scalar $\sigma_{\mathrm{dec}}$. The loss is the negative single-sample ELBO (Kingma &
# Welling 2014, eq. 10 with $L = 1$), averaged over a minibatch:
# for each $x$: encode, draw $z = \mu + \sigma\epsilon$, decode, score $\log p_\theta(x\mid z)$,
# subtract the closed-form KL (their Algorithm 1).

# %%
x_train, y_train, x_test, y_test = data.train_test_split_digits(test_fraction=0.2)
digits_vae = vae.VAE((1, 8, 8), latent_dim=2, hidden_dims=(128, 128), decoder_std=0.5, learn_decoder_std=True)
history = vae.train_vae(digits_vae, x_train, num_steps=1500, batch_size=128, lr=2e-3, generator=gen, device=device)
digits_vae.eval();

# %%
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
steps = torch.arange(1, len(history.losses) + 1)
neg = -torch.tensor(history.losses)
ax.plot(steps, neg, lw=0.5, alpha=0.4)
ax.plot(steps[49:], neg.unfold(0, 50, 1).mean(1), lw=1.5, label="moving average (50 steps)")
ax.set_ylim(neg[200:].min() - 5, neg.max() + 5)
ax.set(xlabel="step", ylabel="ELBO (nats per image)", title="training ELBO (minibatch estimates)")
ax.legend();

# %% [markdown]
# The ELBO per image (10 samples of $z$ each): training raised it far above its value at
# initialization (asserted to 5 standard errors over the test images). It is higher on the
# training images than on the held-out test images; that generalization gap (printed with its
# standard error over images) measures overfitting, and it is small next to what training gained:
# less than a third of the gain on the held-out images (asserted to 5 standard errors).

# %%
x_test_d = x_test.to(device)
with torch.no_grad():
    test_elbos = vae.elbo(digits_vae, x_test_d, num_samples=10, generator=gen).cpu().double()
    train_elbos = vae.elbo(digits_vae, x_train.to(device), num_samples=10, generator=gen).cpu().double()
    untrained = vae.VAE((1, 8, 8), 2, (128, 128), decoder_std=0.5).to(device)
    untrained_elbos = vae.elbo(untrained, x_test_d, 10, gen).cpu().double()
test_elbo, train_elbo, untrained_elbo = (test_elbos.mean().item(), train_elbos.mean().item(),
                                         untrained_elbos.mean().item())
gain, gap = test_elbo - untrained_elbo, train_elbo - test_elbo
gain_se = (test_elbos - untrained_elbos).std().item() / math.sqrt(len(test_elbos))      # same test images
gap_se = math.sqrt(train_elbos.var() / len(train_elbos) + test_elbos.var() / len(test_elbos))
margin = gain / 3 - gap            # = 4/3 test - 1/3 untrained - train, per-image terms independent
margin_se = math.sqrt((4 * test_elbos - untrained_elbos).div(3).var() / len(test_elbos)
                      + train_elbos.var() / len(train_elbos))
print(f"ELBO per image: untrained {untrained_elbo:.1f}; trained: train {train_elbo:.2f} / test {test_elbo:.2f} nats; "
      f"gain {gain:.1f} +- {gain_se:.1f}; generalization gap {gap:.2f} +- {gap_se:.2f} ({gap / gain:.0%} of the gain); "
      f"decoder std {digits_vae.decoder_logvar.exp().sqrt().item():.3f}")
assert gain > 5 * gain_se          # training raised the test ELBO
assert margin > 5 * margin_se      # the gap is less than a third of the gain: the model generalizes

# %% [markdown]
# Reconstructions $\hat x = \mathrm{decode}(\mu_\phi(x))$ (bottom) of test digits (top), and
# the decoder means $\mathrm{decode}(z)$ of latents $z \sim \mathcal N(0, I)$, what VAE papers
# usually show as samples (the next subsection draws real ones). Two latent numbers per image carry
# much of its variation: over the test images, the reconstructions' squared error is less than 60%
# of the mean digit's (the ratio is printed; asserted to 5 standard errors), but they lose detail;
# the decoder means are smooth and blurry (below, and section 9, explain why).

# %%
with torch.no_grad():
    recon = digits_vae.reconstruct(x_test_d)
    samples = digits_vae.sample(20, generator=gen)
err_model = (recon - x_test_d).pow(2).flatten(1).mean(1).cpu().double()               # per test image
err_mean_digit = (x_train.mean(0).to(device) - x_test_d).pow(2).flatten(1).mean(1).cpu().double()
excess = err_model - 0.6 * err_mean_digit
print(f"per-pixel squared error over {len(err_model)} test images: reconstruction {err_model.mean():.3f}, "
      f"mean digit {err_mean_digit.mean():.3f} (ratio {err_model.mean() / err_mean_digit.mean():.2f})")
assert excess.mean() < -5 * excess.std() / math.sqrt(len(excess))   # error < 60% of the mean digit's
fig, axes = plt.subplots(1, 2, figsize=(9, 2.4), layout="constrained")
plotting.image_grid(torch.cat([x_test_d[:10], recon[:10]]).cpu(), nrow=10, ax=axes[0],
                    title="test digits / reconstructions")
plotting.image_grid(samples.cpu(), nrow=10, ax=axes[1], title="decoder means decode(z), z ~ N(0, I)");

# %% [markdown]
# ### Ancestral samples: decoder means, and draws with the decoder's noise
#
# Ancestral sampling from the model has two steps: $z \sim p(z)$, then
# $x \sim p_\theta(x\mid z) = \mathcal N(\mathrm{decode}_\theta(z), \sigma_{\mathrm{dec}}^2 I)$. The
# "samples" above, like those in most VAE papers, skip the second step: they are the **decoder
# means** $\mathrm{decode}_\theta(z) \approx \mathbb E[x\mid z]$. Below, on the same $z$, the means
# and real draws $x = \mathrm{decode}_\theta(z) + \sigma_{\mathrm{dec}}\,\epsilon$
# (`VAE.sample_decoder`, or `VAE.sample(..., add_noise=True)`). The draws are grainy, not sharper.
# Two different things make the means look blurry:
#
# 1. **Blur from averaging.** $\mathrm{decode}_\theta(z)$ approximates the average of all the digits
#    the encoder sends near $z$ (section 9 derives it). Averaging different strokes smears them; that
#    is in the mean itself, whatever is done next.
# 2. **Blur from dropping the noise.** The model's own variation around $\mathrm{decode}_\theta(z)$
#    is $\sigma_{\mathrm{dec}}^2$ per pixel; the means leave it out, so they vary less than data
#    do. Adding it back restores that much variation exactly, but as noise that is independent from
#    pixel to pixel (the decoder's covariance is diagonal, see below): it cannot put strokes back.
#
# Two statistics over images tell them apart: the **pixel variance** $v$, the average over pixels of
# $\mathrm{Var}(x_i)$ (how much images vary), and the **neighbour covariance** $c$, the average of
# $\mathrm{Cov}(x_i, x_j)$ over horizontally and vertically adjacent pixels (how much of that
# variation is coherent, shared by neighbours as along a stroke). Independent noise adds
# $\sigma_{\mathrm{dec}}^2$ to $v$ and nothing to $c$. Asserted over 4000 draws, to 5 standard
# errors (means and noisy draws are paired by $z$): (a) the noise adds $\sigma_{\mathrm{dec}}^2$ to
# $v$; (b) it leaves $c$ unchanged; (c) the means' $c$ is below the data's: averaging lost
# coherent variation, and the noise does not give it back; (d) the means' $v$ is below the data's
# and the noisy draws' $v$ is closer to it: the noise gives back the amount of variation, not its
# structure.

# %%
g_anc = torch.Generator().manual_seed(SEED * 1000 + 907)
n_anc = 4000
with torch.no_grad():
    z_anc = torch.randn(n_anc, 2, generator=g_anc).to(device)
    anc_means = digits_vae.decode(z_anc).cpu().double()
    anc_noisy = digits_vae.sample_decoder(z_anc, g_anc).cpu().double()
sigma_dec2 = digits_vae.decoder_logvar.exp().item()
x_all_digits = torch.cat([x_train, x_test]).double()


def pixel_stats(images, centre):
    """Per image: mean over pixels of (x_i - m_i)^2, and over adjacent pairs of (x_i - m_i)(x_j - m_j)."""
    r = (images - centre)[:, 0]
    v = r.pow(2).flatten(1).mean(1)
    c = torch.cat([(r[:, :, 1:] * r[:, :, :-1]).flatten(1), (r[:, 1:] * r[:, :-1]).flatten(1)], 1).mean(1)
    return v, c


centre_model = anc_means.mean(0)                       # the model's mean image (the noise has mean 0)
stats_anc = {"data": pixel_stats(x_all_digits, x_all_digits.mean(0)),
             "decoder means": pixel_stats(anc_means, centre_model),
             "x ~ p(x|z)": pixel_stats(anc_noisy, centre_model)}
for name, (v_s, c_s) in stats_anc.items():
    print(f"{name:14s}: pixel variance v = {v_s.mean():.4f} +- {v_s.std() / math.sqrt(len(v_s)):.4f}, "
          f"neighbour covariance c = {c_s.mean():.4f} +- {c_s.std() / math.sqrt(len(c_s)):.4f}")
print(f"decoder variance sigma_dec^2 = {sigma_dec2:.4f}")
(v_d, c_d), (v_m, c_m), (v_n, c_n) = stats_anc.values()
dv, dc = v_n - v_m - sigma_dec2, c_n - c_m                 # paired by z
assert abs(dv.mean()) < 5 * dv.std() / math.sqrt(n_anc)    # (a) the noise adds sigma_dec^2 per pixel ...
assert abs(dc.mean()) < 5 * dc.std() / math.sqrt(n_anc)    # (b) ... and no coherent variation


def se_diff(a, b):
    return math.sqrt(a.var() / len(a) + b.var() / len(b))


assert c_d.mean() - c_m.mean() > 5 * se_diff(c_d, c_m)     # (c) averaging lost coherent variation
assert v_d.mean() - v_m.mean() > 5 * se_diff(v_d, v_m)     # (d) the means vary less than data ...
closer = (v_d.mean() - v_m.mean()) - (v_n.mean() - v_d.mean()).abs()
assert closer > 5 * se_diff(v_m, v_n) + 5 * math.sqrt(v_d.var() / len(v_d))  # ... the noisy draws, about as much
fig, axes = plt.subplots(1, 3, figsize=(12, 2.4), layout="constrained")
plotting.image_grid(x_test[:20], nrow=10, ax=axes[0], title="data")
plotting.image_grid(anc_means[:20].float(), nrow=10, ax=axes[1], title="decoder means decode(z)")
plotting.image_grid(anc_noisy[:20].float().clamp(-1, 1), nrow=10, ax=axes[2],
                    title="x ~ p(x|z), same z (shown clipped to [-1, 1])");

# %% [markdown]
# **Diagonal covariance means conditional independence.** Kingma & Welling (2014) take both
# $q_\phi(z\mid x)$ and $p_\theta(x\mid z)$ Gaussian with **diagonal** covariances. A Gaussian with
# a diagonal covariance factorizes, $\mathcal N(x; \mu, \mathrm{diag}\,\sigma^2) = \prod_i
# \mathcal N(x_i; \mu_i, \sigma_i^2)$: given $z$ the pixels are independent (and, under $q$, given
# $x$ the latent coordinates are). They are not independent marginally: $p(x) = \int p(x\mid z)\,
# p(z)\,dz$ mixes Gaussians with different means, and
# $\mathrm{Cov}(x) = \mathrm{Cov}_z(\mathrm{decode}(z)) + \sigma_{\mathrm{dec}}^2 I$ has off-diagonal
# entries. All dependence between pixels goes through $z$: that is the modelling assumption, and
# why a 2-D latent leaves the draws above grainy. The check: $n = 20000$ draws from $p(x\mid z)$ at
# $z = 0$, and as many ancestral draws from $p(x)$. A sample correlation of independent pixels is
# about $\mathcal N(0, 1/n)$, so every one of the 2016 pixel pairs of $p(x\mid z)$ must lie within
# $5.5/\sqrt n$ of 0 (chance of a false alarm below $10^{-4}$); for $p(x)$ many pairs lie far
# outside (the fraction is printed and asserted above a quarter).

# %%
g_ci = torch.Generator().manual_seed(SEED * 1000 + 908)
n_ci = 20_000
with torch.no_grad():
    given_z = digits_vae.sample_decoder(torch.zeros(n_ci, 2, device=device), g_ci).flatten(1).cpu().double()
    marginal_x = digits_vae.sample(n_ci, g_ci, add_noise=True).flatten(1).cpu().double()
off_diag = ~torch.eye(64, dtype=torch.bool)
r_given = torch.corrcoef(given_z.T)[off_diag].abs() * math.sqrt(n_ci)   # |r| in units of 1/sqrt(n)
r_marg = torch.corrcoef(marginal_x.T)[off_diag].abs() * math.sqrt(n_ci)
frac_marg = (r_marg > 5.5).double().mean().item()
print(f"p(x|z = 0): largest |correlation| x sqrt(n) over the pixel pairs {r_given.max():.2f} (threshold 5.5)")
print(f"p(x):       largest {r_marg.max():.1f}; fraction of pairs beyond 5.5: {frac_marg:.2f}")
assert r_given.max() < 5.5        # given z: a diagonal covariance, pixels independent
assert frac_marg > 0.25           # marginally: many pixel pairs are correlated, through z

# %% [markdown]
# ### The 2-D latent manifold
#
# As in Kingma & Welling (2014, Fig. 4), the learned "data manifold": decode a grid of
# latent points placed at the quantiles $\Phi^{-1}(p)$ of the prior, so that each cell carries
# equal prior mass. Next to it, the encoder means of the test digits, coloured by class: the
# classes occupy regions, without ever having seen a label. To measure that, label each test digit
# by a vote of the 5 training digits with the nearest codes: in two dimensions this recovers the
# class of more than 70% of the test digits (the accuracy is printed; asserted to 5 binomial
# standard errors), against 10% by chance.

# %%
n_grid = 12
quantiles = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.04, 0.96, n_grid))
z_grid = torch.stack(torch.meshgrid(quantiles, quantiles.flip(0), indexing="xy"), -1).reshape(-1, 2)
with torch.no_grad():
    manifold = digits_vae.decode(z_grid.to(device)).cpu()
    test_mean = digits_vae.encode(x_test_d)[0].cpu()
plotting.image_grid(manifold, nrow=n_grid, scale=0.45, title="decode(z) on a quantile grid (z1 across, z2 up)");

# %%
fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
sc = ax.scatter(*test_mean.T, c=y_test, cmap="tab10", s=6)
ax.set(title="encoder means of test digits", xlabel="z1", ylabel="z2")
fig.colorbar(sc, ax=ax, ticks=range(10))
with torch.no_grad():
    train_mean = digits_vae.encode(x_train.to(device))[0].cpu()
neighbours = torch.cdist(test_mean, train_mean).topk(5, largest=False).indices      # (test, 5)
votes = torch.nn.functional.one_hot(y_train[neighbours], 10).sum(1)
accuracy = (votes.argmax(1) == y_test).double().mean().item()
acc_se = math.sqrt(accuracy * (1 - accuracy) / len(y_test))
print(f"5-nearest-neighbour label accuracy from the 2-D codes: {accuracy:.3f} +- {acc_se:.3f} (chance 0.1)")
assert accuracy > 0.7 + 5 * acc_se

# %% [markdown]
# **Interpolation.** Decoding the straight line between the latent codes of two test digits gives
# a continuous morph, a sign that the latent space is smooth where the data are.

# %%
i, j = int((y_test == 0).nonzero()[0]), int((y_test == 7).nonzero()[0])
alphas = torch.linspace(0, 1, 10)[:, None].to(device)
with torch.no_grad():
    z_ends = digits_vae.encode(x_test_d[[i, j]])[0]
    path = digits_vae.decode((1 - alphas) * z_ends[0] + alphas * z_ends[1])
plotting.image_grid(path.cpu(), nrow=10, title="decode((1 - a) z_0 + a z_7), a = 0 .. 1");

# %% [markdown]
# ## 7. (Exercise) the importance-weighted bound
#
# To estimate the marginal $p(x)$, draw the $z$ from the encoder instead of the prior and correct
# by importance weights (Kingma & Welling 2019, section 2.6; Burda et al. 2016). With
# $z_1..z_K \sim q(z\mid x)$ and weights $w_k = p(x, z_k) / q(z_k\mid x)$, $\frac1K\sum_k w_k$ is
# an unbiased estimate of $p(x)$, and by Jensen its log is a lower bound (Burda et al. 2016, eq. 8):
#
# $$\mathcal L_K(x) = \mathbb E\Big[\log \frac1K \sum_{k=1}^K w_k\Big] \le \log p(x), \qquad
#   \mathcal L_1 = \mathrm{ELBO} \le \mathcal L_K \le \mathcal L_{K+1} \to \log p(x).$$
#
# The weights live on the log scale (log-weights of $-10^4$ are common), so $\log\frac1K\sum_k
# e^{\log w_k}$ must be computed as $m + \log\frac1K\sum_k e^{\log w_k - m}$ with
# $m = \max_k \log w_k$.
#
# **Exercise 2 (multi-step, ★★★, 5 points).** Implement $\mathcal L_K$ end to end for the
# linear-Gaussian model of section 2 with a diagonal Gaussian encoder, given the noise:
#
# - `x` `(N, D)`; the encoder's `mean`, `logvar` `(N, L)`; the decoder $p(x\mid z) =
#   \mathcal N(x;\ Wz + b,\ s^2 I)$ with `weight` $W$ `(D, L)`, `bias` $b$ `(D,)`, `noise_std` $s$
#   (a float); the prior $\mathcal N(0, I)$; `eps` `(K, N, L)`, standard normal noise.
# 1. Reparameterize: $z_k = \mu + \sigma\odot\epsilon_k$ for each of the $K$ draws.
# 2. Evaluate, for each draw and example, $\log p(x\mid z_k)$, $\log p(z_k)$ and
#    $\log q(z_k\mid x)$, **with** their normalizing constants (sum over coordinates).
# 3. $\log w_k = \log p(x\mid z_k) + \log p(z_k) - \log q(z_k\mid x)$, shape `(K, N)`.
# 4. Return $\log\frac1K\sum_k e^{\log w_k}$, shape `(N,)`, computed stably.
#
# The visible check compares with a reference on random float64 inputs: $K$ from 1 to 50,
# log-variances from $-20$ to $3$, the prior as the proposal, and a data point so far from the
# model that its log-weights are near $-10^5$. Hidden tests check more cases and a property of the
# exact posterior.

# %% nbgrader={"grade": false, "grade_id": "iwae_with_encoder", "locked": false, "schema_version": 3, "solution": true, "task": false}
def iwae_with_encoder(x, mean, logvar, weight, bias, noise_std, eps):
    """Importance-weighted bound L_K (N,) of the decoder N(x; z W^T + b, noise_std^2 I).

    x (N, D); mean, logvar (N, L); weight (D, L); bias (D,); noise_std float; eps (K, N, L).
    """
    ### BEGIN SOLUTION
    log_2pi = math.log(2 * math.pi)
    z = mean + torch.exp(0.5 * logvar) * eps                                # (K, N, L)
    log_q = -0.5 * (eps.pow(2) + logvar + log_2pi).sum(-1)                  # (K, N)
    log_prior = -0.5 * (z.pow(2) + log_2pi).sum(-1)                         # (K, N)
    x_hat = z @ weight.T + bias                                             # (K, N, D)
    d = x.shape[1]
    log_lik = (-(x - x_hat).pow(2).sum(-1) / (2 * noise_std**2)
               - 0.5 * d * math.log(2 * math.pi * noise_std**2))            # (K, N)
    log_w = log_lik + log_prior - log_q
    m = log_w.max(dim=0).values                                             # log-mean-exp over K
    return m + torch.log(torch.exp(log_w - m).mean(dim=0))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "iwae_with_encoder_check", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
grading.check("iwae_with_encoder", iwae_with_encoder)
### BEGIN HIDDEN TESTS
grading.check("iwae_with_encoder", iwae_with_encoder, num_cases=10, seed=1000, verbose=False)
# The exact (diagonal) posterior of lin_orth: every weight is p(x), so L_K = log p(x) for any eps, K.
_g = torch.Generator().manual_seed(SEED * 1000 + 902)
_m, _lv = lin_orth.encode(x_orth)
for _k in (1, 7):
    _eps = 3 * torch.randn(_k, *_m.shape, generator=_g, dtype=torch.float64)
    _got = iwae_with_encoder(x_orth, _m, _lv, lin_orth.weight, lin_orth.bias, lin_orth.noise_std, _eps)
    assert torch.allclose(_got, lin_orth.log_marginal(x_orth), rtol=0, atol=1e-9), "exact posterior: L_K != log p(x)"
### END HIDDEN TESTS

# %% [markdown]
# ## 8. $\mathcal L_K$ rises toward $\log p(x)$
#
# On the linear-Gaussian model of section 2 the target $\log p(x)$ is exact. With the prior as the
# proposal (a poor encoder, so there is a gap to close), $\mathcal L_K$ averaged over 200 repeats
# rises with $K$ and approaches $\log p(x)$: no step goes down by more than 5 standard errors of the
# difference, no $\mathcal L_K$ exceeds $\log p(x)$ by more than 5 standard errors, and the gap
# to $\log p(x)$ shrinks more than tenfold.

# %%
Ks = [1, 4, 16, 64, 256, 1024]
prior_enc = (torch.zeros(200, 2, dtype=torch.float64), torch.zeros(200, 2, dtype=torch.float64))
x_rep = x_lin[:1].expand(200, -1)
L_K = [vae.iwae_bound(lin, x_rep, K, generator=gen, encoded=prior_enc) for K in Ks]
means = torch.stack([bound.mean() for bound in L_K])
ses = torch.stack([bound.std() / math.sqrt(200) for bound in L_K])
print("K:", Ks, "\nL_K:", means.numpy().round(3), "\nlog p(x) =", round(log_p[0].item(), 3))
assert torch.all(means[1:] > means[:-1] - 5 * torch.hypot(ses[1:], ses[:-1]))  # non-decreasing within noise
assert torch.all(means < log_p[0] + 5 * ses)                                     # a lower bound
assert log_p[0] - means[-1] < 0.1 * (log_p[0] - means[0])        # the gap shrinks by > 10x

# %% [markdown]
# **Predict, then run (★☆☆, 1 point).** Now take the orthogonal model `lin_orth` of section 2 and
# use its **exact** posterior (diagonal, so `lin_orth.encode` returns it) as the proposal. What does
# $\mathcal L_K$ do for $K = 1, 10, 100$, on one draw of the noise each?
#
# - (a) it rises with $K$ toward $\log p(x)$, as above, only faster;
# - (b) it equals $\log p(x)$ for every $K$ (to float precision);
# - (c) it falls with $K$, because the exact posterior is already optimal for $K = 1$.
#
# Set `prediction` to `"a"`, `"b"` or `"c"` before you run the next cells.

# %% nbgrader={"grade": false, "grade_id": "predict_iwae_exact_posterior", "locked": false, "schema_version": 3, "solution": true, "task": false}
prediction = None  # one of "a", "b", "c"
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "predict_iwae_exact_posterior_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
grading.check_prediction(prediction, "abc")
### BEGIN HIDDEN TESTS
assert prediction == "b", "the exact posterior makes every importance weight equal to p(x)"
### END HIDDEN TESTS

# %% [markdown]
# The run: with $q = p(z\mid x)$ each weight is $p(x, z_k)/p(z_k\mid x) = p(x)$ whatever $z_k$ is,
# so their average is $p(x)$ for every $K$: the estimate has zero variance and no bias.

# %%
g_reveal = torch.Generator().manual_seed(SEED * 1000 + 903)
exact_orth = lin_orth.encode(x_orth)
L_exact = {K: vae.iwae_bound(lin_orth, x_orth, K, generator=g_reveal, encoded=exact_orth) for K in (1, 10, 100)}
log_p_orth = lin_orth.log_marginal(x_orth)
for K, bound in L_exact.items():
    print(f"K = {K:3d}: L_K - log p(x) = {(bound - log_p_orth).numpy()}")
assert all(torch.allclose(bound, log_p_orth, rtol=0, atol=1e-10) for bound in L_exact.values())
print("answer: (b)")

# %% [markdown]
# On the digits model $\log p(x)$ is unknown, but $\mathcal L_K$ still rises with $K$, a tighter
# bound on the log-likelihood than the ELBO at $K$ times the cost. That rise is a property of the
# bound, not of generalization, so it is measured on all 1797 digits, per image (the same images
# for every $K$), and each step is asserted to 5 standard errors over the images.

# %%
Ks_digits = [1, 10, 100]
x_all = torch.cat([x_train, x_test]).to(device)
with torch.no_grad():
    L_per_image = torch.stack([vae.iwae_bound(digits_vae, x_all, K, generator=gen, chunk_size=100)
                               for K in Ks_digits]).cpu().double()        # (len(Ks), images)
L_digits = L_per_image.mean(1)
rises = L_per_image[1:] - L_per_image[:-1]
rise_se = rises.std(1) / math.sqrt(rises.shape[1])
print("K:", Ks_digits, " L_K (nats per image):", L_digits.numpy().round(2))
print("rise from one K to the next:", rises.mean(1).numpy().round(3), "+-", rise_se.numpy().round(3))
assert torch.all(rises.mean(1) > 5 * rise_se)
fig, axes = plt.subplots(1, 2, figsize=(9, 3), layout="constrained")
axes[0].errorbar(Ks, means, yerr=2 * ses, marker="o")
axes[0].axhline(log_p[0].item(), color="k", ls="--", label="exact log p(x)")
axes[0].set(xscale="log", xlabel="K", ylabel="nats", title="linear-Gaussian model")
axes[0].legend()
axes[1].plot(Ks_digits, L_digits, "o-")
axes[1].set(xscale="log", xlabel="K", title="digits VAE (all 1797 images)");

# %% [markdown]
# ## 9. Why VAE samples are blurry
#
# Fix the encoder and look for the best Gaussian decoder mean $\mu(z)$. The
# reconstruction term is $-\mathbb E_{x}\mathbb E_{q(z|x)}\lVert x - \mu(z)\rVert^2$ up to
# constants; writing the joint $p_{\mathrm{data}}(x)q(z\mid x) = q(z)\,q(x\mid z)$,
#
# $$\mathbb E_{q(z)}\ \mathbb E_{q(x\mid z)} \lVert x - \mu(z)\rVert^2 \quad\text{is minimized by}\quad
#   \mu^*(z) = \mathbb E_{q(x\mid z)}[x] = \frac{\sum_i x_i\, q(z\mid x_i)}{\sum_i q(z\mid x_i)} ,$$
#
# (the minimizer of an expected squared error is the conditional mean, Bishop 2006, section 1.5.5):
# the **average of every $x$ the encoder may send to $z$**. Where the encoder's Gaussians overlap
# (and the KL term pushes them to overlap, to match the prior), the decoder outputs averages of
# different data: blur. A 2-D toy with a 1-D latent: eight data points on a circle, each encoded to
# $q(z\mid x_i) = \mathcal N(m_i, s^2)$ at evenly spaced $m_i$.

# %%
ring = toy.ring_mixture(8, radius=1.0).means.to(torch.float64)
enc_mean = torch.linspace(-1.5, 1.5, 8, dtype=torch.float64)[:, None]
z_line = torch.linspace(-2.5, 2.5, 400, dtype=torch.float64)[:, None]
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")
spread = {}
for ax, s in zip(axes, (0.05, 0.2, 0.6)):
    mu_star = vae.optimal_decoder_mean(z_line, ring, enc_mean, torch.full_like(enc_mean, 2 * math.log(s)))
    spread[s] = torch.cdist(mu_star, ring).min(1).values.mean().item()  # mean distance to the nearest data point
    ax.scatter(*ring.T, c="k", s=25, zorder=3, label="data x_i")
    ax.plot(*mu_star.T, "r-", lw=1.5, label="optimal decoder mean mu*(z)")
    ax.set(title=f"encoder std s = {s}", aspect="equal", xlim=(-1.3, 1.3), ylim=(-1.3, 1.3))
axes[0].legend(fontsize=7, loc="lower left")
print("mean distance from mu*(z) to the nearest data point:", {s: round(d, 3) for s, d in spread.items()})
assert spread[0.05] < spread[0.2] < spread[0.6]

# %% [markdown]
# With a sharp encoder $\mu^*$ jumps from data point to data point; as $s$ grows it takes shortcuts
# through the inside of the circle, where there are no data (the printed distance to the nearest
# data point grows with $s$): the analogue of a blurry digit. (Is the blur the encoder's fault or
# the decoder's? Both: the encoder mixes different $x$ into the same $z$, the Gaussian decoder then
# averages them.)
#
# **A check of the derivation by simulation.** Draw pairs from the joint, $x_i$ uniformly, then
# $z \sim q(z\mid x_i)$, and look at the residual $x - \mu^*(z)$. If $\mu^*(z) = \mathbb E[x\mid z]$, the
# residual averages to zero *within every range of $z$* (cut $z$ into 20 bins of equal
# probability; both coordinates, each bin, to 5 standard errors). A decoder that outputs the
# sharpest guess, the single most likely data point $x_{\arg\max_i q(z\mid x_i)}$, fails that test
# and has a larger squared error: blur is what the squared error asks for.

# %%
s_enc, n_pairs = 0.6, 200_000
lv_enc = torch.full_like(enc_mean, 2 * math.log(s_enc))
idx = torch.randint(0, 8, (n_pairs,), generator=gen)
z_pairs = enc_mean[idx] + s_enc * torch.randn(n_pairs, 1, dtype=torch.float64, generator=gen)
x_pairs = ring[idx]
decoders = {"optimal mu*(z)": vae.optimal_decoder_mean(z_pairs, ring, enc_mean, lv_enc),
            "most likely x_i": ring[(z_pairs - enc_mean.T).abs().argmin(1)]}  # equal s: nearest m_i
bins = torch.bucketize(z_pairs[:, 0], z_pairs[:, 0].quantile(torch.linspace(0, 1, 21, dtype=torch.float64)[1:-1]))
max_t, sq_err = {}, {}
for name, dec in decoders.items():
    resid = x_pairs - dec
    t = torch.stack([resid[bins == b].mean(0) / (resid[bins == b].std(0) / math.sqrt((bins == b).sum()))
                     for b in range(20)])                      # (20 bins, 2 coordinates) t-statistics
    max_t[name], sq_err[name] = t.abs().max().item(), resid.pow(2).sum(1)
    print(f"{name:16s}: largest |mean residual| / s.e. over the 20 bins {max_t[name]:7.1f}; "
          f"squared error {sq_err[name].mean():.4f}")
diff = sq_err["most likely x_i"] - sq_err["optimal mu*(z)"]
assert max_t["optimal mu*(z)"] < 5                         # mu*(z) is the conditional mean E[x | z] ...
assert max_t["most likely x_i"] > 5                        # ... the sharp decoder is not
assert diff.mean() > 5 * diff.std() / math.sqrt(n_pairs)   # and the blurry mu* has the smaller squared error

# %% [markdown]
# **The two blurs of section 6, exactly.** With $\mu^*$ the conditional mean, the law of total
# variance splits the data's spread around their mean $\bar x$:
#
# $$\mathbb E\lVert x - \bar x\rVert^2
#   = \underbrace{\mathbb E\lVert \mu^*(z) - \bar x\rVert^2}_{\text{kept by the decoder means}}
#   + \underbrace{\mathbb E\lVert x - \mu^*(z)\rVert^2}_{\text{averaged away}}$$
#
# (the cross term vanishes because the residual averages to zero given $z$, as just checked). The
# averaged-away part is exactly what the best Gaussian decoder puts into its noise: maximizing
# $\mathbb E\log\mathcal N(x; \mu^*(z), \sigma^2 I)$ over $\sigma^2$ gives
# $D\sigma_*^2 = \mathbb E\lVert x - \mu^*(z)\rVert^2$. So the noise-free "samples" $\mu^*(z)$,
# $z \sim q(z)$, lack exactly $D\sigma_*^2$ of the data's spread (blur from dropping the noise), and
# draws $\mu^*(z) + \sigma_*\epsilon$ restore it, but isotropically, not along the circle: they land
# *farther* from the data than the means (blur from averaging stays). Asserted on the same pairs (the
# data's spread is exactly 1, eight points on the unit circle), each to 5 standard errors: the two
# parts add up to 1; the noisy draws' spread is 1; their mean distance to the nearest data point
# exceeds the means'.

# %%
g_ring = torch.Generator().manual_seed(SEED * 1000 + 909)
mu_opt, resid_sq = decoders["optimal mu*(z)"], sq_err["optimal mu*(z)"]
centre_ring = ring.mean(0)
assert torch.allclose((ring - centre_ring).pow(2).sum(1), torch.ones(8, dtype=torch.float64))  # spread 1
kept = (mu_opt - centre_ring).pow(2).sum(1)
both = kept + resid_sq
sigma2_opt = resid_sq.mean().item() / 2                     # D = 2
resid_se = resid_sq.std().item() / math.sqrt(n_pairs)
x_noisy_ring = mu_opt + math.sqrt(sigma2_opt) * torch.randn(mu_opt.shape, dtype=torch.float64, generator=g_ring)
spread_noisy = (x_noisy_ring - centre_ring).pow(2).sum(1)
dist_gain = torch.cdist(x_noisy_ring, ring).min(1).values - torch.cdist(mu_opt, ring).min(1).values
print(f"spread kept by the means {kept.mean():.4f} + averaged away (= D sigma*^2) {resid_sq.mean():.4f} "
      f"= {both.mean():.4f} (data: 1); spread of the noisy draws {spread_noisy.mean():.4f}")
print(f"distance to the nearest data point: means {torch.cdist(mu_opt, ring).min(1).values.mean():.3f}, "
      f"noisy draws {torch.cdist(x_noisy_ring, ring).min(1).values.mean():.3f}")
assert abs(both.mean().item() - 1) < 5 * both.std().item() / math.sqrt(n_pairs)       # total variance
assert abs(spread_noisy.mean().item() - 1) < 5 * math.hypot(spread_noisy.std().item() / math.sqrt(n_pairs),
                                                            resid_se)                 # noise restores the spread
assert dist_gain.mean() > 5 * dist_gain.std() / math.sqrt(n_pairs)                    # ... not the shape

# %% [markdown]
# ## 10. Posterior collapse, and what the decoder variance does
#
# Section 4 showed that $\sigma_{\mathrm{dec}}^2$ sets the price of the KL term. In **posterior
# collapse** the latents transmit no information: $q(z\mid x) = p(z)$ for every $x$, KL $= 0$, and
# the decoder outputs the same thing for every input. When does it happen? For a linear decoder the
# answer is exact (Lucas et al. 2019): at the optimum,
# latent direction $i$ carries $\frac12\log(\lambda_i/\sigma_{\mathrm{dec}}^2)$ nats of KL when
# $\sigma_{\mathrm{dec}}^2 < \lambda_i$ and is **switched off** (KL $= 0$) when
# $\sigma_{\mathrm{dec}}^2 > \lambda_i$, where $\lambda_1 \ge \lambda_2 \ge \dots$ are the eigenvalues of
# the data covariance.
#
# **The linear theory, checked.** A linear VAE, $p(x\mid z) = \mathcal N(Wz + b, \sigma_{\mathrm{dec}}^2 I)$
# and $q(z\mid x) = \mathcal N(V(x - b), \mathrm{diag}\,e^{\ell})$, has an ELBO whose average over
# the data depends on them only through the data's mean and covariance, so it can be maximized
# exactly: `vae.fit_linear_vae` runs L-BFGS in float64 from a random start. With $K = 4$ latent
# dimensions and $\sigma_{\mathrm{dec}}^2$ placed midway between consecutive eigenvalues (and once
# above $\lambda_1$), the latents switch off one at a time, and every per-latent KL matches
# $\frac12\log(\lambda_i/\sigma_{\mathrm{dec}}^2)_+$ (asserted to $10^{-3}$ nats, the optimizer's
# tolerance).

# %%
flat_digits = x_train.flatten(1).double()
centred = flat_digits - flat_digits.mean(0)
eig = torch.linalg.eigvalsh(centred.T @ centred / len(centred)).flip(0)   # 1/N covariance, as the fit
print("top eigenvalues of the digits' covariance:", eig[:5].numpy().round(3))
var_grid = [((eig[i] + eig[i + 1]) / 2).item() for i in (3, 2, 1, 0)] + [1.1 * eig[0].item()]
linear_fits = [vae.fit_linear_vae(x_train, 4, math.sqrt(v), max_iter=300, generator=gen) for v in var_grid]
for v, fit in zip(var_grid, linear_fits):
    kl_fit = fit.kl_per_dim.sort(descending=True).values
    kl_theory = (0.5 * torch.log(eig[:4] / v)).clamp_min(0)
    print(f"sigma_dec^2 = {v:.3f}: KL per latent {kl_fit.numpy().round(4)}, theory {kl_theory.numpy().round(4)}")
    assert torch.allclose(kl_fit, kl_theory, rtol=0, atol=1e-3)
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
v_line = torch.linspace(0.6 * var_grid[0], 1.2 * var_grid[-1], 200, dtype=torch.float64)
for i in range(4):
    ax.plot(v_line, (0.5 * torch.log(eig[i] / v_line)).clamp_min(0), lw=1, label=f"theory, latent {i + 1}")
    ax.plot(var_grid, [f.kl_per_dim.sort(descending=True).values[i] for f in linear_fits], "ko", ms=3)
ax.set(xlabel="decoder variance sigma_dec^2", ylabel="KL per latent (nats)",
       title="linear VAE at its optimum (dots) vs Lucas et al. (lines)")
ax.legend(fontsize=7);

# %% [markdown]
# Our digits VAE is nonlinear, but the two ends of that rule carry over. Above $\lambda_1$, a weak
# signal in $z$ lowers the squared error by at most $\lambda_1$ per unit of signal-to-noise ratio (to
# first order, for any decoder), which saves at most $\lambda_1/\sigma_{\mathrm{dec}}^2 < 1$ nats of
# reconstruction per nat of KL: collapse is a local optimum. Below $\lambda_2$ both latent directions
# of a 2-D latent should pay their way. Below, one nonlinear VAE per $\sigma_{\mathrm{dec}}$
# (precomputed for the widget). The sweep's values of $\sigma_{\mathrm{dec}}^2$ lie below
# $\lambda_2$ or above $\lambda_1$; for every $\sigma_{\mathrm{dec}}$ and each latent dimension
# (sorted by KL) the cell asserts the predicted side of a 0.05-nat line between "on" and "off".

# %%
sweep = vae.decoder_std_sweep(x_train, [0.25, 0.5, 1.0, 2.0], num_steps=400, generator=gen, device=device)
off_line = 0.05   # nats: a latent dimension with less KL than this is switched off
for r in sweep:
    kl_sorted = r.kl_per_dim.sort(descending=True).values
    predicted_on = r.decoder_std**2 < eig[:2]          # dimension i on iff sigma_dec^2 < lambda_i
    print(f"sigma_dec^2 = {r.decoder_std**2:6.4f}: KL {r.kl:6.3f} nats, per dimension {kl_sorted.numpy().round(3)}, "
          f"predicted on: {predicted_on.tolist()}; ||x - x_hat||^2 {r.reconstruction_mse:6.2f}")
    assert predicted_on.any() == predicted_on.all()    # the sweep avoids the ambiguous band [lambda_2, lambda_1]
    assert torch.equal(kl_sorted > off_line, predicted_on)
assert all(a.kl > b.kl for a, b in zip(sweep, sweep[1:]))  # the KL term falls as sigma_dec grows

# %% [markdown]
# With the KL at zero, every digit is reconstructed as the same image, the mean digit, and
# $\lVert x - \hat x\rVert^2$ equals the total variance of the data (up to the squared distance
# between the decoder's output and the mean digit, asserted below 1% of it):

# %%
total_var = centred.pow(2).sum(1).mean().item()
with torch.no_grad():
    collapsed_out = sweep[-1].model.reconstruct(x_train.to(device)).flatten(1).cpu().double()
off_mean = (collapsed_out - flat_digits.mean(0)).pow(2).sum(1).mean().item()
print(f"collapsed model's squared error {sweep[-1].reconstruction_mse:.3f}, total variance {total_var:.3f}; "
      f"its outputs' squared distance to the mean digit {off_mean:.4f}")
assert off_mean < 0.01 * total_var
assert abs(sweep[-1].reconstruction_mse - total_var) < 0.01 * total_var
widgets.plot_decoder_std_sweep(sweep, decoder_std=2.0);

# %%
widgets.decoder_std_explorer(sweep)

# %% [markdown]
# Remedies used in practice: a smaller KL weight early in training (KL warm-up / annealing,
# `vae.vae_loss(..., beta=...)`), a weaker decoder (an autoregressive decoder can model $x$
# without $z$ and is the classic cause of collapse), or a more expressive prior, e.g. hierarchical.

# %% [markdown]
# ## 11. A two-level hierarchical VAE: a learned prior
#
# A "flat" VAE ties every code to the simple prior $\mathcal N(0, I)$; hierarchical VAEs stack
# latents so that each level's prior is learned (Sønderby et al. 2016, Ladder VAEs; Vahdat & Kautz
# 2020, NVAE). The Markovian two-level
# model and its inference model are
#
# $$p(x, z_1, z_2) = p(z_2)\,p_\theta(z_1\mid z_2)\,p_\theta(x\mid z_1), \qquad
#   q_\phi(z_1, z_2\mid x) = q_\phi(z_1\mid x)\,q_\phi(z_2\mid z_1),$$
#
# all Gaussian, and the same Jensen step gives
#
# $$\mathrm{ELBO}(x) = \mathbb E_{q}\big[\log p_\theta(x\mid z_1)\big]
#   - \mathbb E_{q}\big[\mathrm{KL}(q_\phi(z_2\mid z_1)\,\|\,p(z_2))\big]
#   - \mathbb E_{q}\Big[\log\frac{q_\phi(z_1\mid x)}{p_\theta(z_1\mid z_2)}\Big].$$
#
# Grouping the terms that involve $z_2$,
#
# $$\mathrm{ELBO}(x) = \mathbb E_{q(z_1|x)}\big[\log p_\theta(x\mid z_1) - \log q_\phi(z_1\mid x)
#   + B(z_1)\big], \qquad
#   B(z_1) = \mathbb E_{q(z_2|z_1)}[\log p_\theta(z_1\mid z_2)] - \mathrm{KL}(q_\phi(z_2\mid z_1)\,\|\,p(z_2))
#   \le \log p_\theta(z_1):$$
#
# the flat VAE's ELBO with $\log \mathcal N(z_1; 0, I)$ replaced by a lower bound on the log-density
# of a **learned prior** $p_\theta(z_1) = \int p_\theta(z_1\mid z_2)\,p(z_2)\,dz_2$ (itself the
# ELBO of a small VAE on the codes). A diffusion model (notebooks 04 and 05) is this with $T$
# levels and a *fixed* encoder, the forward process (Ho et al. 2020, section 2).
#
# **How much can a learned prior gain?** Averaged over the data, the KL term of a flat VAE splits
# into the information the codes carry about which data point they encode, plus
# $\mathrm{KL}(q(z)\,\|\,p(z))$, where $q(z) = \frac1n\sum_i q(z\mid x_i)$ is the *aggregate
# posterior*, the cloud of codes in section 6's scatter plot (Hoffman & Johnson 2016, "ELBO
# surgery"). Only the second part depends on the prior, so it is the most any prior can add to the
# average ELBO for a given encoder and decoder.
#
# To measure what the hierarchy itself adds, we keep the trained digits VAE's encoder
# $q(z_1\mid x)$ and decoder $p(x\mid z_1)$ and train only the top level, $q(z_2\mid z_1)$ and
# $p(z_1\mid z_2)$, on the same training images. (Comparing two models trained separately from
# scratch mixes the effect of the prior with the luck of two training runs.) The ELBO gain per
# image is then $\mathbb E_{q(z_1|x)}[B(z_1) - \log\mathcal N(z_1; 0, I)]$, estimated with the same
# draws of $z_1$ for both models. On the training images, the objective both models maximize, it is asserted
# positive to 5 Monte Carlo standard errors, and below $\mathrm{KL}(q(z)\,\|\,p(z))$ (also on the
# held-out images).

# %%
torch.manual_seed(SEED * 1000 + 11)   # the top level's initial weights
hier = vae.HierarchicalVAE.from_flat(digits_vae, top_latent_dim=2, hidden_dim=64)
vae.train_vae(hier, x_train.flatten(1), num_steps=600, batch_size=256, lr=3e-3, generator=gen, device=device,
              desc="top level")
hier.eval();

# %%
S_gain = 20
with torch.no_grad():
    gains = {}
    for name, xs in (("train", x_train), ("test", x_test)):
        m1, lv1 = digits_vae.encode(xs.to(device))
        z1 = vae.reparameterize(m1.repeat(S_gain, 1), lv1.repeat(S_gain, 1), generator=gen)  # shared draws
        per_draw = (hier.prior_log_prob_bound(z1, gen) - vae.standard_normal_log_prob(z1)).reshape(S_gain, -1)
        kl_terms = vae.aggregate_posterior_kl(m1, lv1, 20_000, generator=gen)
        gains[name] = (per_draw.cpu().double(), kl_terms.cpu().double())
kl_agg = {k: (v[1].mean().item(), v[1].std().item() / math.sqrt(len(v[1]))) for k, v in gains.items()}
g_tr = gains["train"][0]                       # (draws, training images)
gain_train = g_tr.mean().item()
gain_train_se = math.sqrt(g_tr.var(0).sum().item() / S_gain) / g_tr.shape[1]   # Monte Carlo error
per_image = gains["test"][0].mean(0)           # held-out images: standard error over images
gain_test, gain_test_se = per_image.mean().item(), per_image.std().item() / math.sqrt(len(per_image))
print(f"ELBO gain of the learned prior, {g_tr.shape[1]} training images: {gain_train:.3f} +- {gain_train_se:.3f} "
      f"nats per image; at most KL(q(z) || p(z)) = {kl_agg['train'][0]:.3f} +- {kl_agg['train'][1]:.3f} "
      f"(recovered: {gain_train / kl_agg['train'][0]:.0%})")
print(f"{len(per_image):4d} held-out images: {gain_test:.3f} +- {gain_test_se:.3f} nats per image; "
      f"at most {kl_agg['test'][0]:.3f} +- {kl_agg['test'][1]:.3f}")
assert gain_train > 5 * gain_train_se                                                     # the hierarchy helps
assert gain_train < kl_agg["train"][0] + 5 * math.hypot(gain_train_se, kl_agg["train"][1])  # ELBO surgery's bound
assert gain_test < kl_agg["test"][0] + 5 * math.hypot(gain_test_se, kl_agg["test"][1])
assert gain_train < 0.5 * kl_agg["train"][0] - 5 * math.hypot(gain_train_se, 0.5 * kl_agg["train"][1])  # modestly
assert kl_agg["test"][0] - kl_agg["train"][0] > 5 * math.hypot(kl_agg["test"][1], kl_agg["train"][1])  # grain

# %% [markdown]
# The hierarchy helps, but modestly: the learned prior recovers less than half of the available
# $\mathrm{KL}(q(z)\,\|\,p(z))$ (the fraction is printed above, asserted to 5 standard errors).
# The KL term of training already pulls the cloud of codes towards $\mathcal N(0, I)$, and much
# of what is left is the fine grain of a finite set of codes, which a smooth prior cannot follow:
# the held-out images' cloud, a quarter the size, has the larger
# $\mathrm{KL}(q(z)\,\|\,p(z))$ (asserted). On the held-out images the gain is printed with its
# standard error over images: with so few images, a gain this small is not resolved in every run.
# Hierarchies pay off when the prior has more to fix: many more latent dimensions and levels
# (Sonderby et al. 2016; Vahdat & Kautz 2020, NVAE), and in the limit of many fixed levels,
# diffusion models. Ancestral samples of both models:

# %%
with torch.no_grad():
    f_samples = digits_vae.sample(20, generator=gen).cpu()
    h_samples = hier.sample(20, gen).reshape(20, 1, 8, 8).cpu()
fig, axes = plt.subplots(1, 2, figsize=(9, 2.4), layout="constrained")
plotting.image_grid(f_samples, nrow=10, ax=axes[0], title="flat VAE: z ~ N(0, I)")
plotting.image_grid(h_samples, nrow=10, ax=axes[1], title="two-level: z2 ~ N(0, I), z1 ~ p(z1 | z2)");

# %% [markdown]
# ## 12. Pros and cons, and where VAEs went next
#
# **Pros.** A principled, likelihood-based model: trained by a lower bound on $\log p(x)$
# (sections 2 and 8), sampled exactly by ancestral sampling (section 6). Amortized inference: one
# encoder pass gives $q(z\mid x)$ for any $x$, and the codes are useful features (two numbers per
# digit classify it, section 6). One loss, no adversary: training is stable (compare notebook 03).
#
# **Cons.** It maximizes a bound, not the likelihood: the gap is
# $\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$, at least $-\tfrac12\log(1-\rho^2)$ for a diagonal
# encoder of a correlated posterior (section 2). The decoder means are blurry and the real draws
# grainy (sections 6 and 9). Posterior collapse (section 10). Sample quality below GANs (notebook 03)
# and diffusion models (notebooks 04 and 05).
#
# **Richer posteriors.** A full-covariance encoder, $z = \mu + Lw$ with a Cholesky factor $L$
# (section 5; Kingma & Welling 2019, section 2.5). Normalizing flows: push a simple $q$ through a
# chain of invertible maps whose Jacobian determinants are cheap
# ([Rezende & Mohamed 2015](../docs/bibliography.md#rezende2015); the inverse autoregressive flow of
# [Kingma et al. 2016](../docs/bibliography.md#kingma2016)). Or tighten the bound rather than the
# family: the importance-weighted bound of [Burda et al. 2016](../docs/bibliography.md#burda2016)
# (section 8).
#
# **Autoregressive models.** PixelCNN ([van den Oord et al. 2016](../docs/bibliography.md#oord2016))
# drops the latent and writes the likelihood exactly by the chain rule,
# $p(x) = \prod_i p(x_i\mid x_{<i})$: no bound, but sampling is sequential, one pixel at a time; as
# a VAE decoder it is strong enough to ignore $z$, the classic cause of posterior collapse. A
# Gaussian is the simplest autoregressive model, and the Cholesky map of section 5 is its sampler:
# with $x = \mu + Lw$ and $L$ lower triangular, $x_i = \mu_i + \sum_{j<i}L_{ij}w_j + L_{ii}w_i$,
# and $w_1..w_{i-1}$ are fixed by $x_{<i}$, so
# $p(x_i\mid x_{<i}) = \mathcal N\big(\mu_i + \sum_{j<i}L_{ij}w_j,\ L_{ii}^2\big)$. Checked on
# the marginal $p(x) = \mathcal N(b, WW^\top + s^2I)$ of section 2's model: the chain rule with these
# conditionals, and with the conditionals from Gaussian conditioning (Schur complements, Bishop 2006,
# section 2.3.1), both give the exact $\log p(x)$ to $10^{-10}$.
#
# **Deeper hierarchies.** Many levels of latents with learned priors, section 11's idea at scale:
# Ladder VAEs ([Sønderby et al. 2016](../docs/bibliography.md#sonderby2016)) and NVAE
# ([Vahdat & Kautz 2020](../docs/bibliography.md#vahdat2020)), whose samples are sharp; diffusion
# models are the limit with a fixed encoder (notebooks 04 and 05).

# %%
cov_x = lin.weight @ lin.weight.T + lin.noise_std**2 * torch.eye(5, dtype=torch.float64)
chol_x = gaussians.covariance_sqrt(cov_x, "cholesky")
w_x = torch.linalg.solve_triangular(chol_x, (x_lin - lin.bias).T, upper=False).T      # x = b + L w
chain_rule = (vae.standard_normal_log_prob(w_x[..., None]) - torch.log(chol_x.diagonal())).sum(1)
schur = torch.zeros(len(x_lin), dtype=torch.float64)
for i in range(5):                                     # p(x_i | x_<i) by Gaussian conditioning
    c_io, c_oo = cov_x[i, :i], cov_x[:i, :i]
    cond_mean = lin.bias[i] + (x_lin[:, :i] - lin.bias[:i]) @ torch.linalg.solve(c_oo, c_io) if i else lin.bias[i]
    cond_var = cov_x[i, i] - (c_io @ torch.linalg.solve(c_oo, c_io) if i else 0.0)
    schur += torch.distributions.Normal(cond_mean, cond_var.sqrt()).log_prob(x_lin[:, i])
print("log p(x) exact:", lin.log_marginal(x_lin).numpy().round(8))
print("chain rule, Cholesky:", chain_rule.numpy().round(8), " chain rule, conditioning:", schur.numpy().round(8))
assert torch.allclose(chain_rule, lin.log_marginal(x_lin), rtol=0, atol=1e-10)
assert torch.allclose(schur, lin.log_marginal(x_lin), rtol=0, atol=1e-10)

# %% [markdown]
# ## Summary
#
# - $\log p(x) = \mathrm{ELBO}(x) + \mathrm{KL}(q\,\|\,p(z\mid x))$: the ELBO is a lower bound,
#   tight exactly at the true posterior (checked to $10^{-10}$ on the linear-Gaussian model).
# - ELBO = reconstruction (Monte Carlo, a scaled $L_2$ loss for a Gaussian decoder) minus a
#   closed-form KL; the reparameterization trick makes it differentiable with low variance.
# - $\mathcal L_K$ (IWAE) tightens the bound toward $\log p(x)$ as $K$ grows.
# - A diagonal $q(z\mid x)$ matches the posterior's precision, not its variances, and leaves a gap of
#   $-\tfrac12\log(1-\rho^2)$; any $A$ with $AA^\top = \Sigma$ (symmetric root or Cholesky)
#   samples $\mathcal N(\mu, \Sigma)$, by different maps.
# - VAE "samples" are usually decoder means; real draws add pixel-independent noise, which restores
#   the amount of variation but not the strokes that averaging removed.
# - Blur is the optimal decoder averaging over what the encoder confuses; a large decoder
#   variance (= KL weight) collapses the posterior, latent direction by latent direction;
#   hierarchies give a learned prior, which can gain at most $\mathrm{KL}(q(z)\,\|\,p(z))$, and
#   lead to diffusion models.
