"""Autoencoders: plain, denoising (Vincent et al. 2008) and contractive (Rifai et al. 2011).

Notebook 01. An autoencoder is an encoder ``h = f(x)`` and a decoder ``x_hat = g(h)`` trained to
reconstruct ``x`` through a bottleneck. A linear autoencoder trained on squared error spans the
PCA subspace (Baldi & Hornik 1989), which :func:`pca` and :func:`principal_angles` check.

Loss functions here follow :func:`course_lib.train.fit`'s protocol
``loss_fn(model, batch, generator=None) -> scalar``; ``batch`` is a tensor or a tuple whose first
element is the data (labels, if any, are ignored).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._checks import check_int, check_positive, check_same_shape, check_tensor
from ._primitives import model_device, rand, randn, randperm
from .nets import MLP, ConvDecoder, ConvEncoder

__all__ = [
    "Autoencoder", "reconstruction_error", "reconstruction_loss", "contractive_penalty", "corrupt",
    "principal_angles", "pca", "ae_loss", "denoising_ae_loss", "contractive_ae_loss",
    "encode_dataset", "linear_probe_accuracy",
]


# --------------------------------------------------------------------------------------- model
class Autoencoder(nn.Module):
    """An encoder ``h = f(x)`` and a decoder ``x_hat = g(h)``; ``forward(x) = g(f(x))``.

    Parameters
    ----------
    encoder, decoder : nn.Module
        Any modules with ``encoder(x) -> h`` and ``decoder(h) -> x_hat`` of ``x``'s shape.

    See Also
    --------
    Autoencoder.mlp : build one from MLPs (optionally linear, optionally for images).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        for name, m in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{name}: expected an nn.Module, got {type(m).__name__}")
        self.encoder = encoder
        self.decoder = decoder

    @classmethod
    def mlp(cls, in_dim: int | Sequence[int], latent_dim: int, hidden: Sequence[int] = (128,),
            activation: str | type[nn.Module] = "silu", linear: bool = False,
            final_activation: str | type[nn.Module] | None = None) -> "Autoencoder":
        """Build an MLP autoencoder (decoder widths mirror the encoder's).

        Parameters
        ----------
        in_dim : int or tuple of int
            Data width ``D``, or a per-example shape such as ``(1, 8, 8)``: then the encoder
            flattens its input and the decoder reshapes its output back to that shape.
        latent_dim : int
            Bottleneck width ``K``.
        hidden : sequence of int, default (128,)
            Encoder hidden widths; the decoder uses them reversed. Ignored when ``linear``.
        activation : str or nn.Module class, default "silu"
        linear : bool, default False
            If True, encoder and decoder are single affine maps ``h = W x + b``,
            ``x_hat = W' h + b'`` (the autoencoder whose optimum spans the PCA subspace).
        final_activation : str or nn.Module class, optional
            Applied to the decoder output, e.g. ``"tanh"`` for images in ``[-1, 1]``.

        Returns
        -------
        Autoencoder
        """
        if isinstance(in_dim, Sequence) and not isinstance(in_dim, str):
            shape = tuple(check_int(f"in_dim[{i}]", s, minimum=1) for i, s in enumerate(in_dim))
            if not shape:
                raise ValueError("in_dim: expected an int or a non-empty shape, got ()")
        else:
            shape = (check_int("in_dim", in_dim, minimum=1),)
        dim = 1
        for s in shape:
            dim *= s
        latent_dim = check_int("latent_dim", latent_dim, minimum=1)
        widths = () if linear else tuple(hidden)
        encoder: nn.Module = MLP(dim, latent_dim, hidden=widths, activation=activation)
        decoder: nn.Module = MLP(latent_dim, dim, hidden=widths[::-1], activation=activation,
                                 final_activation=final_activation)
        if len(shape) > 1:
            encoder = nn.Sequential(nn.Flatten(1), encoder)
            decoder = nn.Sequential(decoder, nn.Unflatten(1, shape))
        return cls(encoder, decoder)

    @classmethod
    def conv(cls, image_shape: Sequence[int] = (1, 8, 8), latent_dim: int = 8,
             channels: Sequence[int] = (16,), activation: str | type[nn.Module] = "silu",
             final_activation: str | type[nn.Module] | None = None) -> "Autoencoder":
        """Build a convolutional autoencoder: :class:`~course_lib.nets.ConvEncoder` and its mirror
        :class:`~course_lib.nets.ConvDecoder` (Masci et al. 2011).

        Parameters
        ----------
        image_shape : (int, int, int), default (1, 8, 8)
            ``(C, H, W)``; ``H`` and ``W`` divisible by ``2 ** len(channels)``.
        latent_dim : int, default 8
            Bottleneck width ``K``.
        channels : sequence of int, default (16,)
            Channels per stride-2 level of the encoder (the decoder mirrors them).
        activation : str or nn.Module class, default "silu"
        final_activation : str or nn.Module class, optional
            Applied to the decoder output, e.g. ``"tanh"`` for images in ``[-1, 1]``.

        Returns
        -------
        Autoencoder
            ``encode``: ``(N, C, H, W) -> (N, K)``; ``decode``: ``(N, K) -> (N, C, H, W)``.

        Raises
        ------
        ValueError
            On bad arguments; the encoder and the decoder raise a ``ValueError`` naming ``x`` or
            ``z`` for inputs of the wrong shape.
        """
        encoder = ConvEncoder(image_shape, latent_dim, channels=channels, activation=activation)
        decoder = ConvDecoder(image_shape, latent_dim, channels=channels, activation=activation,
                              final_activation=final_activation)
        return cls(encoder, decoder)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code ``h = f(x)``, shape ``(N, K)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``x_hat = g(z)`` from codes ``(N, K)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``g(f(x))``, ``x``'s shape."""
        return self.decoder(self.encoder(x))


