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
#   very different variances;
# - a VAE on the 8x8 digits: ELBO curve, reconstructions, ancestral samples, the 2-D latent
#   manifold, interpolation; the importance-weighted bound tightening towards $\log p(x)$;
# - why VAE samples are blurry, posterior collapse, and a two-level hierarchical VAE.
#
# Every derivation is followed by a cell that computes the claim and **asserts** it.
#
# **Notation.** The seeds write the same objects differently; this notebook uses the left column.
#
# | here | seed 000 | seed 001 | seed 002 | seeds 003, 004 |
# |---|---|---|---|---|
# | data $x$, latent $z$, prior $p(z)=\mathcal N(0, I)$ | $x$, $z$ | $x$, $z$ ($x_0$, $x_T$ in diffusion) | $x$, $z$ | $\mathbf x$, $\mathbf z$ |
# | decoder $p_\theta(x \mid z)$ | "parametric likelihood" | $p_\theta(x\mid z)$, mean $\mathrm{decode}_\theta(z)$ | $p_\theta(x\mid z)$ | $p(\mathbf x\mid\mathbf z)$ |
# | encoder $q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \mathrm{diag}\,\sigma^2_\phi(x))$ | $q(z)$ ("variational distribution") | $q_\phi(z\mid x)$ | $q_\phi(z\mid x)$ | $q(\mathbf z\mid\mathbf x)$ |
# | $\mathrm{ELBO}(x) = \mathbb E_{q}[\log p_\theta(x\mid z)] - \mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))$ | "ELBO" | $\mathrm{ELBO}(x)$, $D_{KL}$ | "reconstruction likelihood" minus "matching posteriors" | $\mathbb E_q[\log p(\mathbf x,\mathbf z) - \log q(\mathbf z\mid\mathbf x)]$ |
#
# In code: `mean`, `logvar` $=\log\sigma^2$ describe a Gaussian; per-example quantities are
# `(N,)` tensors in nats; images are `(N, 1, 8, 8)` in $[-1, 1]$.

# %%
import math

import matplotlib.pyplot as plt
import torch

from course_lib import course_seed, get_device, seed_everything, set_num_threads, grading, plotting, widgets
from course_lib import data, gaussians, toy, vae

SEED = course_seed()      # COURSE_SEED from the environment (default 0): rerun under any seed
gen = seed_everything(SEED)
set_num_threads(1)       # tiny networks: one CPU thread is fastest (COURSE_THREADS overrides)
device = get_device()
print("device:", device)

# %% [markdown]
# ## 1. Latent-variable models and the intractable marginal
#
# A latent-variable model explains a complicated $p(x)$ with two simple distributions (seed 000):
# a prior $p(z) = \mathcal N(0, I)$ on a (lower-dimensional) latent $z$ and a decoder
# $p_\theta(x\mid z)$, here a Gaussian whose mean is a network of $z$. New data come by
# **ancestral sampling**: $z \sim p(z)$, then $x \sim p_\theta(x\mid z)$. The likelihood of data
# is the marginal
#
# $$p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,dz ,$$
#
# an integral over all of latent space for every single $x$. With a 1-D latent it can be done by
# quadrature on a grid of $P$ points; with $K$ latent dimensions the grid needs $P^K$ points, which
# is why it is "intractable" for a real VAE (seed 003).
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
# is unbiased, but for a given $x$ only a tiny range of $z$ explains it, so most prior samples
# contribute nothing: the estimate is very noisy. Guessing *where* the good $z$ are, from $x$,
# is exactly the encoder's job (and importance sampling with it gives the IWAE bound, section 8).

# %%
x_one = torch.tensor([[1.2, 0.9]], dtype=torch.float64)  # close to f(0.8)
exact_p = vae.log_marginal_quadrature(curve, x_one, num_points=4001).exp().item()
z_prior = torch.randn(200, 100, 1, dtype=torch.float64, generator=gen)  # 200 estimates, S = 100 each
lik = curve.log_likelihood(x_one.expand(20000, 2), z_prior.reshape(-1, 1)).exp().reshape(200, 100)
estimates = lik.mean(1)
se = estimates.std() / math.sqrt(200)
print(f"p(x) by quadrature {exact_p:.4g}; prior-sampling estimates (S=100): mean {estimates.mean():.4g}, "
      f"relative std {estimates.std() / exact_p:.2f}")
