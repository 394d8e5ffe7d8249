# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Autoencoders
#
# Sources: see the [bibliography](../docs/bibliography.md); the first citation of each paper below
# links to its entry.
#
# **What you will learn**
#
# - the encoder $f_\theta:\mathbb R^d\to\mathbb R^k$, the decoder $g_\phi:\mathbb R^k\to\mathbb R^d$,
#   the bottleneck $k<d$ and the reconstruction (L2) loss;
# - why a **linear** autoencoder learns exactly the **PCA subspace** ([Baldi & Hornik
#   1989](../docs/bibliography.md#baldi1989)), its
#   optimal loss in closed form (the sum of the discarded eigenvalues), and how to compare
#   subspaces with **principal angles**;
# - that a **deep** (nonlinear) autoencoder with the same bottleneck reconstructs better than PCA,
#   and what a **convolutional** one buys (fewer parameters) and costs (more arithmetic);
# - the **denoising** autoencoder ([Vincent et al. 2008](../docs/bibliography.md#vincent2008)): reconstruct
#   $x$ from a corrupted
#   $\tilde x$; its optimum is the conditional mean $\mathbb E[x\mid\tilde x]$;
# - the **contractive** autoencoder ([Rifai et al. 2011](../docs/bibliography.md#rifai2011)): penalise
#   $\|J_f(x)\|_F^2$, what that norm
#   measures, and why its scale needs care;
# - autoencoder codes as **features for transfer** (a linear probe on digit labels), and the
#   encoder as the **initialization of a classifier** (fine-tuning) with 50 labels and with all;
# - why an autoencoder is **not a generative model** yet: decoding random codes gives garbage,
#   which is what the VAE (notebook 02) fixes.
#
# Every derivation is followed by a cell that computes the claim and **asserts** it. All
# experiments use the real 8x8 digits ($d = 64$ pixels in $[-1, 1]$).

# %%
import copy
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_lib import autoencoders as ae_lib
from course_lib import course_seed, get_device, grading, metrics, plotting, seed_everything, set_num_threads, widgets
from course_lib.autoencoders import Autoencoder, EncoderClassifier, reconstruction_error
from course_lib.data import train_test_split_digits
from course_lib.train import fit

SEED = course_seed()      # COURSE_SEED from the environment (default 0): rerun under any seed
gen = seed_everything(SEED)
set_num_threads(1)       # tiny networks: one CPU thread is fastest (COURSE_THREADS overrides)
device = get_device()
print("device:", device)

# %% [markdown]
# ## 1. Encoder, decoder, bottleneck
#
# We have unlabelled images $\mathcal D = \{x_1,\dots,x_n\}$, $x_i\in\mathbb R^d$, and want a
# lower-dimensional **representation** of them (unsupervised representation learning). An
# autoencoder learns
#
# $$z = f_\theta(x)\in\mathbb R^k \quad\text{(encoder)},\qquad
#   \hat x = g_\phi(z)\in\mathbb R^d \quad\text{(decoder)},\qquad g_\phi(f_\theta(x))\approx x,$$
#
# by minimising the **reconstruction loss** (the L2 loss)
#
# $$\mathcal L(\theta,\phi) = \frac1n\sum_{i=1}^n \big\|x_i - g_\phi(f_\theta(x_i))\big\|^2 .$$
#
# With $k\ge d$ the identity would be a perfect (and useless) solution; the **bottleneck** $k<d$
# forces the code $z$ to keep only what matters most for reconstructing $x$ ("autoencoding":
# encoding itself). The 8x8 digits have $d = 64$; we use $k = 8$ throughout. The loss here is
# summed over the 64 pixels and averaged over images (`reconstruction_error` is the per-image sum,
# shape `(N,)`); per-pixel errors are this divided by 64.
#
# **Notation.** Notebook 02 renames these maps: the VAE's encoder becomes a distribution
# $q_\phi(z\mid x)$ and its decoder $p_\theta(x\mid z)$, the convention of
# [Kingma & Welling 2014](../docs/bibliography.md#kingma2014), where $\theta$ names the parameters of the generative
# model (the decoder) and $\phi$ those of the approximate posterior (the encoder); so $\theta$ and
# $\phi$ swap roles between the two notebooks, and here $f_\theta$ is simply an encoder.

# %%
x_train, y_train, x_test, y_test = train_test_split_digits()   # fixed split, 20% test
x_train, x_test = x_train.to(device), x_test.to(device)
n, d, k = x_train.shape[0], 64, 8
print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, d = {d}, k = {k}")
plotting.image_grid(x_train[:32].cpu(), nrow=16, title="training digits (-1 black, +1 white)");

# %% [markdown]
# An `Autoencoder` is just the pair $(f_\theta, g_\phi)$; `Autoencoder.mlp` builds both from MLPs
# (the decoder mirrors the encoder). Check the shapes and that the loss is the formula above.

# %%
model = Autoencoder.mlp((1, 8, 8), latent_dim=k, hidden=(128,), final_activation="tanh").to(device)
x = x_train[:5]
z = model.encode(x)
x_hat = model.decode(z)
by_hand = ((x - x_hat) ** 2).sum(dim=(1, 2, 3)).mean()
assert z.shape == (5, k) and x_hat.shape == x.shape
assert torch.allclose(ae_lib.reconstruction_loss(x_hat, x), by_hand)
print("code", tuple(z.shape), "-> reconstruction", tuple(x_hat.shape),
      f"; untrained loss {by_hand.item():.2f}")

# %% [markdown]
# ## 2. A linear autoencoder learns the PCA subspace
#
# Take linear maps $f(x) = W_e x + b_e$ ($W_e$ is $k\times d$) and $g(z) = W_d z + b_d$
# ($W_d$ is $d\times k$). The reconstruction is $\hat x = A x + c$ with $A = W_d W_e$ of rank
# at most $k$.
#
# **The derivation (Baldi & Hornik 1989).** The best offset $c$ centres the data, so take
# $\bar x = \frac1n\sum_i x_i$ and work with $x_i - \bar x$. Let
# $\Sigma = \frac1n\sum_i (x_i-\bar x)(x_i-\bar x)^\top = U\Lambda U^\top$ with eigenvalues
# $\lambda_1\ge\dots\ge\lambda_d\ge0$.
#
# 1. Fix the column space of $W_d$, with an orthonormal basis $Q$ ($d\times k$). Every
#    reconstruction lies in it, and the closest point of a subspace to $x$ is the orthogonal
#    projection, so the best $A$ is $QQ^\top$ (a least-squares fit, point by point).
# 2. Then the loss is
#    $\frac1n\sum_i\|(I-QQ^\top)(x_i-\bar x)\|^2 = \operatorname{tr}\Sigma - \operatorname{tr}(Q^\top\Sigma Q)$.
# 3. $\operatorname{tr}(Q^\top\Sigma Q)$ over orthonormal $Q$ is at most $\lambda_1+\dots+\lambda_k$
#    (Ky Fan's maximum principle), reached by $Q = U_k$, the top-$k$ eigenvectors.
#
# So the optimal linear autoencoder reconstructs with the **PCA projection**, and
#
# $$\min\mathcal L = \sum_{j>k}\lambda_j \qquad\text{(the discarded variance).}$$
#
# The autoencoder fixes only the **subspace**: $W_d = U_k R$, $W_e = R^{-1}U_k^\top$ is optimal
# for every invertible $R$, so its columns need not be the principal directions themselves.
# Baldi & Hornik also show every other critical point is a saddle, so gradient descent can reach
# the optimum; it is slow along directions whose eigenvalues are close.
#
# **Check** the closed form: PCA's reconstruction error equals the sum of discarded eigenvalues
# (eigenvalues from `eigvalsh` in float64, independent of the SVD inside `pca`), and random
# $k$-dimensional subspaces all do worse.