# -------------------------------------------------------------------------------- losses
def reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example squared error ``||x_hat - x||^2`` summed over all data dimensions.

    Parameters
    ----------
    x_hat, x : torch.Tensor, same shape (N, ...)

    Returns
    -------
    torch.Tensor, shape (N,)

    Raises
    ------
    ValueError
        If the shapes differ (no broadcasting).
    """
    check_tensor("x_hat", x_hat, floating=True)
    check_tensor("x", x, floating=True)
    check_same_shape("x_hat", x_hat, "x", x)
    if x.dim() == 0:
        raise ValueError("x: expected a batch (N, ...), got a 0-D tensor")
    return (x_hat - x).pow(2).reshape(x.shape[0], -1).sum(dim=1)   # ||x_hat - x||^2


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of :func:`reconstruction_error`: ``(1/N) sum_n ||x_hat_n - x_n||^2``.

    For a Gaussian decoder ``p(x | h) = N(g(h), s^2 I)`` this is ``2 s^2`` times the negative
    log-likelihood up to a constant (Chan 2024,
    "Tutorial on Diffusion Models for Imaging and Vision").

    Returns
    -------
    torch.Tensor, scalar
    """
    return reconstruction_error(x_hat, x).mean()


def _batch_x(batch) -> torch.Tensor:
    """The data part of a minibatch (a tensor, or the first element of a tuple)."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    check_tensor("batch", x, floating=True)
    return x


def ae_loss(model: nn.Module, batch, generator: torch.Generator | None = None) -> torch.Tensor:
    """Plain autoencoder loss ``(1/N) sum_n ||g(f(x_n)) - x_n||^2`` (for :func:`train.fit`).

    Parameters
    ----------
    model : nn.Module
        ``model(x)`` returns the reconstruction (e.g. :class:`Autoencoder`).
    batch : torch.Tensor or tuple
        ``x`` ``(N, ...)`` or ``(x, labels)``.
    generator : torch.Generator, optional
        Unused (the loss is deterministic); accepted for the ``fit`` protocol.

    Returns
    -------
    torch.Tensor, scalar
    """
    x = _batch_x(batch)
    return reconstruction_loss(model(x), x)


def denoising_ae_loss(noise_std: float | None = None, mask_prob: float | None = None,
                      mask_value: float = 0.0) -> Callable[..., torch.Tensor]:
    """Denoising autoencoder loss: reconstruct the clean ``x`` from a corrupted ``x~``.

    ``L = (1/N) sum_n ||g(f(x~_n)) - x_n||^2`` with ``x~ ~ q(x~ | x)`` from :func:`corrupt`
    (Vincent et al. 2008, Sec. 2.3: the target is the *uncorrupted* input).

    Parameters
    ----------
    noise_std, mask_prob, mask_value :
        The corruption, as in :func:`corrupt`.

    Returns
    -------
    callable
        ``loss(model, batch, generator=None) -> scalar`` for :func:`course_lib.train.fit`.
    """
    _check_corruption(noise_std, mask_prob)

    def loss(model: nn.Module, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        x = _batch_x(batch)
        x_tilde = corrupt(x, noise_std=noise_std, mask_prob=mask_prob, mask_value=mask_value,
                          generator=generator)
        return reconstruction_loss(model(x_tilde), x)

    loss.__name__ = "denoising_ae_loss"
    return loss


def contractive_ae_loss(weight: float) -> Callable[..., torch.Tensor]:
    """Contractive autoencoder loss ``(1/N) sum_n [ ||g(f(x_n)) - x_n||^2 + weight ||J_f(x_n)||_F^2 ]``.

    Rifai et al. 2011, eq. 2 (with squared error as the reconstruction cost); the penalty is
    :func:`contractive_penalty` of the model's encoder.

    Parameters
    ----------
    weight : float
        Penalty weight ``lambda >= 0``.

    Returns
    -------
    callable
        ``loss(model, batch, generator=None) -> scalar``; ``model`` needs ``encode`` and
        ``decode`` (e.g. :class:`Autoencoder`).
    """
    check_positive("weight", weight, strict=False)
    weight = float(weight)

    def loss(model: nn.Module, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        x = _batch_x(batch)
        x_in = x.detach().requires_grad_(True)
        h = model.encode(x_in)
        rec = reconstruction_error(model.decode(h), x)
        pen = _jacobian_sq_norm(h, x_in, create_graph=True)
        return (rec + weight * pen).mean()

    loss.__name__ = "contractive_ae_loss"
    return loss


# ----------------------------------------------------------------------- contractive penalty
def _jacobian_sq_norm(h: torch.Tensor, x_in: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """``sum_{j,i} (dh_j/dx_i)^2`` per example, one backward pass per code unit."""
    n = x_in.shape[0]
    if h.dim() == 0 or h.shape[0] != n:
        raise ValueError(f"encoder: expected an output with batch size {n}, got shape {tuple(h.shape)}")
    h = h.reshape(n, -1)
    total = x_in.new_zeros(n)
    for j in range(h.shape[1]):
        # Row j of every example's Jacobian: grad of sum_n h_nj w.r.t. x (examples independent).
        (g,) = torch.autograd.grad(h[:, j].sum(), x_in, create_graph=create_graph,
                                   retain_graph=True, allow_unused=True)
        if g is not None:
            total = total + g.reshape(n, -1).pow(2).sum(dim=1)   # sum_i (dh_j/dx_i)^2
    return total


def contractive_penalty(encoder: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                        create_graph: bool = True) -> torch.Tensor:
    """Squared Frobenius norm of the encoder Jacobian, ``||J_f(x)||_F^2 = sum_{ij} (dh_j/dx_i)^2``.

    Exact, by automatic differentiation: one backward pass per code unit ``j`` (``K`` passes).
    Works for any encoder that treats examples independently (no batch norm in training mode);
    ``x`` may be ``(N, D)`` or images ``(N, C, H, W)`` that the encoder flattens, in which case
    ``i`` runs over all pixels.

    Parameters
    ----------
    encoder : callable
        ``encoder(x) -> h`` with ``h`` ``(N, K)`` (or ``(N, ...)``, flattened).
    x : torch.Tensor, shape (N, ...)
        Inputs (floating).
    create_graph : bool, default True
        Keep the graph so the penalty can be differentiated w.r.t. the encoder's parameters
        (training); ``False`` for evaluation only.

    Returns
    -------
    torch.Tensor, shape (N,)
        ``||J_f(x_n)||_F^2`` per example. For a linear encoder ``h = W x + b`` it equals
        ``||W||_F^2`` for every ``x``; for ``h = sigmoid(W x + b)`` it equals
        ``sum_j (h_j (1 - h_j))^2 ||W_j||^2`` (Rifai et al. 2011, eq. 3).

    Raises
    ------
    ValueError, TypeError
        If ``x`` is not a floating tensor with a batch dimension, or the encoder's output does
        not have batch size ``N``.

    References
    ----------
    Rifai, Vincent, Muller, Glorot, Bengio 2011, "Contractive auto-encoders: explicit invariance
    during feature extraction", ICML, eq. 2 (penalty ``||J_f(x)||_F^2``).
    """
    check_tensor("x", x, floating=True)
    if x.dim() < 2:
        raise ValueError(f"x: expected a batch (N, D) or (N, C, H, W), got shape {tuple(x.shape)}")
    if not callable(encoder):
        raise TypeError(f"encoder: expected a callable, got {type(encoder).__name__}")
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        h = encoder(x_in)
        if not isinstance(h, torch.Tensor):
            raise TypeError(f"encoder: expected it to return a tensor, got {type(h).__name__}")
        return _jacobian_sq_norm(h, x_in, create_graph=create_graph)


# ----------------------------------------------------------------------------- corruption
def _check_corruption(noise_std, mask_prob) -> None:
    if noise_std is None and mask_prob is None:
        raise ValueError("noise_std, mask_prob: expected at least one corruption, got neither")
    if noise_std is not None:
        check_positive("noise_std", noise_std, strict=False)
    if mask_prob is not None:
        try:
            p = float(mask_prob)
        except (TypeError, ValueError):
            raise TypeError(f"mask_prob: expected a number in [0, 1], got {mask_prob!r}") from None
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mask_prob: expected a number in [0, 1], got {mask_prob!r}")


def _draw(kind: str, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal or uniform draws of ``like``'s shape, on the generator's device, then moved."""
    fn = randn if kind == "normal" else rand
    return fn(like.shape, generator, like.device, like.dtype)