assert abs(estimates.mean() - exact_p) < 5 * se   # unbiased ...
assert estimates.std() / exact_p > 0.2            # ... but noisy

# %% [markdown]
# ## 2. The ELBO, two ways
#
# **By Jensen** (seeds 002, 004). For any distribution $q(z\mid x)$ that is positive where
# $p(x, z)$ is, multiply and divide by it, then use that $\log$ is concave,
# $\log \mathbb E[Y] \ge \mathbb E[\log Y]$:
#
# $$\log p_\theta(x) = \log \mathbb E_{q(z|x)}\Big[\frac{p_\theta(x\mid z)\,p(z)}{q(z\mid x)}\Big]
#   \ \ge\ \mathbb E_{q(z|x)}\Big[\log \frac{p_\theta(x, z)}{q(z\mid x)}\Big] = \mathrm{ELBO}(x)
#   = \underbrace{\mathbb E_{q}[\log p_\theta(x\mid z)]}_{\text{reconstruction}}
#   - \underbrace{\mathrm{KL}(q(z\mid x)\,\|\,p(z))}_{\text{prior matching}} .$$
#
# **By the exact identity** (seeds 000, 001, 003). Since $p(x) = p(x, z)/p(z\mid x)$ for every $z$,
#
# $$\log p(x) = \mathbb E_{q}\Big[\log \frac{p(x,z)}{q(z\mid x)}\Big]
#   + \mathbb E_{q}\Big[\log\frac{q(z\mid x)}{p(z\mid x)}\Big]
#   = \mathrm{ELBO}(x) + \mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x)) .$$
#
# The gap is a KL, so it is $\ge 0$ (the bound) and it is $0$ exactly when $q(z\mid x)$ is the true
# posterior $p(z\mid x)$: maximizing the ELBO over $q$ *is* approximate posterior inference (seed
# 000: "to maximize the ELBO is equivalent to making q(z) approximate p(z|x)").
#
# The linear-Gaussian model has everything in closed form:
# $p(z\mid x) = \mathcal N\big(M^{-1}W^\top(x-b),\ s^2 M^{-1}\big)$ with $M = W^\top W + s^2 I$.
# `vae.elbo` estimates the reconstruction term with $S$ reparameterized samples and uses the KL in
# closed form (Kingma & Welling 2014, eq. 10). We check, for the exact posterior and for deliberately
# wrong encoders: ELBO $\le \log p(x)$ and $\log p(x) - \mathrm{ELBO} = \mathrm{KL}(q\,\|\,p(z|x))$,
# both within Monte Carlo error.

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
    est = vae.elbo(lin, x_lin, num_samples=S, generator=gen, encoded=(m, lv))
    se = torch.stack([vae.elbo(lin, x_lin, 1, gen, encoded=(m, lv)) for _ in range(200)]).std(0) / math.sqrt(S)
    q = torch.distributions.MultivariateNormal(m, torch.diag_embed(lv.exp()))
    gap = torch.distributions.kl_divergence(q, torch.distributions.MultivariateNormal(post_mean, post_cov))
    print(f"{name:32s} {(log_p - est)[0]:16.4f} {gap[0]:16.4f} {se[0]:8.4f}")
    assert torch.all(est <= log_p + 4 * se)                    # the bound
    assert torch.all((log_p - est - gap).abs() < 4 * se + 1e-9)  # the gap is KL(q || p(z|x))

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

# %% [markdown]
# ## 3. The KL term in closed form, and by Monte Carlo
#
# For $q = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)$ and $p = \mathcal N(0, I)$ (Kingma & Welling
# 2014, Appendix B; seed 000: "the second term ... can be calculated in closed form"):
#
# $$\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q(z) - \log p(z)]
#   = \tfrac12 \sum_{j=1}^K \big(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\big).$$
#
# **Exercise 1.** Implement it.

# %% nbgrader={"grade": false, "grade_id": "kl_standard_normal", "locked": false, "schema_version": 3, "solution": true, "task": false}
def kl_standard_normal(mean, logvar):
    """KL(N(mean, diag exp(logvar)) || N(0, I)), summed over the latent dimension.

    mean, logvar: (N, K) tensors. Returns (N,), in nats.
    """
    ### BEGIN SOLUTION
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kl_standard_normal_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("kl_standard_normal", kl_standard_normal)

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
assert abs(mc - closed) < 4 * mc_se