# %%
X = x_train.reshape(n, d).double()
lam = torch.linalg.eigvalsh(torch.cov(X.T, correction=0)).flip(0)     # lambda_1 >= ... >= lambda_d
optimum = lam[k:].sum().item()                                         # sum_{j > k} lambda_j

components, mean = ae_lib.pca(X, k)                                    # U_k (d, k) and x_bar
pca_rec = mean + (X - mean) @ components @ components.T                # x_bar + U_k U_k^T (x - x_bar)
pca_err = reconstruction_error(pca_rec, X).mean().item()
print(f"PCA (k = {k}) reconstruction error {pca_err:.4f} = sum of discarded eigenvalues {optimum:.4f}"
      f"  (total variance {lam.sum().item():.2f})")
assert abs(pca_err - optimum) < 1e-9 * lam.sum().item()

random_errs = []
for _ in range(200):                                                   # random orthonormal Q
    Q, _ = torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=torch.float64).to(device))
    random_errs.append(reconstruction_error(mean + (X - mean) @ Q @ Q.T, X).mean().item())
print(f"200 random subspaces: best error {min(random_errs):.3f} > PCA's {optimum:.3f}")
assert min(random_errs) > optimum

# %% [markdown]
# ### Exercise 1: PCA reconstruction
#
# **Exercise 1 (short, ★☆☆, 2 points).** Implement the optimal rank-$k$ linear reconstruction $\hat
# x = \bar x + U_kU_k^\top(x-\bar x)$ for data `x` of shape `(N, D)`; return `(N, D)`. (Use
# `torch.linalg.svd` of the centred data or `torch.linalg.eigh` of its covariance.) The check
# compares with `course_lib` on random data.

# %% nbgrader={"grade": false, "grade_id": "pca_reconstruction", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pca_reconstruction(x, k):
    """Project x (N, D) onto its top-k principal subspace and back; returns (N, D)."""
    ### BEGIN SOLUTION
    mean = x.mean(dim=0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)   # x - mean = U S V^T
    v = vh[:k].T                                                  # (D, k) top right singular vectors
    return mean + (x - mean) @ v @ v.T
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "pca_reconstruction_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("pca_reconstruction", pca_reconstruction)

# %% [markdown]
# ### Principal angles between subspaces
#
# To compare the autoencoder's subspace $\operatorname{span}(W_d)$ with PCA's
# $\operatorname{span}(U_k)$ we need a basis-free distance. With orthonormal bases $Q_A, Q_B$ of two
# $k$-dimensional subspaces, the singular values of $Q_A^\top Q_B$ are
# $\cos\theta_1\ge\dots\ge\cos\theta_k$: the **principal angles** ([Björck & Golub
# 1973](../docs/bibliography.md#bjorck1973)). All are 0
# iff the subspaces coincide; $\theta_k = \pi/2$ means some direction of one is orthogonal to the
# other. They do not change if either basis is replaced by $QR$ for an invertible $R$, which is
# exactly the freedom the autoencoder has.

# %% [markdown]
# ### Exercise 2: principal angles
#
# **Exercise 2 (short, ★★☆, 2 points).** Implement `principal_angles(A, B)` for `A` `(D, kA)` and
# `B` `(D, kB)` with full column rank (not orthonormal): return the `min(kA, kB)` angles in radians,
# **ascending**. Orthonormalise with `torch.linalg.qr`, then take `torch.linalg.svdvals`.

# %% nbgrader={"grade": false, "grade_id": "principal_angles", "locked": false, "schema_version": 3, "solution": true, "task": false}
def principal_angles(A, B):
    """Principal angles (radians, ascending) between the column spaces of A (D, kA) and B (D, kB)."""
    ### BEGIN SOLUTION
    qa, _ = torch.linalg.qr(A)
    qb, _ = torch.linalg.qr(B)
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)        # descending cosines
    return torch.arccos(cos)                                      # ascending angles
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "principal_angles_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("principal_angles", principal_angles)

# %% [markdown]
# ### Exercise 3: training a linear autoencoder by hand
#
# Baldi & Hornik's result says gradient descent on a linear autoencoder ends at the PCA error.
# Check it with gradients you derive yourself. For
# $\mathcal L = \frac1N\sum_n \lVert x_n - \hat x_n\rVert^2$, $z_n = W_e x_n + b_e$,
# $\hat x_n = W_d z_n + b_d$, backpropagation is the chain rule applied from the loss backwards:
# with $G = \partial\mathcal L/\partial\hat X$ (one row per example), $\partial\mathcal L/\partial W_d
# = G^\top Z$, then $\partial\mathcal L/\partial Z = G W_d$, and so on down to $W_e$.
#
# **Exercise 3 (multi-step, ★★★, 5 points).** Implement `linear_ae_gradient_step(W_e, b_e, W_d,
# b_d, x, lr)` **without autograd**, for `x` `(N, D)`, `W_e` `(k, D)`, `b_e` `(k,)`, `W_d` `(D, k)`,
# `b_d` `(D,)` and a float `lr`:
#
# 1. the forward pass: codes $Z$ `(N, k)`, reconstructions $\hat X$ `(N, D)`, the loss $\mathcal L$;
# 2. $G = \partial\mathcal L/\partial\hat X$ (mind the factor 2 and the $1/N$);
# 3. the gradients of all four parameters (each with its parameter's shape);
# 4. return `(loss, W_e_new, b_e_new, W_d_new, b_d_new)`: the loss at the parameters given (0-dim)
#    and every parameter minus `lr` times its gradient; do not modify the inputs.
#
# The visible check compares with autograd on random float64 data with a non-zero mean,
# including $k = 1$, the saddle $W_d = 0$ (where $W_e$ gets no gradient) and `lr = 0`. Hidden tests
# check more cases and **train** with your step: 600 steps from a small random start must reach
# the PCA error (sum of discarded eigenvalues) within 0.5 %.

# %% nbgrader={"grade": false, "grade_id": "linear_ae_gradient_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def linear_ae_gradient_step(W_e, b_e, W_d, b_d, x, lr):
    """One full-batch gradient step on mean ||x - (W_d (W_e x + b_e) + b_d)||^2, by hand.

    Returns (loss at the given parameters, W_e, b_e, W_d, b_d after the step).
    """
    ### BEGIN SOLUTION
    n = x.shape[0]
    z = x @ W_e.T + b_e                          # (N, k) codes
    x_hat = z @ W_d.T + b_d                      # (N, D) reconstructions
    residual = x_hat - x
    loss = residual.pow(2).sum(dim=1).mean()
    g = 2.0 * residual / n                       # dL/dx_hat, (N, D)
    grad_W_d = g.T @ z                           # (D, k)
    grad_b_d = g.sum(dim=0)                      # (D,)
    g_z = g @ W_d                                # dL/dz, (N, k)
    grad_W_e = g_z.T @ x                         # (k, D)
    grad_b_e = g_z.sum(dim=0)                    # (k,)
    return (loss, W_e - lr * grad_W_e, b_e - lr * grad_b_e,
            W_d - lr * grad_W_d, b_d - lr * grad_b_d)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "linear_ae_gradient_step_check", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