def corrupt(x: torch.Tensor, noise_std: float | None = None, mask_prob: float | None = None,
            generator: torch.Generator | None = None, mask_value: float = 0.0) -> torch.Tensor:
    """Draw ``x~ ~ q(x~ | x)`` for the denoising autoencoder.

    Masking noise (Vincent et al. 2008, Sec. 2.3): each entry is independently replaced by
    ``mask_value`` with probability ``mask_prob``. Additive isotropic Gaussian noise
    (Vincent et al. 2010, Sec. 4.2): ``x~ = x + noise_std * eps``, ``eps ~ N(0, I)``. With both,
    masking is applied first, then the Gaussian noise.

    Parameters
    ----------
    x : torch.Tensor, shape (N, ...)
        Clean inputs (floating).
    noise_std : float, optional
        Gaussian noise standard deviation (>= 0).
    mask_prob : float, optional
        Probability in ``[0, 1]`` that an entry is masked.
    generator : torch.Generator, optional
        Drives the draws (made on its device, then moved to ``x``'s).
    mask_value : float, default 0.0
        Value a masked entry takes (0 is the original paper's; -1 is background for digits in
        ``[-1, 1]``).

    Returns
    -------
    torch.Tensor
        ``x~``, same shape, dtype and device as ``x``.

    Raises
    ------
    ValueError
        If neither corruption is given, ``noise_std < 0`` or ``mask_prob`` is outside ``[0, 1]``.

    References
    ----------
    Vincent, Larochelle, Bengio, Manzagol 2008, "Extracting and composing robust features with
    denoising autoencoders", ICML, Sec. 2.3. Vincent et al. 2010, JMLR 11, Sec. 4.2.
    """
    check_tensor("x", x, floating=True)
    _check_corruption(noise_std, mask_prob)
    x_tilde = x
    if mask_prob is not None:
        keep = _draw("uniform", x, generator) >= float(mask_prob)      # masked w.p. mask_prob
        x_tilde = torch.where(keep, x_tilde, torch.full_like(x, float(mask_value)))
    if noise_std is not None:
        x_tilde = x_tilde + float(noise_std) * _draw("normal", x, generator)   # x + sigma eps
    return x_tilde