# %% [markdown]
# ## 4. A Gaussian decoder is an $L_2$ loss
#
# With $p_\theta(x\mid z) = \mathcal N(x;\ \hat x,\ \sigma_{\mathrm{dec}}^2 I)$,
# $\hat x = \mathrm{decode}_\theta(z)$, $x \in \mathbb R^D$ (seed 001):
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
# **Exercise 2.** The one-sample ELBO of a Gaussian decoder, given the decoder output $\hat x$ and
# the encoder's `mean`, `logvar`: the log-likelihood above (with its constant) minus the KL.

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
# - **Reparameterization** (Kingma & Welling 2014, section 2.4; seeds 000, 002): write
#   $z = \mu + \sigma \odot \epsilon$, $\epsilon \sim \mathcal N(0, I)$. The randomness no longer
#   depends on $\phi$, so $\nabla_\phi \mathbb E_\epsilon[f(\mu + \sigma\epsilon)] =
#   \mathbb E_\epsilon[\nabla_\phi f(\mu + \sigma\epsilon)]$: backpropagation "only needs to pass
#   through the non-stochastic branch" (seed 000). Uses the slope of $f$: much lower variance.
#
# **Exercise 3.** Implement the reparameterized sample, with the noise $\epsilon$ given.

# %% nbgrader={"grade": false, "grade_id": "reparameterize", "locked": false, "schema_version": 3, "solution": true, "task": false}
def reparameterize(mean, logvar, eps):
    """z = mean + sigma * eps with sigma = exp(logvar / 2). All (N, K); returns (N, K)."""
    ### BEGIN SOLUTION
    return mean + torch.exp(0.5 * logvar) * eps
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "reparameterize_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
grading.check("reparameterize", reparameterize)

# %% [markdown]
# A check with a known answer: $f(z) = \lVert z - c\rVert^2$ gives
# $\mathbb E_q f = \lVert\mu - c\rVert^2 + \sum_j \sigma_j^2$, so $\nabla_\mu = 2(\mu - c)$ and
# $\partial / \partial \log\sigma_j^2 = \sigma_j^2$. Both estimators average to these (within 5
# standard errors); their variances differ by a large factor.

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
assert torch.all(ratio > 5)

# %% [markdown]
# The widget shows one coordinate: move $\mu - c$ and $\sigma$ and watch both histograms stay
# centred on the true gradient while the score-function one spreads out.

# %%
widgets.plot_gradient_estimators();

# %%
widgets.gradient_estimator_explorer()

# %% [markdown]
# ## 6. A VAE on the digits
#
# Encoder and decoder are MLPs; $q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \mathrm{diag}\,
# \sigma^2_\phi(x))$ with a 2-D latent, so the latent space can be drawn; Gaussian decoder with a
# learned scalar $\sigma_{\mathrm{dec}}$. The loss is the negative single-sample ELBO (seed 001's
# "training loss" with $L = 1$), averaged over a minibatch:
# for each $x$: encode, draw $z = \mu + \sigma\epsilon$, decode, score $\log p_\theta(x\mid z)$,
# subtract the closed-form KL (seed 000's "VAE algorithm").

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

# %%
x_test_d = x_test.to(device)
with torch.no_grad():
    test_elbo = vae.elbo(digits_vae, x_test_d, num_samples=10, generator=gen).mean().item()
    train_elbo = vae.elbo(digits_vae, x_train.to(device), num_samples=10, generator=gen).mean().item()
    untrained = vae.VAE((1, 8, 8), 2, (128, 128), decoder_std=0.5).to(device)
    untrained_elbo = vae.elbo(untrained, x_test_d, 10, gen).mean().item()
print(f"ELBO per image: untrained {untrained_elbo:.1f}, trained train {train_elbo:.1f} / test {test_elbo:.1f} nats; "
      f"decoder std {digits_vae.decoder_logvar.exp().sqrt().item():.3f}")
assert test_elbo > untrained_elbo + 50