grading.check("linear_ae_gradient_step", linear_ae_gradient_step)
### BEGIN HIDDEN TESTS
grading.check("linear_ae_gradient_step", linear_ae_gradient_step, num_cases=10, seed=1000, verbose=False)
_g = torch.Generator().manual_seed(SEED * 1000 + 904)
_q, _ = torch.linalg.qr(torch.randn(6, 6, generator=_g, dtype=torch.float64))
_x = (torch.randn(200, 6, generator=_g, dtype=torch.float64)
      * torch.tensor([3.0, 2.0, 0.5, 0.3, 0.2, 0.1], dtype=torch.float64)) @ _q.T + 0.5
_opt = torch.linalg.eigvalsh(torch.cov(_x.T, correction=0)).flip(0)[2:].sum().item()
_p = (0.1 * torch.randn(2, 6, generator=_g, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
      0.1 * torch.randn(6, 2, generator=_g, dtype=torch.float64), torch.zeros(6, dtype=torch.float64))
for _ in range(600):
    _loss, *_p = linear_ae_gradient_step(*_p, _x, 0.03)
assert _opt * (1 - 1e-9) <= float(_loss) < _opt * 1.005, f"after 600 steps: loss {float(_loss)}, PCA {_opt}"
### END HIDDEN TESTS

# %% [markdown]
# ### Training a linear autoencoder
#
# A linear autoencoder ($k = 8$) trained with Adam on minibatches of 128. Because the 8th and 9th
# eigenvalues are close ($\lambda_8/\lambda_9\approx 1.1$), the last direction of the subspace
# converges slowly and minibatch noise keeps it jittering: we train 1500 steps at a large
# learning rate, then 500 at a 10x smaller one, then 300 full-batch steps (no minibatch noise at
# all) at a smaller one still. Without the last phase the largest angle depends on the seed and on
# the CPU's kernels more than the check below allows.

# %%
linear_ae = Autoencoder.mlp((1, 8, 8), latent_dim=k, linear=True)
opt = torch.optim.Adam(linear_ae.parameters(), lr=5e-2)
hist_linear = fit(linear_ae, ae_lib.ae_loss, x_train, num_steps=1500, optimizer=opt,
                  device=device, generator=gen, desc="linear AE, lr 5e-2")
for group in opt.param_groups:
    group["lr"] = 5e-3
hist_linear_2 = fit(linear_ae, ae_lib.ae_loss, x_train, num_steps=500, optimizer=opt,
                    device=device, generator=gen, desc="linear AE, lr 5e-3")
for group in opt.param_groups:
    group["lr"] = 1e-3
hist_linear_3 = fit(linear_ae, ae_lib.ae_loss, x_train, num_steps=300, batch_size=len(x_train),
                    optimizer=opt, device=device, generator=gen, desc="linear AE, full batch")

# %% [markdown]
# **Check** Baldi & Hornik: the principal angles between the decoder's column space and the PCA
# subspace are near zero (the largest below 0.05 rad), and the training error approaches the
# closed-form optimum from above (it can never go below it), to within 0.02 %.

# %%
W_d = linear_ae.decoder[0].net[0].weight.detach().double()             # (d, k): x_hat = W_d z + b_d
angles = ae_lib.principal_angles(W_d, components)
with torch.no_grad():
    linear_err = reconstruction_error(linear_ae(x_train).double(), x_train.double()).mean().item()
print("principal angles (rad):", np.round(angles.cpu().numpy(), 4), f"largest {angles.max().item():.4f}")
print(f"linear AE error {linear_err:.4f}  vs  optimum {optimum:.4f}  "
      f"(excess {100 * (linear_err / optimum - 1):.3f}%)")
assert angles.max() < 0.05
assert optimum * (1 - 1e-5) <= linear_err < optimum * 1.0002

# %% [markdown]
# The subspace is PCA's, but the **basis** is not: the decoder's columns are neither orthonormal
# nor the principal directions (the free matrix $R$ above). **Check** both: orthonormal columns
# would have $W_d^\top W_d = I$, i.e. all singular values of $W_d$ equal to 1, and here some are
# more than 0.5 away from 1; a column that is a principal direction would have $|\cos| = 1$ with
# it, and here at least one column has $|\cos| < 0.75$ with every principal direction: it is a mix
# of several. Left: the top 8 principal directions as images; right: the decoder's 8 columns.

# %%
cols = W_d / W_d.norm(dim=0)                                           # unit-norm decoder columns
best_match = (cols.T @ components).abs().max(dim=1).values             # |cos| to the closest PC
gram = W_d.T @ W_d
off_diag = (gram - torch.diag(torch.diag(gram))).abs().max() / torch.diag(gram).max()
sv = torch.linalg.svdvals(W_d)
print("|cos| of each decoder column to its closest principal direction:",
      np.round(best_match.cpu().numpy(), 2))
print(f"largest off-diagonal of W_d^T W_d relative to its diagonal: {off_diag.item():.2f}; "
      f"max |W_d^T W_d - I| = {(gram - torch.eye(k, dtype=gram.dtype, device=gram.device)).abs().max().item():.2f}; "
      f"singular values of W_d from {sv.min().item():.2f} to {sv.max().item():.2f}")
assert (sv - 1).abs().max() > 0.5        # not orthonormal: W_d^T W_d is far from I
assert best_match.min() < 0.75          # at least one column is a genuine mix of directions
fig, axes = plt.subplots(1, 2, figsize=(9, 1.6), layout="constrained")
scale = lambda v: v / v.abs().amax(dim=0)                              # noqa: E731  each to [-1, 1]
plotting.image_grid(scale(components).T.reshape(k, 1, 8, 8).cpu(), nrow=k, ax=axes[0],
                    title="principal directions $U_k$")
plotting.image_grid(scale(W_d).T.reshape(k, 1, 8, 8).cpu(), nrow=k, ax=axes[1],
                    title="linear AE decoder columns $W_d$");

# %% [markdown]
# ## 3. A deep autoencoder beats PCA
#
# Replace the linear maps by MLPs, $64\to128\to8$ (encoder) and $8\to128\to64$ with a $\tanh$
# output (decoder). The code is still 8 numbers, but the set of reconstructions is now a curved
# 8-dimensional **manifold** instead of a flat subspace, so it can follow the data more closely.
# PCA is the best any *linear* 8-dimensional code can do; a nonlinear one can do better.
# **Check** on the held-out test digits: the deep autoencoder's error is less than half of PCA's.

# %%
deep_ae = Autoencoder.mlp((1, 8, 8), latent_dim=k, hidden=(128,), final_activation="tanh")
hist_deep = fit(deep_ae, ae_lib.ae_loss, x_train, num_steps=2000, lr=3e-3, device=device,
                generator=gen, desc="deep AE")
hist_deep.plot(title="deep autoencoder: training loss");


# %%
def test_error(model, x):
    """Mean reconstruction error (summed over pixels) of a trained model on clean x."""
    model.eval()
    with torch.no_grad():
        return reconstruction_error(model(x), x).mean().item()


X_test = x_test.reshape(-1, d).double()
pca_test_err = reconstruction_error(mean + (X_test - mean) @ components @ components.T,
                                    X_test).mean().item()
deep_test_err = test_error(deep_ae, x_test)
print(f"test reconstruction error, k = {k}: PCA {pca_test_err:.2f}, deep AE {deep_test_err:.2f}")
assert deep_test_err < 0.5 * pca_test_err

# %%
with torch.no_grad():
    shown = x_test[:12]
    pca_shown = (mean + (shown.reshape(12, d).double() - mean) @ components @ components.T)
    rows = torch.cat([shown.cpu(), pca_shown.reshape(12, 1, 8, 8).float().cpu(),
                      deep_ae(shown).cpu()])
plotting.image_grid(rows, nrow=12, title="test digits / PCA (k = 8) / deep AE (k = 8)");

# %% [markdown]
# ### A convolutional autoencoder
#
# An MLP treats the 64 pixels as an unordered list: a stroke in the top-left corner and the same
# stroke one pixel to the right are unrelated inputs. A **convolution** slides one small filter over
# the image, so the same weights are used at every position (weight sharing) and a shifted input
# gives shifted feature maps ([LeCun et al. 1998](../docs/bibliography.md#lecun1998)); convolutional autoencoders
# ([Masci et al. 2011](../docs/bibliography.md#masci2011)) use convolutions in the encoder and "up-convolutions"
# (transposed convolutions) in the decoder. `Autoencoder.conv` builds a small one for 8x8 images:
#
# - encoder $f_\theta$: a 4x4 convolution with stride 2 ($1\to16$ channels, $8\times8\to4\times4$),
#   a 3x3 convolution ($16\to16$), then a linear map of the $16\cdot4\cdot4 = 256$ features to
#   $k = 8$;
# - decoder $g_\phi$: the mirror image, a linear map $8\to256$, a 3x3 convolution, and a 4x4
#   transposed convolution with stride 2 back to $1\times8\times8$, with a $\tanh$ output.
#
# **The claim**, for the same bottleneck $k = 8$, the same optimizer and the same number of steps:
# the convolutional autoencoder has about **half the parameters** of the MLP autoencoder and its
# **test error is within 10 %** of the MLP's (the ratio of the means over 3 seeds; rerun for many
# more seeds, the ratio stayed close to 1, so the bound leaves a wide margin),
# but it does **more arithmetic** per image, because every weight is used at many positions
# (counted exactly with PyTorch's `FlopCounterMode`: more than 4 times the MLP's). On images this
# small the MLP can afford a dense layer; the savings of weight sharing grow with the image size.
# Each model is trained from 3 seeds (1000 steps, learning rate $5\cdot10^{-3}$); the MLPs trained
# here are reused as pretrained encoders in section 6.

# %%
def count_flops(model):
    """Floating-point operations of one forward pass on one 8x8 image (PyTorch's counter)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x_test[:1])
    return counter.get_total_flops()


ae_seeds = 3
seed_aes = {"MLP AE": [], "conv AE": []}
for i in range(ae_seeds):
    for name, build in (("MLP AE", lambda: Autoencoder.mlp((1, 8, 8), latent_dim=k, hidden=(128,),
                                                          final_activation="tanh")),
                        ("conv AE", lambda: Autoencoder.conv((1, 8, 8), latent_dim=k, final_activation="tanh"))):
        torch.manual_seed(SEED * 100 + i)                              # seed i's initialization
        m = build()
        fit(m, ae_lib.ae_loss, x_train, num_steps=1000, lr=5e-3, device=device, progress=False,
            generator=torch.Generator().manual_seed(SEED * 100 + i))
        seed_aes[name].append(m.eval())
seed_errs = {name: torch.tensor([test_error(m, x_test) for m in ms]) for name, ms in seed_aes.items()}
n_params = {name: sum(p.numel() for p in ms[0].parameters()) for name, ms in seed_aes.items()}
flops = {name: count_flops(ms[0]) for name, ms in seed_aes.items()}
for name, e in seed_errs.items():
    print(f"{name:8s} {n_params[name]:6d} parameters, {flops[name]:7d} FLOPs per image, test error "
          f"{e.mean():.3f} ± {e.std() / math.sqrt(ae_seeds):.3f} (mean ± s.e. over {ae_seeds} seeds)")
err_ratio = (seed_errs["conv AE"].mean() / seed_errs["MLP AE"].mean()).item()
param_ratio = n_params["conv AE"] / n_params["MLP AE"]
print(f"conv / MLP: parameters {param_ratio:.2f}, FLOPs {flops['conv AE'] / flops['MLP AE']:.1f}, "
      f"test error {err_ratio:.3f}")
assert param_ratio < 0.55 and flops["conv AE"] > 4 * flops["MLP AE"]        # exact counts
assert err_ratio < 1.10                                                      # within 10 %

# %% [markdown]
# Reconstructions of the same test digits by the first seed of each (the conv AE's and the MLP AE's
# look alike, as their errors say):

# %%
with torch.no_grad():
    shown = x_test[:12]
    rows = torch.cat([shown.cpu(), seed_aes["MLP AE"][0](shown).cpu(), seed_aes["conv AE"][0](shown).cpu()])
plotting.image_grid(rows, nrow=12, title="test digits / MLP AE (k = 8) / convolutional AE (k = 8)");

# %% [markdown]
# ## 4. Denoising autoencoders
#
# Data augmentation, in the autoencoder setting, is the **denoising autoencoder**
# (Vincent et al. 2008). Corrupt each input with a random process $q(\tilde x\mid x)$ and train the
# network to recover the **clean** input:
#
# $$\mathcal L_{\mathrm{DAE}} = \mathbb E_{x\sim\mathcal D}\,\mathbb E_{\tilde x\sim q(\tilde x\mid x)}
#   \big\|x - g_\phi(f_\theta(\tilde x))\big\|^2 .$$
#
# Two corruptions: **additive Gaussian** noise $\tilde x = x + \sigma\epsilon$,
# $\epsilon\sim\mathcal N(0,I)$, and **masking** noise (the 2008 paper's), each entry independently
# replaced by a fixed value with probability $p$. The identity map no longer solves the problem
# (even without a bottleneck): the network has to know what digits look like to undo the damage.
#
# **What the optimum is.** For each $\tilde x$ the loss is
# $\mathbb E[\|x - r(\tilde x)\|^2\mid\tilde x]$ with $r = g_\phi\circ f_\theta$. Writing
# $m(\tilde x) = \mathbb E[x\mid\tilde x]$,
# $\mathbb E[\|x-r\|^2\mid\tilde x] = \mathbb E[\|x-m\|^2\mid\tilde x] + \|m-r\|^2$ (the cross term
# has zero mean), so the best reconstruction function is the **posterior mean**
# $r^*(\tilde x) = \mathbb E[x\mid\tilde x]$, the MMSE denoiser. (Notebook 06 relates it to the
# score through Tweedie's formula.)
#
# **Check** on a one-pixel toy where it is closed form: $x = \pm1$ with probability $\frac12$ each
# (ink or background), $\tilde x = x + \sigma\epsilon$. Bayes' rule gives
# $\mathbb E[x\mid\tilde x] = \tanh(\tilde x/\sigma^2)$. Over a grid of alternatives
# $c\tanh(a\,\tilde x/\sigma^2)$, the Monte Carlo denoising loss is smallest at $a = c = 1$: every
# alternative's loss exceeds it by more than 5 standard errors of the paired difference (the
# same draws for all), whose expectation is $\mathbb E[(r^* - r)^2] > 0$ by the decomposition above.

# %%
sigma = 0.5
x_toy = torch.randint(0, 2, (1_000_000,), generator=gen).double() * 2 - 1   # +-1, prob 1/2 each
x_toy_tilde = x_toy + sigma * torch.randn(x_toy.shape, generator=gen, dtype=torch.float64)
grid_a = grid_c = [0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5]
best_sq_err = (x_toy - torch.tanh(x_toy_tilde / sigma**2)) ** 2              # r* = tanh(x~ / sigma^2)
losses, z_gap = torch.zeros(len(grid_a), len(grid_c)), {}
for i, a in enumerate(grid_a):
    shape = torch.tanh(a * x_toy_tilde / sigma**2)
    for j, c in enumerate(grid_c):
        sq = (x_toy - c * shape) ** 2                                  # squared error of c tanh(a x~ / sigma^2)
        losses[i, j] = sq.mean()
        if (a, c) != (1.0, 1.0):
            gap = sq - best_sq_err                                     # paired: the same draws
            z_gap[a, c] = gap.mean().item() / (gap.std().item() / math.sqrt(gap.numel()))
i, j = divmod(int(losses.argmin()), len(grid_c))
closest = min(z_gap, key=z_gap.get)
print(f"best (a, c) on the grid: ({grid_a[i]}, {grid_c[j]}), loss {losses.min().item():.4f}; "
      f"identity r(x~) = x~ has loss {((x_toy - x_toy_tilde) ** 2).mean().item():.4f}; closest "
      f"alternative {closest}: {z_gap[closest]:.1f} standard errors above")
assert (grid_a[i], grid_c[j]) == (1.0, 1.0) and min(z_gap.values()) > 5

# %% [markdown]
# **Derivation 1 (graded by hand, ★★☆, 3 points).** Derive the posterior mean used above: for
# $x = \pm1$ with probability $\frac12$ each and $\tilde x = x + \sigma\epsilon$,
# $\epsilon\sim\mathcal N(0, 1)$, show that $\mathbb E[x\mid\tilde x] = \tanh(\tilde x/\sigma^2)$. Then
# say what the optimal denoiser does for $\sigma \to 0$ and for $\sigma \to \infty$, and why that is
# sensible. Write your answer (Markdown with LaTeX) in the cell below.

# %% [markdown] nbgrader={"grade": true, "grade_id": "dae_posterior_mean", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# **Model answer.** By Bayes' rule with equal priors,
# $P(x = \pm1\mid\tilde x) \propto \exp\!\big(-(\tilde x \mp 1)^2/(2\sigma^2)\big)$; the common factor
# $\exp(-(\tilde x^2 + 1)/(2\sigma^2))$ cancels, leaving $\propto e^{\pm\tilde x/\sigma^2}$. So
#
# $$\mathbb E[x\mid\tilde x] = \frac{e^{\tilde x/\sigma^2} - e^{-\tilde x/\sigma^2}}
#   {e^{\tilde x/\sigma^2} + e^{-\tilde x/\sigma^2}} = \tanh(\tilde x/\sigma^2).$$
#
# As $\sigma\to0$ it tends to $\mathrm{sign}(\tilde x)$: the noise is small, so the nearest clean
# value is almost surely right. As $\sigma\to\infty$ it tends to $0$ (slope $\tilde x/\sigma^2
# \to 0$): the observation carries no information and the best guess is the prior mean, 0.
#
# **Rubric (3 points).** 1 point: the posterior by Bayes' rule with the Gaussian likelihoods and
# equal priors. 1 point: the cancellation and the ratio that gives $\tanh$ (an answer that reaches
# $\frac{e^a - e^{-a}}{e^a + e^{-a}}$ with the right $a = \tilde x/\sigma^2$). 1 point: both limits
# with a reason (half a point each).
# ### END SOLUTION

# %% [markdown]
# ### Exercise 4: masking noise
#
# **Exercise 4 (short, ★☆☆, 2 points).** Implement the masking corruption: each entry of `x` (any
# shape, e.g. `(N, 1, 8, 8)`) is independently replaced by `mask_value` with probability
# `mask_prob`, using `generator` for the random draws (`torch.rand(x.shape, generator=generator,
# dtype=x.dtype)`). Return a tensor of `x`'s shape and dtype; do not modify `x`. Random draws need
# not match the reference's, so the check tests the statistics: entries kept or masked, the masked
# fraction within 5 standard errors of `mask_prob`, independent masks, and `mask_prob` = 0 or 1
# exactly.

# %% nbgrader={"grade": false, "grade_id": "masking_noise", "locked": false, "schema_version": 3, "solution": true, "task": false}
def masking_noise(x, mask_prob, mask_value, generator=None):
    """Replace each entry of x by mask_value with probability mask_prob; returns x's shape."""
    ### BEGIN SOLUTION
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    return torch.where(u < mask_prob, torch.full_like(x, mask_value), x)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "masking_noise_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("masking_noise", masking_noise)

# %% [markdown]
# The corruptions, with `course_lib.autoencoders.corrupt` (masked pixels set to $-1$, the
# background, so masking erases ink as in the 2008 paper):

# %%
shown = x_test[:10].cpu()
g0 = torch.Generator().manual_seed(0)
corrupted = torch.cat([shown,
                       ae_lib.corrupt(shown, noise_std=0.5, generator=g0),
                       ae_lib.corrupt(shown, mask_prob=0.3, mask_value=-1.0, generator=g0)])
plotting.image_grid(corrupted, nrow=10, title="clean / Gaussian noise, std 0.5 / masking, p = 0.3");

# %% [markdown]
# Train the same architecture as the deep autoencoder, on Gaussian-corrupted inputs
# ($\sigma = 0.5$, a fresh $\epsilon$ every step).

# %%
noise_std = 0.5
denoising_ae = Autoencoder.mlp((1, 8, 8), latent_dim=k, hidden=(128,), final_activation="tanh")
hist_dae = fit(denoising_ae, ae_lib.denoising_ae_loss(noise_std=noise_std), x_train,
               num_steps=2000, lr=3e-3, device=device, generator=gen, desc="denoising AE")

# %% [markdown]
# **Check**: on corrupted test digits ($\sigma = 0.5$, the same $\tilde x$ for both models), the
# denoising autoencoder's reconstructions are closer to the clean digits than the plain
# autoencoder's (an error at least 25 % smaller), and less than a third as far as the corrupted
# input itself, whose error $\|\tilde x - x\|^2$ has mean $d\sigma^2 = 16$ (checked within 5
# standard errors).

# %%
x_test_tilde = ae_lib.corrupt(x_test, noise_std=noise_std,
                              generator=torch.Generator().manual_seed(SEED * 1000 + 1))


def denoising_error(model):
    """Mean ||g(f(x~)) - x||^2 on the fixed corrupted test set."""
    model.eval()
    with torch.no_grad():
        return reconstruction_error(model(x_test_tilde), x_test).mean().item()


noisy_per_image = reconstruction_error(x_test_tilde, x_test)
noisy_input_err = noisy_per_image.mean().item()
noisy_se = noisy_per_image.std().item() / math.sqrt(noisy_per_image.numel())
dae_err, plain_err = denoising_error(denoising_ae), denoising_error(deep_ae)
print(f"error to the clean test digits: corrupted input {noisy_input_err:.2f} ± {noisy_se:.2f}, "
      f"plain AE {plain_err:.2f}, denoising AE {dae_err:.2f} (ratio {dae_err / plain_err:.2f})")
assert abs(noisy_input_err - d * noise_std**2) <= 5 * noisy_se
assert dae_err < 0.75 * plain_err and dae_err < noisy_input_err / 3

# %% [markdown]
# **Explore**: the models are fixed; the slider changes the test corruption (the same $\epsilon$,
# scaled). Compare the plain and the denoising autoencoder below, at and away from the training
# noise level.

# %%
denoise_models = {"plain AE": deep_ae, "denoising AE (trained at std 0.5)": denoising_ae}
widgets.plot_denoising(denoise_models, x_test);

# %%
widgets.denoising_explorer(denoise_models, x_test)

# %% [markdown]
# ## 5. Contractive autoencoders
#
# The contractive autoencoder adds to the reconstruction loss a penalty on how much the
# code moves when the input moves (Rifai et al. 2011, eq. 2):
#
# $$\mathcal L_{\mathrm{CAE}} = \frac1n\sum_i\Big(\|x_i - g_\phi(f_\theta(x_i))\|^2
#   + \lambda\,\|J_f(x_i)\|_F^2\Big),\qquad
#   \|J_f(x)\|_F^2 = \sum_{j=1}^k\sum_{i=1}^d\Big(\frac{\partial f_j(x)}{\partial x_i}\Big)^2 .$$
#
# **What the norm measures.** For a small perturbation $\delta\sim\mathcal N(0,s^2I)$,
# $f(x+\delta)-f(x)\approx J_f(x)\,\delta$ and
# $\mathbb E\|J\delta\|^2 = s^2\operatorname{tr}(J^\top J) = s^2\|J_f(x)\|_F^2$: the penalty is the
# code's sensitivity to isotropic input noise. Reconstruction wants the code to change along the
# data (to tell digits apart); the penalty wants it constant in every direction; the compromise
# is a code that is **invariant to directions the data do not vary in**.
#
# Two closed forms: a linear encoder $f(x) = Wx+b$ has $J = W$ everywhere, so the penalty is
# $\|W\|_F^2$ (weight decay); a sigmoid encoder $h = \sigma(Wx+b)$ has
# $\partial h_j/\partial x_i = h_j(1-h_j)W_{ji}$, so
# $\|J\|_F^2 = \sum_j \big(h_j(1-h_j)\big)^2\sum_i W_{ji}^2$ (Rifai et al. 2011, eq. 3), which
# vanishes where units saturate.
#
# `course_lib.autoencoders.contractive_penalty(encoder, x)` computes $\|J_f(x)\|_F^2$ by automatic
# differentiation, one backward pass per code unit. **Check** it against the explicit Jacobian
# (`torch.autograd.functional.jacobian`, in float64) on a few digits, for the trained deep
# encoder, and against the sensitivity interpretation by Monte Carlo.

# %%
encoder64 = Autoencoder.mlp((1, 8, 8), latent_dim=k, hidden=(128,), final_activation="tanh")
encoder64.load_state_dict(deep_ae.state_dict())
encoder64 = encoder64.double().cpu().eval().encoder
points = x_test[:4].double().cpu()
penalty = ae_lib.contractive_penalty(encoder64, points, create_graph=False)
explicit = torch.stack([torch.autograd.functional.jacobian(encoder64, p[None]).pow(2).sum()
                        for p in points])                              # each J is (1, k, 1, 1, 8, 8)
print("contractive_penalty:", np.round(penalty.numpy(), 4))
print("explicit Jacobian  :", np.round(explicit.numpy(), 4))
assert torch.allclose(penalty, explicit, rtol=1e-10)

s, m_draws = 1e-3, 4000                                                # E||f(x + delta) - f(x)||^2
for p, pen in zip(points[:2], penalty[:2]):
    delta = s * torch.randn(m_draws, 1, 8, 8, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        moves = (encoder64(p + delta) - encoder64(p[None])).pow(2).sum(1) / s**2
    se = moves.std().item() / math.sqrt(m_draws)
    print(f"E||f(x+delta)-f(x)||^2 / s^2 = {moves.mean().item():.2f} +- {se:.2f}  "
          f"vs ||J||_F^2 = {pen.item():.2f}")
    assert abs(moves.mean().item() - pen.item()) < 5 * se

# %% [markdown]
# **Predict, then run (★☆☆, 1 point).** Take the trained deep autoencoder and change it in two
# places: multiply the encoder's last layer (weights and bias) by $c = 0.1$, so every code becomes
# $0.1\,z$, and divide the weights of the decoder's first layer by $0.1$. What happens to the
# reconstructions and to the contractive penalty $\lVert J_f(x)\rVert_F^2$?
#
# - (a) both are unchanged;
# - (b) the reconstructions are unchanged and the penalty is divided by 100;
# - (c) the reconstructions are unchanged and the penalty is divided by 10;
# - (d) the reconstructions change.
#
# Set `prediction` to `"a"`, `"b"`, `"c"` or `"d"` before you run the next cells.

# %% nbgrader={"grade": false, "grade_id": "predict_code_rescaling", "locked": false, "schema_version": 3, "solution": true, "task": false}
prediction = None  # one of "a", "b", "c", "d"
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "predict_code_rescaling_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
grading.check_prediction(prediction, "abcd")
### BEGIN HIDDEN TESTS
assert prediction == "b", "g(f(x)) is unchanged and J_f is scaled by 0.1, so ||J_f||_F^2 by 0.01"
### END HIDDEN TESTS

# %% [markdown]
# The run, in float64 on four test digits (copies of the trained model; nothing is retrained):

# %%
original64 = copy.deepcopy(deep_ae).double().cpu().eval()
rescaled64 = copy.deepcopy(original64)
c_scale = 0.1
with torch.no_grad():
    rescaled64.encoder[1].net[2].weight.mul_(c_scale)                   # z -> c z
    rescaled64.encoder[1].net[2].bias.mul_(c_scale)
    rescaled64.decoder[0].net[0].weight.div_(c_scale)                   # W (c z) / c = W z
    rec_change = (rescaled64(points) - original64(points)).abs().max().item()
penalty_ratio = (ae_lib.contractive_penalty(rescaled64.encoder, points, create_graph=False)
                 / ae_lib.contractive_penalty(original64.encoder, points, create_graph=False))
print(f"largest change of a reconstructed pixel: {rec_change:.1e}; penalty ratio per digit: "
      f"{np.round(penalty_ratio.numpy(), 6)}: answer (b)")
assert rec_change < 1e-10 and torch.allclose(penalty_ratio, torch.full_like(penalty_ratio, c_scale**2), rtol=1e-9)

# %% [markdown]
# ### Exercise 5: the sigmoid encoder's contractive penalty
#
# **Exercise 5 (short, ★★☆, 2 points).** Implement Rifai et al.'s closed form for $h =
# \sigma(xW^\top + b)$: `W` `(K, D)`, `b` `(K,)`, `x` `(N, D)`; return $\|J_f(x_n)\|_F^2$ for each
# example, shape `(N,)`. No autograd needed. The check compares with `contractive_penalty`
# (automatic differentiation) on random inputs, including saturated units.

# %% nbgrader={"grade": false, "grade_id": "sigmoid_contractive_penalty", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sigmoid_contractive_penalty(W, b, x):
    """||J_f(x)||_F^2 per example (N,) for the encoder h = sigmoid(x W^T + b)."""
    ### BEGIN SOLUTION
    h = torch.sigmoid(x @ W.T + b)                                # (N, K)
    return ((h * (1 - h)) ** 2 * (W**2).sum(dim=1)).sum(dim=1)    # sum_j (h_j(1-h_j))^2 ||W_j||^2
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sigmoid_contractive_penalty_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
grading.check("sigmoid_contractive_penalty", sigmoid_contractive_penalty)

# %% [markdown]
# Train a contractive autoencoder (same architecture, $\lambda = 0.1$; each step costs $k + 1$
# backward passes, so fewer steps).

# %%
contractive_ae = Autoencoder.mlp((1, 8, 8), latent_dim=k, hidden=(128,), final_activation="tanh")
hist_cae = fit(contractive_ae, ae_lib.contractive_ae_loss(weight=0.1), x_train, num_steps=1000,
               lr=3e-3, device=device, generator=gen, desc="contractive AE")

# %% [markdown]
# **A caveat on scale.** $\|J_f\|_F^2$ can be made small for free by shrinking every code by a
# factor $c$ and letting the decoder's first layer grow by $1/c$: the reconstruction is unchanged
# and the penalty drops by $c^2$. (Rifai et al. tie the decoder's weights to the encoder's,
# $W_d = W_e^\top$, which rules this out.) So we report two numbers on the test digits: the raw
# mean $\|J_f\|_F^2$, and the **scale-free** ratio $\overline{\|J_f\|_F^2}/\operatorname{tr}
# \operatorname{Cov}(z)$, the sensitivity relative to how spread out the codes are.
# **Check**: the contractive autoencoder is far more contractive than the plain one in raw terms
# (less than a tenth of its mean $\|J_f\|_F^2$) and still more contractive scale-free (below 0.9
# of its ratio), while it still reconstructs better than PCA; the denoising autoencoder, with no
# penalty at all, is below 0.75 of the plain one's ratio (see below).

# %%
def contraction(model):
    """(mean ||J_f||_F^2 over test digits, that / total variance of the test codes)."""
    model.eval()
    jac = ae_lib.contractive_penalty(model.encode, x_test, create_graph=False).mean().item()
    codes = ae_lib.encode_dataset(model, x_test)
    return jac, jac / codes.var(dim=0).sum().item()


table = {name: (*contraction(m), test_error(m, x_test)) for name, m in
         [("plain AE", deep_ae), ("denoising AE", denoising_ae), ("contractive AE", contractive_ae)]}
print(f"{'':16s} {'mean ||J||_F^2':>15s} {'/ tr Cov(z)':>12s} {'test error':>11s}")
for name, (jac, ratio, err) in table.items():
    print(f"{name:16s} {jac:15.2f} {ratio:12.3f} {err:11.2f}")
assert table["contractive AE"][0] < 0.1 * table["plain AE"][0]
assert table["contractive AE"][1] < 0.9 * table["plain AE"][1]
assert table["contractive AE"][2] < pca_test_err           # still reconstructs better than PCA
assert table["denoising AE"][1] < 0.75 * table["plain AE"][1]   # contractive without a penalty

# %% [markdown]
# The scale-free ratio shows the contraction is not only a rescaling. The denoising autoencoder is
# contractive too, without any explicit penalty: learning to map $x+\sigma\epsilon$ back to $x$
# for small $\sigma$ penalises the sensitivity of the reconstruction to input noise ([Alain &
# Bengio 2014](../docs/bibliography.md#alain2014) make this precise: a small-noise DAE is a contractive
# penalty on $g\circ f$).

# %% [markdown]
# ## 6. Features for transfer
#
# Autoencoders can reconstruct data, and can learn features to initialize a supervised model
# ([Hinton & Salakhutdinov 2006](../docs/bibliography.md#hinton2006), "Reducing the dimensionality of data with neural
# networks"; [Bengio et al. 2007](../docs/bibliography.md#bengio2007), "Greedy layer-wise training of deep
# networks"). A
# standard test of a representation is the **linear probe** ([Alain & Bengio
# 2017](../docs/bibliography.md#alain2017)): freeze the encoder, fit a
# multinomial logistic regression from codes to labels on the training split, and measure
# accuracy on the held-out split. We compare 8-dimensional codes from each autoencoder with PCA's
# 8 coordinates and with the raw 64 pixels. Chance is 10%.

# %%
def probe(features_train, features_test):
    return ae_lib.linear_probe_accuracy(features_train, y_train, features_test, y_test)


X_train64 = x_train.reshape(n, d)
accuracy = {
    "raw pixels (64)": probe(X_train64, x_test.reshape(-1, d)),
    "PCA (8)": probe((X - mean) @ components, (X_test - mean) @ components),
}
for name, m in [("deep AE (8)", deep_ae), ("denoising AE (8)", denoising_ae),
                ("contractive AE (8)", contractive_ae)]:
    accuracy[name] = probe(ae_lib.encode_dataset(m, x_train), ae_lib.encode_dataset(m, x_test))
for name, acc in accuracy.items():
    print(f"{name:20s} test accuracy {acc:.3f}")

# %% [markdown]
# **Check**: every 8-number code is far above chance (above 85 %), keeps more than 90 % of the raw
# pixels' accuracy, and beats PCA's 8 numbers (the table above gives the margins). The raw pixels,
# with 8x more numbers, are better still: a linear probe on 64 pixels already separates these easy
# digits well, so the honest claim here is compression, not an improvement over pixels.

# %%
for name in ("deep AE (8)", "denoising AE (8)", "contractive AE (8)"):
    assert accuracy[name] > 0.85, name
    assert accuracy[name] > 0.9 * accuracy["raw pixels (64)"], name
    assert accuracy[name] > accuracy["PCA (8)"], name

# %% [markdown]
# ### The encoder as the initialization of a classifier
#
# A probe keeps the encoder frozen. The other use of a pretrained encoder is as the
# **initialization** of a classifier: put a linear head $W f_\theta(x) + b$ (10 logits) on the
# encoder and train **both** on labels with the cross-entropy loss (**fine-tuning**;
# [Hinton & Salakhutdinov 2006](../docs/bibliography.md#hinton2006), [Erhan et al.
# 2010](../docs/bibliography.md#erhan2010), who found
# that unsupervised pretraining helps most when labels are few). We compare three classifiers,
# each from the 3 MLP autoencoders trained above (one per seed), in two regimes: **50 labels**
# (5 images per class, drawn at random per seed; the autoencoders saw all 1437 training images,
# without labels) and **all 1437 labels**:
#
# - **linear probe**: frozen codes, logistic regression (as above);
# - **fine-tuned**: encoder initialized from the autoencoder, head at random, all trained;
# - **from scratch**: the same architecture initialized at random, with the same budget (Adam,
#   learning rate $3\cdot10^{-3}$; 300 full-batch steps with 50 labels, 500 steps of 128 with all).
#
# Measure, don't assume. Rerunning the cell below for many more seeds (outside the notebook) gave
# the same picture each time: with **all labels** both trained classifiers beat the probe (the
# frozen 8 numbers cap what a linear head can do), and fine-tuning beats training from scratch;
# with **50 labels** the **probe** is the best of the three, while fine-tuning's gain over scratch
# is small next to its seed-to-seed spread (for some seeds it is a loss), so 3 seeds cannot
# establish it, and their standard error (from 3 differences) can itself come out deceptively
# small. Fine-tuning every encoder weight on 50 examples, with a head that starts at random, moves
# the encoder away from its pretrained features; a frozen encoder keeps them.

# %%
regimes = {"50 labels": 5, "all labels": None}
transfer = {(r, m): [] for r in regimes for m in ("linear probe", "fine-tuned", "from scratch")}
for i, pretrained in enumerate(seed_aes["MLP AE"]):
    g_labels = torch.Generator().manual_seed(SEED * 100 + i)
    for regime, per_class in regimes.items():
        if per_class is None:
            idx, steps, batch = torch.arange(n), 500, 128
        else:
            idx = ae_lib.labelled_subset(y_train, per_class, generator=g_labels).to(x_train.device)
            steps, batch = 300, len(idx)
        x_lab, y_lab = x_train[idx], y_train[idx.to(y_train.device)]
        transfer[regime, "linear probe"].append(ae_lib.linear_probe_accuracy(
            ae_lib.encode_dataset(pretrained, x_lab), y_lab.cpu(), ae_lib.encode_dataset(pretrained, x_test), y_test))
        torch.manual_seed(SEED * 100 + i)
        fresh = Autoencoder.mlp((1, 8, 8), latent_dim=k, hidden=(128,)).encoder   # same architecture
        for name, clf in (("fine-tuned", EncoderClassifier.from_autoencoder(pretrained, k)),
                          ("from scratch", EncoderClassifier(fresh, k))):
            fit(clf, ae_lib.classification_loss, (x_lab, y_lab.to(device)), num_steps=steps, batch_size=batch,
                lr=3e-3, device=device, generator=g_labels, progress=False)
            transfer[regime, name].append(ae_lib.classifier_accuracy(clf, x_test, y_test))
transfer = {key: torch.tensor(v, dtype=torch.float64) for key, v in transfer.items()}


def mean_se(v):
    return v.mean().item(), (v.std() / math.sqrt(v.numel())).item()


print(f"test accuracy, mean ± s.e. over {ae_seeds} seeds (chance 0.10)")
print(f"{'':12s}" + "".join(f"{m:>20s}" for m in ("linear probe", "fine-tuned", "from scratch")))
for regime in regimes:
    print(f"{regime:12s}" + "".join("{:>14.3f} ± {:.3f}".format(*mean_se(transfer[regime, m]))
                                    for m in ("linear probe", "fine-tuned", "from scratch")))
gain = {r: transfer[r, "fine-tuned"] - transfer[r, "from scratch"] for r in regimes}   # paired by seed
for r in regimes:
    print("{}: fine-tuned minus from scratch {:+.3f} ± {:.3f}".format(r, *mean_se(gain[r])))

# %% [markdown]
# **Check**, only what held for every seed we tried, with margin (each difference below is paired
# by seed, and each assert states its sign):
#
# - all labels: fine-tuned and from scratch both beat the linear probe, and fine-tuned beats from
#   scratch (mean gain > 0; it held with margin for every seed we tried);
# - 50 labels: the linear probe beats from scratch (the pretrained features help); fine-tuning's
#   gain over scratch is **not** claimed: we assert only that it is no loss beyond noise (mean gain
#   above $-2$ standard errors) and no larger than the probe's gain plus 2 standard errors.

# %%
se_50 = mean_se(gain["50 labels"])[1]
probe_gain_50 = transfer["50 labels", "linear probe"] - transfer["50 labels", "from scratch"]
assert gain["all labels"].mean() > 0
assert (transfer["all labels", "fine-tuned"].mean() > transfer["all labels", "linear probe"].mean()
        and transfer["all labels", "from scratch"].mean() > transfer["all labels", "linear probe"].mean())
assert probe_gain_50.mean() > 0
assert gain["50 labels"].mean() > -2 * se_50
assert gain["50 labels"].mean() < probe_gain_50.mean() + 2 * math.hypot(se_50, mean_se(probe_gain_50)[1])

# %% [markdown]
# ## 7. Decoding random codes gives (mostly) garbage
#
# Can we generate new images from an autoencoder? Try the most favourable version:
# draw $z\sim\mathcal N(m,\operatorname{diag}(s^2))$ with $m, s$ the per-dimension mean and
# standard deviation of the training codes, and decode. Nothing in the autoencoder's loss says
# anything about codes that no training image maps to, and the codes of real digits fill only a
# thin, curved part of $\mathbb R^8$: most random codes land off it. A few decoded codes happen to
# look like digits; many are blends of two digits or broken strokes, and there is no way to tell
# in advance which codes are good.
#
# **Check**, quantitatively: the mean distance from each decoded image to its nearest training
# digit is more than 1.4 times larger for decoded random codes than for reconstructions of unseen
# test digits, and more than 1.3 times larger than for the test digits themselves.

# %%
codes_train = ae_lib.encode_dataset(deep_ae, x_train)
z_random = codes_train.mean(0) + codes_train.std(0) * torch.randn(
    x_test.shape[0], k, generator=gen).to(device)
with torch.no_grad():
    decoded_random = deep_ae.decode(z_random)
    reconstructions = deep_ae(x_test)
nn_random = metrics.nearest_neighbor_distance(decoded_random, x_train).mean().item()
nn_recon = metrics.nearest_neighbor_distance(reconstructions, x_train).mean().item()
nn_real = metrics.nearest_neighbor_distance(x_test, x_train).mean().item()
print(f"mean distance to the nearest training digit: decoded random codes {nn_random:.2f}, "
      f"reconstructions of test digits {nn_recon:.2f}, test digits themselves {nn_real:.2f}")
assert nn_random > 1.4 * nn_recon and nn_random > 1.3 * nn_real

# %%
widgets.plot_random_latents(deep_ae, x_train, x_test);

# %%
widgets.random_latents_explorer(deep_ae, x_train, x_test)

# %% [markdown]
# The fix is to make the code distribution something we **can** sample from: force the encoder's
# codes to look like draws from a fixed prior $p(z) = \mathcal N(0, I)$ and make the decoder a
# probabilistic model $p_\theta(x\mid z)$. That is the variational autoencoder, derived from a
# likelihood bound (the ELBO) in notebook 02.
#
# ## Summary
#
# | claim | checked by |
# |---|---|
# | optimal linear AE error $=\sum_{j>k}\lambda_j$ (PCA) | closed form vs eigenvalues; random subspaces do worse |
# | a trained linear AE spans the PCA subspace, in another basis | principal angles < 0.05 rad; error within
# 0.1% of the optimum; decoder columns not orthonormal, not principal directions |
# | a deep AE beats PCA at the same $k$ | test error < 0.5x PCA's |
# | the DAE's optimum is $\mathbb E[x\mid\tilde x]$ | Monte Carlo on a $\pm1$ toy (5 s.e.); DAE error < 0.75x
# the plain AE's on noisy digits |
# | $\|J_f\|_F^2$ = autograd Jacobian = noise sensitivity | explicit Jacobian (float64), Monte Carlo (5 s.e.) |
# | the CAE contracts | raw (< 0.1x) and scale-free (< 0.9x) Jacobian norms below the plain AE's |
# | codes are useful features | linear probe far above chance, above PCA's accuracy |
# | a conv AE: half the parameters, about the same error, more arithmetic | parameter and FLOP counts
# (exact); 3-seed mean error ratio < 1.10 |
# | the encoder as a classifier's initialization | all labels: fine-tuned > from scratch > probe (3-seed
# means); 50 labels: probe > from scratch, fine-tuning's gain within noise |
# | decoded random codes are mostly not digits | nearest-training-digit distance > 1.4x reconstructions' |