# ------------------------------------------------------------------------- subspaces and PCA
def _orthonormal_basis(name: str, a: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the column space of ``a`` by reduced QR; checks full column rank."""
    q, r = torch.linalg.qr(a, mode="reduced")
    diag = torch.diagonal(r).abs()
    tol = diag.max() * max(a.shape) * torch.finfo(a.dtype).eps if diag.numel() else 0.0
    if diag.numel() == 0 or bool((diag <= tol).any()) or not bool(torch.isfinite(r).all()):
        raise ValueError(f"{name}: expected full column rank {a.shape[1]}, got a rank-deficient "
                         f"or non-finite matrix of shape {tuple(a.shape)}")
    return q


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles between the column spaces of ``A`` and ``B``, in radians, ascending.

    Björck & Golub (1973): with orthonormal bases ``Q_A``, ``Q_B`` (reduced QR), the cosines of
    the angles are the singular values of ``Q_A^T Q_B``. Small angles are computed from their
    sines, the singular values of ``Q_B - Q_A (Q_A^T Q_B)``, because ``arccos`` loses accuracy
    near 1 (Knyazev & Argentati 2002; the same rule as ``scipy.linalg.subspace_angles``).

    Parameters
    ----------
    A : torch.Tensor, shape (D, k_A)
    B : torch.Tensor, shape (D, k_B)
        Full column rank, floating, same ``D``.

    Returns
    -------
    torch.Tensor, shape (min(k_A, k_B),)
        ``0 <= theta_1 <= ... <= theta_k <= pi/2``. All zero iff one space contains the other.

    Raises
    ------
    ValueError
        On shape mismatch or rank-deficient input.

    References
    ----------
    Björck & Golub 1973, "Numerical methods for computing angles between linear subspaces",
    Math. Comp. 27(123), Sec. 3.
    """
    check_tensor("A", A, ndim=2, floating=True)
    check_tensor("B", B, ndim=2, floating=True)
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"A and B: expected the same number of rows D, got shapes "
                         f"{tuple(A.shape)} and {tuple(B.shape)}")
    if A.dtype != B.dtype:
        B = B.to(A.dtype)
    if B.device != A.device:
        raise ValueError(f"A and B: expected the same device, got {A.device} and {B.device}")
    qa, qb = _orthonormal_basis("A", A), _orthonormal_basis("B", B)
    if qb.shape[1] > qa.shape[1]:
        qa, qb = qb, qa                          # angles are symmetric; make k_B <= k_A
    c = qa.mT @ qb                               # (k_A, k_B)
    cos = torch.linalg.svdvals(c).clamp(-1.0, 1.0)                    # descending cosines
    sin = torch.linalg.svdvals(qb - qa @ c).clamp(0.0, 1.0).flip(0)   # ascending sines
    theta_cos = torch.arccos(cos)                                     # ascending angles
    theta_sin = torch.arcsin(sin)
    return torch.where(cos.pow(2) >= 0.5, theta_sin, theta_cos)       # sines for theta <= pi/4