# %% [markdown]
# Reconstructions $\hat x = \mathrm{decode}(\mu_\phi(x))$ (bottom) of test digits (top), and
# ancestral samples $z \sim \mathcal N(0, I)$, $\hat x = \mathrm{decode}(z)$ (seed 001, "inference
# with VAE"). With only two latent dimensions the reconstructions keep the digit's identity but
# lose detail; the samples are smooth and blurry (section 9 explains why).

# %%
with torch.no_grad():
    recon = digits_vae.reconstruct(x_test_d[:10])
    samples = digits_vae.sample(20, generator=gen)
mse_model = (recon - x_test_d[:10]).pow(2).mean().item()
mse_mean_digit = (x_train.mean(0).to(device) - x_test_d[:10]).pow(2).mean().item()
print(f"per-pixel squared error: reconstruction {mse_model:.3f}, mean digit {mse_mean_digit:.3f}")
assert mse_model < 0.75 * mse_mean_digit
fig, axes = plt.subplots(1, 2, figsize=(9, 2.4), layout="constrained")
plotting.image_grid(torch.cat([x_test_d[:10], recon]).cpu(), nrow=10, ax=axes[0], title="test digits / reconstructions")
plotting.image_grid(samples.cpu(), nrow=10, ax=axes[1], title="ancestral samples");

# %% [markdown]
# ### The 2-D latent manifold
#
# As in Kingma & Welling (2014, Fig. 4) and seed 004 ("data manifold for 2-d z"): decode a grid of
# latent points placed at the quantiles $\Phi^{-1}(p)$ of the prior, so that each cell carries
# equal prior mass. Next to it, the encoder means of the test digits, coloured by class: the
# classes occupy regions, without ever having seen a label.

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
fig.colorbar(sc, ax=ax, ticks=range(10));

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
# Seed 000: "to estimate the marginal distribution $p(x)$, use the encoder to draw samples of $z$
# and do importance sampling". With $z_1..z_K \sim q(z\mid x)$ and weights
# $w_k = p(x, z_k) / q(z_k\mid x)$, $\frac1K\sum_k w_k$ is an unbiased estimate of $p(x)$, and by
# Jensen its log is a lower bound (Burda et al. 2016, eq. 8):
#
# $$\mathcal L_K(x) = \mathbb E\Big[\log \frac1K \sum_{k=1}^K w_k\Big] \le \log p(x), \qquad
#   \mathcal L_1 = \mathrm{ELBO} \le \mathcal L_K \le \mathcal L_{K+1} \to \log p(x).$$
#
# The weights live on the log scale (log-weights of $-10^4$ are common), so $\log\frac1K\sum_k
# e^{\log w_k}$ must be computed as $m + \log\frac1K\sum_k e^{\log w_k - m}$ with
# $m = \max_k \log w_k$.
#
# **Exercise 4.** Implement it from the log-weights.

# %% nbgrader={"grade": false, "grade_id": "iwae_from_log_weights", "locked": false, "schema_version": 3, "solution": true, "task": false}
def iwae_from_log_weights(log_w):
    """log (1/K) sum_k exp(log_w[k]) over the first axis, computed stably. (K, N) -> (N,)."""
    ### BEGIN SOLUTION
    m = log_w.max(dim=0).values
    return m + torch.log(torch.exp(log_w - m).mean(dim=0))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "iwae_from_log_weights_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("iwae_from_log_weights", iwae_from_log_weights)

# %% [markdown]
# ## 8. $\mathcal L_K$ rises toward $\log p(x)$
#
# On the linear-Gaussian model of section 2 the target $\log p(x)$ is exact. With the prior as the
# proposal (a poor encoder, so there is a gap to close), $\mathcal L_K$ averaged over repeats rises
# with $K$ and approaches $\log p(x)$.

# %%
Ks = [1, 4, 16, 64, 256, 1024]
prior_enc = (torch.zeros(200, 2, dtype=torch.float64), torch.zeros(200, 2, dtype=torch.float64))
x_rep = x_lin[:1].expand(200, -1)
L_K = [vae.iwae_bound(lin, x_rep, K, generator=gen, encoded=prior_enc) for K in Ks]
means = torch.stack([l.mean() for l in L_K])
ses = torch.stack([l.std() / math.sqrt(200) for l in L_K])
print("K:", Ks, "\nL_K:", means.numpy().round(3), "\nlog p(x) =", round(log_p[0].item(), 3))
assert torch.all(means[1:] > means[:-1] - 3 * ses[1:])         # non-decreasing within noise
assert torch.all(means < log_p[0] + 3 * ses)                     # a lower bound
assert log_p[0] - means[-1] < 0.1 * (log_p[0] - means[0])        # the gap shrinks by > 10x

# %% [markdown]
# On the digits model $\log p(x)$ is unknown, but $\mathcal L_K$ still rises with $K$ (a tighter
# bound on the test log-likelihood than the ELBO, at $K$ times the cost).

# %%
Ks_digits = [1, 10, 100, 1000]
with torch.no_grad():
    L_digits = torch.stack([vae.iwae_bound(digits_vae, x_test_d[:100], K, generator=gen, chunk_size=250).mean()
                            for K in Ks_digits]).cpu()
print("K:", Ks_digits, " L_K (nats per test image):", L_digits.numpy().round(2))
assert torch.all(L_digits[1:] > L_digits[:-1])
fig, axes = plt.subplots(1, 2, figsize=(9, 3), layout="constrained")
axes[0].errorbar(Ks, means, yerr=2 * ses, marker="o")
axes[0].axhline(log_p[0].item(), color="k", ls="--", label="exact log p(x)")
axes[0].set(xscale="log", xlabel="K", ylabel="nats", title="linear-Gaussian model")
axes[0].legend()
axes[1].plot(Ks_digits, L_digits, "o-")
axes[1].set(xscale="log", xlabel="K", title="digits VAE (100 test images)");

# %% [markdown]
# ## 9. Why VAE samples are blurry
#
# Seed 003: fix the encoder and look for the best Gaussian decoder mean $\mu(z)$. The
# reconstruction term is $-\mathbb E_{x}\mathbb E_{q(z|x)}\lVert x - \mu(z)\rVert^2$ up to
# constants; writing the joint $p_{\mathrm{data}}(x)q(z\mid x) = q(z)\,q(x\mid z)$,
#
# $$\mathbb E_{q(z)}\ \mathbb E_{q(x\mid z)} \lVert x - \mu(z)\rVert^2 \quad\text{is minimized by}\quad
#   \mu^*(z) = \mathbb E_{q(x\mid z)}[x] = \frac{\sum_i x_i\, q(z\mid x_i)}{\sum_i q(z\mid x_i)} ,$$
#
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
print({s: round(d, 3) for s, d in spread.items()})
assert spread[0.05] < spread[0.2] < spread[0.6]
assert torch.all(mu_star.norm(dim=1) < 1.0)  # averages of points on the circle lie strictly inside

# %% [markdown]
# With a sharp encoder $\mu^*$ jumps from data point to data point; as $s$ grows it takes shortcuts
# through the inside of the circle, where there are no data: the analogue of a blurry digit.
# (Seed 003's question "encoder or decoder?": the encoder mixes different $x$ into the same $z$,
# the Gaussian decoder then averages them.)

# %% [markdown]
# ## 10. Posterior collapse, and what the decoder variance does
#
# Section 4 showed that $\sigma_{\mathrm{dec}}^2$ sets the price of the KL term. Seed 004:
# "posterior collapse is a dreaded bad local minimum where the latents do not transmit any
# information": $q(z\mid x) = p(z)$ for every $x$, KL $= 0$, and the decoder outputs the same thing
# for every input. Below, one VAE per $\sigma_{\mathrm{dec}}$ (precomputed for the widget). For a
# linear decoder the answer is exact (Lucas et al. 2019): latent direction $i$ is switched off when
# $\sigma_{\mathrm{dec}}^2$ exceeds the $i$-th eigenvalue of the data covariance; for the digits
# the top two eigenvalues are about 2.8 and 2.6, so $\sigma_{\mathrm{dec}} = 2$ should collapse.

# %%
eig = torch.linalg.eigvalsh(torch.cov(x_train.flatten(1).T.double())).flip(0)
print("top eigenvalues of the digits' covariance:", eig[:4].numpy().round(2))
sweep = vae.decoder_std_sweep(x_train, [0.25, 0.5, 1.0, 2.0], num_steps=400, generator=gen, device=device)
for r in sweep:
    print(f"sigma_dec = {r.decoder_std:4}: KL {r.kl:7.3f} nats (per dim {r.kl_per_dim.numpy().round(3)}), "
          f"||x - x_hat||^2 {r.reconstruction_mse:6.2f}")