def pca(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal component analysis by the SVD of the centred data (the reference subspace).

    ``x - mean = U S V^T``; the components are the first ``k`` right singular vectors (columns
    of ``V``), ordered by explained variance ``S_i^2 / (N - 1)``, each with its largest-magnitude
    entry made positive (a deterministic sign).

    Parameters
    ----------
    x : torch.Tensor, shape (N, D)
    k : int
        Number of components, ``1 <= k <= min(N, D)``.

    Returns
    -------
    components : torch.Tensor, shape (D, k)
        Orthonormal columns.
    mean : torch.Tensor, shape (D,)

    Raises
    ------
    ValueError
        If ``x`` is not 2-D or ``k`` is out of range.

    References
    ----------
    Pearson 1901; Baldi & Hornik 1989 (the linear autoencoder's optimum spans this subspace).
    """
    check_tensor("x", x, ndim=2, floating=True)
    k = check_int("k", k, minimum=1)
    if k > min(x.shape):
        raise ValueError(f"k: expected 1 <= k <= min(N, D) = {min(x.shape)}, got {k}")
    mean = x.mean(dim=0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)   # x - mean = U S V^T
    comps = vh[:k].mT                                             # (D, k)
    idx = comps.abs().argmax(dim=0)
    signs = torch.sign(comps[idx, torch.arange(k, device=x.device)])
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return comps * signs, mean


# ---------------------------------------------------------------------- features and probes
@torch.no_grad()
def encode_dataset(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Codes ``model.encode(x)`` for a whole data set, in batches, without gradients.

    Uses the model's device and returns ``(N, K)`` on ``x``'s device; the model is put in eval
    mode during the call and restored afterwards.
    """
    check_tensor("x", x, floating=True)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    encode = getattr(model, "encode", None) or model
    device = model_device(model, default=x.device)
    was_training = model.training
    model.eval()
    try:
        out = [encode(x[i:i + batch_size].to(device)).to(x.device)
               for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def linear_probe_accuracy(features_train: torch.Tensor, labels_train: torch.Tensor,
                          features_test: torch.Tensor, labels_test: torch.Tensor,
                          C: float = 1.0, max_iter: int = 2000) -> float:
    """Test accuracy of a multinomial logistic regression trained on frozen features.

    The standard "linear probe" for judging learned representations (Alain & Bengio 2017,
    "Understanding intermediate layers using linear classifier probes"; autoencoders for
    transfer learning): standardize the features, fit scikit-learn's ``LogisticRegression``
    (L2, inverse strength ``C``) on the training features, report accuracy on the test features.

    Parameters
    ----------
    features_train : torch.Tensor, shape (N_train, K)
    labels_train : torch.Tensor, shape (N_train,)
    features_test : torch.Tensor, shape (N_test, K)
    labels_test : torch.Tensor, shape (N_test,)
    C : float, default 1.0
    max_iter : int, default 2000

    Returns
    -------
    float
        Fraction of test examples classified correctly, in ``[0, 1]``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for name, f, y in (("features_train", features_train, labels_train),
                       ("features_test", features_test, labels_test)):
        check_tensor(name, f, ndim=2)
        check_tensor(name.replace("features", "labels"), y, shape=(f.shape[0],))
    if features_train.shape[1] != features_test.shape[1]:
        raise ValueError(f"features_train and features_test: expected the same width, got "
                         f"{features_train.shape[1]} and {features_test.shape[1]}")
    check_positive("C", C)
    to_np = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=float(C), max_iter=max_iter))
    clf.fit(to_np(features_train), labels_train.detach().cpu().numpy())
    return float(clf.score(to_np(features_test), labels_test.detach().cpu().numpy()))


def random_codes(codes: torch.Tensor, num_samples: int, scale: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Random codes :math:`z \sim \mathcal N(m, \mathrm{diag}(c^2 s^2))` fitted to some codes.

    :math:`m` and :math:`s` are the per-dimension mean and standard deviation of ``codes`` (e.g.
    :func:`encode_dataset` of the training images), :math:`c` = ``scale``. The most favourable way
    to "generate" with a plain autoencoder: decode such codes. Most land off the thin set the real
    codes fill, which is why the decoded images are often not digits (notebook 01, section 7).

    Parameters
    ----------
    codes : tensor (N, K)
        Codes, ``N >= 2``.
    num_samples : int
        Number of random codes (>= 1).
    scale : float
        Multiplies the per-dimension standard deviation (> 0).
    generator : torch.Generator, optional
        Drives the draws (on the generator's device, then moved to ``codes``').

    Returns
    -------
    tensor (num_samples, K)
        On ``codes``' device, in its dtype.

    Raises
    ------
    ValueError
        ``codes`` not 2-D with at least 2 rows, ``num_samples < 1`` or ``scale <= 0``.
    """
    check_tensor("codes", codes, ndim=2, floating=True)
    if codes.shape[0] < 2:
        raise ValueError(f"codes: expected at least 2 codes to estimate a spread, got {codes.shape[0]}")
    num_samples = check_int("num_samples", num_samples, minimum=1)
    check_positive("scale", scale)
    codes = codes.detach()
    m, s = codes.mean(0), codes.std(0)
    eps = randn((num_samples, codes.shape[1]), generator, codes.device, codes.dtype)
    return m + float(scale) * s * eps                                   # z = m + c s eps


__all__ += ["random_codes"]


# ------------------------------------------------------------- the encoder as an initialization
class EncoderClassifier(nn.Module):
    """A classifier made of an encoder and a linear head: ``logits = W f(x) + b``.

    With the encoder of a trained autoencoder (:meth:`from_autoencoder`) this is unsupervised
    pretraining followed by supervised **fine-tuning**: the encoder's weights are the
    initialization, and training on labels updates the encoder and the head together (Hinton &
    Salakhutdinov 2006; Bengio et al. 2007; Erhan et al. 2010). With a freshly built encoder of
    the same architecture it is the same classifier trained from scratch.

    Parameters
    ----------
    encoder : nn.Module
        ``encoder(x) -> (N, latent_dim)``. Used as given (not copied).
    latent_dim : int
        Width ``K`` of the codes.
    num_classes : int, default 10

    Shapes
    ------
    ``forward(x)``: ``x`` as the encoder takes it, batch ``N`` -> logits ``(N, num_classes)``.

    Raises
    ------
    TypeError
        If ``encoder`` is not an ``nn.Module``.
    ValueError
        On non-positive widths, or when the encoder's output is not ``(N, latent_dim)``.
    """

    def __init__(self, encoder: nn.Module, latent_dim: int, num_classes: int = 10):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder: expected an nn.Module, got {type(encoder).__name__}")
        self.latent_dim = check_int("latent_dim", latent_dim, minimum=1)
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.encoder = encoder
        self.head = nn.Linear(self.latent_dim, self.num_classes)

    @classmethod
    def from_autoencoder(cls, autoencoder: nn.Module, latent_dim: int,
                         num_classes: int = 10) -> "EncoderClassifier":
        """A classifier initialized with a **copy** of ``autoencoder.encoder`` (the autoencoder
        itself is left unchanged by fine-tuning) and a freshly initialized linear head."""
        encoder = getattr(autoencoder, "encoder", None)
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"autoencoder: expected a model with an nn.Module attribute 'encoder', "
                            f"got {type(autoencoder).__name__}")
        return cls(copy.deepcopy(encoder), latent_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        if not isinstance(h, torch.Tensor) or h.dim() != 2 or h.shape[1] != self.latent_dim:
            shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(f"encoder: expected codes of shape (N, {self.latent_dim}), got {shape}")
        return self.head(h)


def _batch_xy(batch) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError("batch: expected a pair (x, labels), e.g. fit(model, classification_loss, "
                        f"(x, y), ...), got {type(batch).__name__}")
    x, y = batch
    check_tensor("batch", x, floating=True)
    check_tensor("labels", y, shape=(x.shape[0],))
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise TypeError(f"labels: expected an integer tensor of class labels, got dtype {y.dtype}")
    return x, y


def classification_loss(model: nn.Module, batch,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Cross-entropy ``-(1/N) sum_n log softmax(model(x_n))[y_n]`` in nats (for :func:`train.fit`).

    Parameters
    ----------
    model : nn.Module
        ``model(x) -> logits (N, C)`` (e.g. :class:`EncoderClassifier`).
    batch : (torch.Tensor, torch.Tensor)
        ``x`` ``(N, ...)`` and integer labels ``y`` ``(N,)`` in ``{0, ..., C-1}``.
    generator : torch.Generator, optional
        Unused (the loss is deterministic); accepted for the ``fit`` protocol.

    Returns
    -------
    torch.Tensor, scalar

    Raises
    ------
    TypeError, ValueError
        If ``batch`` is not ``(x, y)`` with matching batch sizes and integer labels, the logits are
        not ``(N, C)``, or a label is outside ``{0, ..., C-1}``.
    """
    x, y = _batch_xy(batch)
    logits = model(x)
    check_tensor("logits", logits, ndim=2, floating=True)
    if logits.shape[0] != x.shape[0]:
        raise ValueError(f"logits: expected batch size {x.shape[0]}, got shape {tuple(logits.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise ValueError(f"labels: expected values in [0, {logits.shape[1] - 1}], got values in "
                         f"[{int(y.min())}, {int(y.max())}]")
    return nn.functional.cross_entropy(logits, y.to(device=logits.device, dtype=torch.long))


@torch.no_grad()
def classifier_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        batch_size: int = 1024) -> float:
    """Fraction of ``x`` whose arg-max logit equals the label, in ``[0, 1]`` (model in eval mode
    during the call, restored afterwards).

    Parameters
    ----------
    model : nn.Module
        ``model(x) -> logits (N, C)``.
    x : torch.Tensor, shape (N, ...)
    y : torch.Tensor, shape (N,), integer
    batch_size : int, default 1024

    Returns
    -------
    float
    """
    x, y = _batch_xy((x, y))
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if x.shape[0] == 0:
        raise ValueError("x: expected at least one example, got an empty batch")
    device = model_device(model, default=x.device)
    was_training = model.training
    model.eval()
    try:
        correct = sum(int((model(x[i:i + batch_size].to(device)).argmax(dim=1).cpu()
                           == y[i:i + batch_size].cpu()).sum())
                      for i in range(0, x.shape[0], batch_size))
    finally:
        model.train(was_training)
    return correct / x.shape[0]


__all__ += ["EncoderClassifier", "classification_loss", "classifier_accuracy"]


def labelled_subset(labels: torch.Tensor, per_class: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of a class-balanced random subset: ``per_class`` examples of every class.

    The small-label regime of semi-supervised learning: many images, few of them labelled.

    Parameters
    ----------
    labels : torch.Tensor, shape (N,), integer
        Class labels ``0, ..., C-1``; every class present must have at least ``per_class``
        examples.
    per_class : int
        Examples drawn (without replacement) from each class present in ``labels``.
    generator : torch.Generator, optional
        Drives the draws (on the CPU).

    Returns
    -------
    torch.Tensor, shape (C * per_class,), long
        Indices into ``labels`` (on the CPU), class by class in increasing label order.

    Raises
    ------
    ValueError, TypeError
        If ``labels`` is not a 1-D integer tensor, ``per_class < 1``, or a class has fewer than
        ``per_class`` examples.
    """
    check_tensor("labels", labels, ndim=1)
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels: expected an integer tensor, got dtype {labels.dtype}")
    per_class = check_int("per_class", per_class, minimum=1)
    labels = labels.cpu()
    out = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if members.numel() < per_class:
            raise ValueError(f"per_class: expected at most {members.numel()} (the examples of class "
                             f"{c}), got {per_class}")
        out.append(members[randperm(members.numel(), generator, "cpu")[:per_class]])
    return torch.cat(out)


__all__ += ["labelled_subset"]