assert sweep[-1].kl < 0.02 and sweep[0].kl > 1.0          # collapse at sigma_dec = 2, not at 0.25
assert sweep[-1].decoder_std**2 > eig[0]                  # as the linear theory predicts
assert all(a.kl > b.kl for a, b in zip(sweep, sweep[1:]))  # the KL term falls as sigma_dec grows

# %% [markdown]
# With the KL at zero, every digit is reconstructed as the same image, the mean digit, and
# $\lVert x - \hat x\rVert^2$ equals the total variance of the data:

# %%
total_var = eig.sum().item()
print(f"collapsed model's squared error {sweep[-1].reconstruction_mse:.2f}, total variance {total_var:.2f}")
assert abs(sweep[-1].reconstruction_mse - total_var) < 0.05 * total_var
widgets.plot_decoder_std_sweep(sweep, decoder_std=2.0);

# %%
widgets.decoder_std_explorer(sweep)

# %% [markdown]
# Remedies used in practice: a smaller KL weight early in training (KL warm-up / annealing,
# `vae.vae_loss(..., beta=...)`), a weaker decoder (an autoregressive decoder can model $x$
# without $z$ and is the classic cause of collapse), or a more expressive prior, e.g. hierarchical.

# %% [markdown]
# ## 11. A two-level hierarchical VAE
#
# Seeds 003 and 004: "flat" VAEs suffer from simple priors; stack latents. The Markovian two-level
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
# The prior of $z_1$ is now learned, $p(z_1) = \int p_\theta(z_1\mid z_2)p(z_2)\,dz_2$. A diffusion
# model (notebook 04) is this with $T$ levels and a *fixed* encoder (seed 004, "connection to
# VAEs"). Trained on the two moons, compared with a flat VAE of similar size:

# %%
moons = toy.two_moons(2000, noise=0.05, generator=gen)
hvae = vae.HierarchicalVAE(2, latent_dims=(2, 2), hidden_dim=64, decoder_std=0.1)
flat = vae.VAE(2, latent_dim=2, hidden_dims=(64, 64), decoder_std=0.1)
with torch.no_grad():
    hvae_before = hvae.elbo(moons, 1, gen).mean().item()
h_hist = vae.train_vae(hvae, moons, num_steps=1000, batch_size=256, lr=3e-3, generator=gen, device=device, desc="HVAE")
f_hist = vae.train_vae(flat, moons, num_steps=1000, batch_size=256, lr=3e-3, generator=gen, device=device, desc="flat VAE")

# %%
moons_d = moons.to(device)
with torch.no_grad():
    hvae_elbo = hvae.elbo(moons_d, 10, gen).mean().item()
    flat_elbo = vae.elbo(flat, moons_d, 10, gen).mean().item()
    h_samples, f_samples = hvae.sample(2000, gen).cpu(), flat.sample(2000, gen).cpu()
print(f"ELBO per point: hierarchical {hvae_elbo:.2f} (untrained {hvae_before:.1f}), flat {flat_elbo:.2f} nats")
assert hvae_elbo > hvae_before + 10
fig, axes = plt.subplots(1, 3, figsize=(10, 3), layout="constrained", sharex=True, sharey=True)
for ax, pts, title in zip(axes, (moons, h_samples, f_samples), ("data", "hierarchical VAE samples", "flat VAE samples")):
    plotting.scatter_samples(pts, ax=ax, s=1, title=title)

# %% [markdown]
# ## Summary
#
# - $\log p(x) = \mathrm{ELBO}(x) + \mathrm{KL}(q\,\|\,p(z\mid x))$: the ELBO is a lower bound,
#   tight exactly at the true posterior (checked to $10^{-10}$ on the linear-Gaussian model).
# - ELBO = reconstruction (Monte Carlo, a scaled $L_2$ loss for a Gaussian decoder) minus a
#   closed-form KL; the reparameterization trick makes it differentiable with low variance.
# - $\mathcal L_K$ (IWAE) tightens the bound toward $\log p(x)$ as $K$ grows.
# - Blur is the optimal decoder averaging over what the encoder confuses; a large decoder
#   variance (= KL weight) collapses the posterior; hierarchies give a learned prior, and lead to
#   diffusion models.
