"""Networks used by the notebooks: an MLP, the sinusoidal time embedding, a time-conditioned MLP.

Every network takes batch-first input ``(N, D)`` and checks it, so a wrong shape fails with a
message that names the argument instead of a matrix-multiplication error deep inside PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._checks import check_int, check_tensor
from ._primitives import randn

__all__ = ["MLP", "SinusoidalEmbedding", "TimeConditionedMLP", "make_activation", "ACTIVATIONS"]

#: Activation names accepted wherever ``activation=`` takes a string.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus,
    "identity": nn.Identity,
}


def make_activation(activation: str | type[nn.Module] | Callable[[], nn.Module],
                    name: str = "activation") -> nn.Module:
    """Build an activation module from a name in :data:`ACTIVATIONS` or a module class/factory.

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        If the class or factory does not produce an ``nn.Module``.
    """
    if isinstance(activation, str):
        key = activation.lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"{name}: expected one of {sorted(ACTIVATIONS)} or an nn.Module class, "
                             f"got {activation!r}")
        return ACTIVATIONS[key]()
    if isinstance(activation, nn.Module):
        raise TypeError(f"{name}: expected a name or an nn.Module class (not an instance, which "
                        f"would be shared between layers), got {activation!r}")
    if callable(activation):
        module = activation()
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name}: calling {activation!r} gave {type(module).__name__}, "
                            f"expected an nn.Module")
        return module
    raise TypeError(f"{name}: expected a string or an nn.Module class, got {type(activation).__name__}")


def _check_batch(name: str, x, dim: int, owner: str) -> torch.Tensor:
    """Require a floating ``(N, dim)`` tensor, with a hint for unflattened images."""
    check_tensor(name, x, floating=True)
    if x.dim() != 2 or x.shape[1] != dim:
        hint = " (flatten images first, e.g. x.flatten(1))" if x.dim() > 2 else ""
        raise ValueError(f"{name}: {owner} expected shape (N, {dim}), got {tuple(x.shape)}{hint}")
    return x


class MLP(nn.Module):
    """Multilayer perceptron ``in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim``.

    Each hidden layer is ``Linear`` followed by the activation; the output layer is ``Linear``
    followed by ``final_activation`` if given. ``hidden=()`` gives a single affine map.

    Parameters
    ----------
    in_dim, out_dim : int
        Input and output widths (>= 1).
    hidden : sequence of int, default (128, 128)
        Hidden widths.
    activation : str or nn.Module class, default "silu"
        A name in :data:`ACTIVATIONS` or a class/factory called once per layer.
    final_activation : str or nn.Module class, optional
        Applied to the output (e.g. ``"tanh"`` for images in ``[-1, 1]``).

    Shapes
    ------
    ``forward(x)``: ``x`` ``(N, in_dim)`` -> ``(N, out_dim)``.

    Raises
    ------
    ValueError
        On non-positive widths, unknown activations, or an input of the wrong shape.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (128, 128),
                 activation: str | type[nn.Module] = "silu",
                 final_activation: str | type[nn.Module] | None = None):
        super().__init__()
        self.in_dim = check_int("in_dim", in_dim, minimum=1)
        self.out_dim = check_int("out_dim", out_dim, minimum=1)
        if isinstance(hidden, int) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden: expected a sequence of ints, got {hidden!r}")
        self.hidden = tuple(check_int(f"hidden[{i}]", h, minimum=1) for i, h in enumerate(hidden))
        widths = (self.in_dim, *self.hidden, self.out_dim)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(make_activation(activation))
        if final_activation is not None:
            layers.append(make_activation(final_activation, "final_activation"))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch("x", x, self.in_dim, "MLP")
        return self.net(x)


class SinusoidalEmbedding(nn.Module):
    """Sinusoidal embedding of a time index or noise level, ``t (N,) -> (N, dim)``.

    With ``half = dim // 2`` frequencies ``omega_i = max_period ** (-i / half)``,
    ``i = 0, ..., half - 1``, the embedding is::

        emb(t) = [cos(s t omega_0), ..., cos(s t omega_{half-1}),
                  sin(s t omega_0), ..., sin(s t omega_{half-1})]

    with ``s = scale``. This is the Transformer's positional encoding (Vaswani et al. 2017,
    Sec. 3.5) as used for the diffusion step in DDPM (Ho et al. 2020, Appendix B) in the
    ``[cos, sin]`` order and frequency grid of improved-diffusion's ``timestep_embedding``.
    For the 0-based DDPM index ``t`` in ``{0, ..., T-1}`` use ``scale=1``; for a continuous time
    ``t`` in ``[0, 1]`` use e.g. ``scale=1000`` so that the fast frequencies resolve it.

    Parameters
    ----------
    dim : int
        Embedding width, even and >= 2.
    max_period : float, default 10000
        Longest period ``2 pi max_period`` (in units of ``t``) reached by the slowest frequency.
    scale : float, default 1
        Multiplies ``t`` before embedding.

    Shapes
    ------
    ``forward(t)``: ``t`` ``(N,)`` integer or floating -> ``(N, dim)``, in ``t``'s floating dtype
    (the default dtype for integer ``t``), on ``t``'s device.

    Raises
    ------
    ValueError
        If ``dim`` is odd or < 2, ``max_period <= 1``, or ``t`` is not 1-D.

    References
    ----------
    Vaswani et al. 2017, "Attention is all you need", Sec. 3.5; Ho et al. 2020, "Denoising
    diffusion probabilistic models", Appendix B.
    """

    def __init__(self, dim: int, max_period: float = 10000.0, scale: float = 1.0):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=2)
        if self.dim % 2:
            raise ValueError(f"dim: expected an even int, got {dim}")
        if not float(max_period) > 1.0:
            raise ValueError(f"max_period: expected a number > 1, got {max_period!r}")
        self.max_period = float(max_period)
        self.scale = float(scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        check_tensor("t", t, ndim=1)
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        half = self.dim // 2
        i = torch.arange(half, device=t.device, dtype=dtype)
        freqs = torch.exp(-math.log(self.max_period) * i / half)   # omega_i = max_period^(-i/half)
        args = (self.scale * t.to(dtype))[:, None] * freqs[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # [cos(t omega), sin(t omega)]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_period={self.max_period:g}, scale={self.scale:g}"


class TimeConditionedMLP(nn.Module):
    """MLP ``model(x, t) -> (N, data_dim)`` for diffusion and noise-conditional score models.

    ``t`` is embedded with :class:`SinusoidalEmbedding`, passed through a small MLP
    (``embed_dim -> hidden -> hidden``), and a per-block linear projection of it is **added** to
    each hidden block's pre-activation::

        h_0 = W_in x + b_in
        h_l = act(W_l h_{l-1} + b_l + P_l e(t)),  l = 1..num_layers
        out = W_out h_L + b_out

    With ``num_classes`` set, a learned class embedding of ``y`` is added to the time embedding
    (class conditioning as in Ho et al. 2020 and Dhariwal & Nichol 2021).

    Parameters
    ----------
    data_dim : int
        Width of ``x`` and of the output.
    hidden : int, default 256
        Hidden width.
    num_layers : int, default 3
        Number of time-conditioned hidden blocks (>= 1).
    embed_dim : int, default 64
        Sinusoidal embedding width (even).
    activation : str or nn.Module class, default "silu"
    time_scale : float, default 1
        ``scale`` of the sinusoidal embedding: 1 for a 0-based step index ``t`` in
        ``{0, ..., T-1}``, ~1000 for continuous ``t`` in ``[0, 1]``; for a noise level ``sigma``
        pass e.g. ``log(sigma)`` as ``t``.
    max_period : float, default 10000
    num_classes : int, optional
        Enables class conditioning; ``forward`` then accepts ``y`` (long ``(N,)``).

    Shapes
    ------
    ``forward(x, t, y=None)``: ``x`` ``(N, data_dim)``; ``t`` ``(N,)`` long or floating, or a
    Python number / 0-D tensor used for every row; ``y`` ``(N,)`` long in ``{0..num_classes-1}``
    or None (unconditional). Returns ``(N, data_dim)``.

    Raises
    ------
    ValueError
        If ``x`` is not ``(N, data_dim)``, ``t`` is not ``(N,)`` or scalar, or ``y`` is given
        without ``num_classes`` or with a wrong shape.
    """

    def __init__(self, data_dim: int, hidden: int = 256, num_layers: int = 3, embed_dim: int = 64,
                 activation: str | type[nn.Module] = "silu", time_scale: float = 1.0,
                 max_period: float = 10000.0, num_classes: int | None = None):
        super().__init__()
        self.data_dim = check_int("data_dim", data_dim, minimum=1)
        hidden = check_int("hidden", hidden, minimum=1)
        num_layers = check_int("num_layers", num_layers, minimum=1)
        self.embedding = SinusoidalEmbedding(embed_dim, max_period=max_period, scale=time_scale)
        self.time_mlp = nn.Sequential(nn.Linear(embed_dim, hidden), make_activation(activation),
                                      nn.Linear(hidden, hidden))
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, 1)
        self.class_embedding = (nn.Embedding(self.num_classes, hidden)
                                if self.num_classes is not None else None)
        self.input = nn.Linear(self.data_dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(num_layers))
        self.time_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(num_layers))
        self.acts = nn.ModuleList(make_activation(activation) for _ in range(num_layers))
        self.output = nn.Linear(hidden, self.data_dim)

    def forward(self, x: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        _check_batch("x", x, self.data_dim, "TimeConditionedMLP")
        n = x.shape[0]
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"t: expected shape ({n},) matching x's batch, or a scalar, "
                             f"got {tuple(t.shape)}")
        # Embed in x's dtype (so float64 models embed in float64), on x's device.
        e = self.time_mlp(self.embedding(t.to(device=x.device, dtype=x.dtype)))
        if y is not None:
            if self.class_embedding is None:
                raise ValueError("y: this model was built without num_classes, so it takes no labels")
            check_tensor("y", y, shape=(n,))
            if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
                raise TypeError(f"y: expected an integer tensor of class labels, got dtype {y.dtype}")
            e = e + self.class_embedding(y.to(device=x.device, dtype=torch.long))
        h = self.input(x)
        for block, proj, act in zip(self.blocks, self.time_proj, self.acts):
            h = act(block(h) + proj(e))   # h_l = act(W_l h_{l-1} + b_l + P_l e(t))
        return self.output(h)


# --- notebook 05: random Fourier features for 2-D toys, and a small U-Net for 8x8 digits --------
class RandomFourierFeatures(nn.Module):
    r"""Fixed random Fourier features ``x (N, D) -> (N, D + 2F)``: ``[x, sin(2 pi x B), cos(2 pi x B)]``.

    ``B`` is a ``(D, F)`` matrix of frequencies drawn once from :math:`\mathcal N(0, s^2)` and stored
    as a buffer (not trained). An MLP on these features can represent functions that vary on the
    length scale ``1/s`` far more cheaply than an MLP on ``x`` alone (Tancik et al. 2020): in
    notebook 05 this is what lets a small network learn the noise predictor of the 25-mode grid,
    whose optimum switches sign between modes 0.7 apart (standardized units).

    Parameters
    ----------
    in_dim : int
        ``D``.
    num_features : int, default 32
        ``F``, the number of frequencies (the output has ``D + 2F`` columns).
    scale : float, default 1.0
        Standard deviation ``s`` of the frequencies, in cycles per unit of ``x``.
    generator : torch.Generator, optional
        Drives the draw of ``B`` (CPU); default a generator seeded with 0, so two models built
        with the same arguments have the same features.

    Shapes
    ------
    ``forward(x)``: ``x`` ``(N, D)`` floating -> ``(N, D + 2F)`` in x's dtype and device.

    References
    ----------
    Rahimi & Recht 2007, "Random features for large-scale kernel machines"; Tancik et al. 2020,
    "Fourier features let networks learn high frequency functions in low dimensional domains".
    """

    def __init__(self, in_dim: int, num_features: int = 32, scale: float = 1.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.in_dim = check_int("in_dim", in_dim, minimum=1)
        self.num_features = check_int("num_features", num_features, minimum=1)
        if not (float(scale) > 0 and math.isfinite(float(scale))):
            raise ValueError(f"scale: expected a finite number > 0, got {scale!r}")
        self.scale = float(scale)
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        b = randn((self.in_dim, self.num_features), generator, "cpu", torch.float64)
        self.register_buffer("B", (self.scale * b).to(torch.get_default_dtype()))

    @property
    def out_dim(self) -> int:
        return self.in_dim + 2 * self.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch("x", x, self.in_dim, "RandomFourierFeatures")
        proj = 2 * math.pi * (x @ self.B.to(x.dtype))          # 2 pi x B, (N, F)
        return torch.cat([x, torch.sin(proj), torch.cos(proj)], dim=1)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, num_features={self.num_features}, scale={self.scale:g}"


class FourierTimeMLP(nn.Module):
    """A :class:`TimeConditionedMLP` on :class:`RandomFourierFeatures` of ``x``: ``model(x, t) -> (N, D)``.

    ``x`` is mapped to ``[x, sin(2 pi x B), cos(2 pi x B)]`` and fed to a time-conditioned MLP
    (sinusoidal embedding of ``t``, added to every hidden block) whose output layer returns
    ``D`` columns. Used in notebook 05 as the noise predictor :math:`\\varepsilon_\\theta(x_t, t)`
    for 2-D toys.

    Parameters
    ----------
    data_dim : int
        ``D``, the width of ``x`` and of the output.
    num_features : int, default 32
    scale : float, default 1.0
        As in :class:`RandomFourierFeatures` (in units of the standardized data).
    hidden, num_layers, embed_dim, activation, time_scale, max_period, num_classes
        As in :class:`TimeConditionedMLP`.
    generator : torch.Generator, optional
        Drives the random frequencies (default seeded with 0).

    Shapes
    ------
    ``forward(x, t, y=None)``: ``x`` ``(N, D)``; ``t`` ``(N,)`` or a scalar; ``y`` as in
    :class:`TimeConditionedMLP`. Returns ``(N, D)``.

    Raises
    ------
    ValueError
        As :class:`TimeConditionedMLP`, with ``x`` checked against ``(N, data_dim)``.
    """

    def __init__(self, data_dim: int, num_features: int = 32, scale: float = 1.0, hidden: int = 128,
                 num_layers: int = 3, embed_dim: int = 64, activation: str | type[nn.Module] = "silu",
                 time_scale: float = 1.0, max_period: float = 10000.0,
                 num_classes: int | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.data_dim = check_int("data_dim", data_dim, minimum=1)
        self.features = RandomFourierFeatures(self.data_dim, num_features, scale, generator)
        self.body = TimeConditionedMLP(self.features.out_dim, hidden=hidden, num_layers=num_layers,
                                       embed_dim=embed_dim, activation=activation,
                                       time_scale=time_scale, max_period=max_period,
                                       num_classes=num_classes)
        self.body.output = nn.Linear(check_int("hidden", hidden, minimum=1), self.data_dim)

    def forward(self, x: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        _check_batch("x", x, self.data_dim, "FourierTimeMLP")
        return self.body(self.features(x), t, y)


def _num_groups(channels: int, max_groups: int = 8) -> int:
    """The largest divisor of ``channels`` that is <= ``max_groups`` (GroupNorm's group count)."""
    return max(g for g in range(1, max_groups + 1) if channels % g == 0)


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv, plus the projected time (and class) embedding, GroupNorm-SiLU-Conv, plus a skip.

    h = conv1(act(norm1(x))) + W e ;  out = skip(x) + conv2(dropout(act(norm2(h))))
    """

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_num_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.embed = nn.Linear(embed_dim, out_channels)
        self.norm2 = nn.GroupNorm(_num_groups(out_channels), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (nn.Identity() if in_channels == out_channels
                     else nn.Conv2d(in_channels, out_channels, 1))
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.embed(e)[:, :, None, None]            # the embedding, added at every pixel
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        return self.skip(x) + h


class UNet(nn.Module):
    r"""A small U-Net noise predictor :math:`\varepsilon_\theta(x_t, t, y)` for ``(N, C, 8, 8)`` images.

    Architecture (DDPM's, Ho et al. 2020 Appendix B, without attention, scaled down):

    - the step ``t`` is embedded by :class:`SinusoidalEmbedding` and a 2-layer MLP into ``e`` of
      width ``4 * base_channels``; with ``num_classes`` set, a learned class embedding of ``y`` is
      **added** to ``e`` (Dhariwal & Nichol 2021; the null label of Ho & Salimans 2021). Label
      ``num_classes`` is the **null class** ("no label"), used when ``y`` is None, so one network
      can be trained with randomly dropped labels and sampled both ways;
    - a 3x3 input convolution, then one residual block per resolution, ``8x8 -> 4x4 -> 2x2``
      (stride-2 convolutions down), with ``base_channels * channel_mult[i]`` channels; each residual
      block is GroupNorm, SiLU, 3x3 conv, plus a linear projection of ``e``, GroupNorm, SiLU, 3x3
      conv, plus a (1x1-projected) skip;
    - a middle residual block at ``2x2``;
    - the way up, ``2x2 -> 4x4 -> 8x8`` (nearest upsampling + 3x3 conv), each level concatenating
      the encoder's activation of the same resolution (the U-Net skip connection) before a
      residual block;
    - GroupNorm, SiLU and a 3x3 convolution back to ``C`` channels.

    Parameters
    ----------
    in_channels : int, default 1
        ``C``.
    base_channels : int, default 32
        Channels at full resolution.
    channel_mult : sequence of int, default (1, 2, 2)
        Channel multipliers per resolution; ``len(channel_mult) - 1`` halvings, so ``H`` and ``W``
        must be divisible by ``2 ** (len(channel_mult) - 1)`` (4 by default).
    embed_dim : int, optional
        Width of the sinusoidal embedding (default ``base_channels``, even).
    num_classes : int, optional
        Enables class conditioning with labels ``0..num_classes-1`` plus the null label
        ``num_classes``.
    dropout : float, default 0.0
        Dropout inside the residual blocks.
    time_scale, max_period : float
        Of the sinusoidal embedding (``time_scale=1`` for the 0-based step ``t`` in
        ``{0, ..., T-1}``).

    Shapes
    ------
    ``forward(x, t, y=None)``: ``x`` ``(N, C, H, W)`` floating; ``t`` ``(N,)`` integer or floating
    (the **0-based** diffusion step), or a Python number / 0-d tensor used for every image; ``y``
    ``(N,)`` integer labels in ``{0, ..., num_classes}`` (``num_classes`` = unconditional) or None.
    Returns ``(N, C, H, W)`` in x's dtype.

    Raises
    ------
    ValueError
        ``x`` not 4-D with ``C`` channels, or ``H``/``W`` not divisible by the total downsampling;
        ``t`` not ``(N,)`` or scalar; ``y`` given without ``num_classes``, of the wrong shape, or with
        labels outside ``{0, ..., num_classes}``; bad constructor arguments.
    TypeError
        ``x`` not a floating tensor, ``y`` not an integer tensor.

    References
    ----------
    Ronneberger et al. 2015 (U-Net); Ho et al. 2020, Appendix B (the DDPM noise predictor); Dhariwal
    & Nichol 2021 (class embedding added to the time embedding); Ho & Salimans 2021 (null label for
    classifier-free guidance).
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 32,
                 channel_mult: Sequence[int] = (1, 2, 2), embed_dim: int | None = None,
                 num_classes: int | None = None, dropout: float = 0.0, time_scale: float = 1.0,
                 max_period: float = 10000.0):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        base = check_int("base_channels", base_channels, minimum=1)
        if isinstance(channel_mult, int) or not isinstance(channel_mult, Sequence) or not channel_mult:
            raise ValueError(f"channel_mult: expected a non-empty sequence of ints, got {channel_mult!r}")
        mults = tuple(check_int(f"channel_mult[{i}]", m, minimum=1) for i, m in enumerate(channel_mult))
        if not (0.0 <= float(dropout) < 1.0):
            raise ValueError(f"dropout: expected a number in [0, 1), got {dropout!r}")
        embed_dim = base if embed_dim is None else embed_dim
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, 1)
        self.downsampling = 2 ** (len(mults) - 1)
        width = 4 * base

        self.time_embedding = SinusoidalEmbedding(embed_dim, max_period=max_period, scale=time_scale)
        self.time_mlp = nn.Sequential(nn.Linear(embed_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.class_embedding = (nn.Embedding(self.num_classes + 1, width)      # + the null class
                                if self.num_classes is not None else None)

        chans = [base * m for m in mults]
        self.input = nn.Conv2d(self.in_channels, base, 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = base
        for i, c in enumerate(chans):
            self.down_blocks.append(_ResBlock(prev, c, width, dropout))
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))   # H -> H/2
            prev = c
        self.middle = _ResBlock(prev, prev, width, dropout)
        self.up_blocks = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(chans))):
            self.up_blocks.append(_ResBlock(prev + chans[i], chans[i], width, dropout))
            prev = chans[i]
            if i > 0:
                self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                   nn.Conv2d(prev, prev, 3, padding=1)))
        self.output = nn.Sequential(nn.GroupNorm(_num_groups(prev), prev), nn.SiLU(),
                                    nn.Conv2d(prev, self.in_channels, 3, padding=1))

    @property
    def null_class(self) -> int | None:
        """The label meaning "no class" (``num_classes``), or None without class conditioning."""
        return self.num_classes

    def _embed(self, x: torch.Tensor, t, y) -> torch.Tensor:
        n = x.shape[0]
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(n)
        if tuple(t.shape) != (n,):
            raise ValueError(f"t: expected shape ({n},) matching x's batch, or a scalar, "
                             f"got {tuple(t.shape)}")
        e = self.time_mlp(self.time_embedding(t.to(device=x.device, dtype=x.dtype)))
        if self.class_embedding is None:
            if y is not None:
                raise ValueError("y: this UNet was built without num_classes, so it takes no labels")
            return e
        if y is None:
            y = torch.full((n,), self.num_classes, dtype=torch.long, device=x.device)   # null class
        check_tensor("y", y, shape=(n,))
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise TypeError(f"y: expected an integer tensor of class labels, got dtype {y.dtype}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > self.num_classes):
            raise ValueError(f"y: expected labels in [0, {self.num_classes}] ({self.num_classes} = "
                             f"no class), got values in [{int(y.min())}, {int(y.max())}]")
        return e + self.class_embedding(y.to(device=x.device, dtype=torch.long))

    def forward(self, x: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        check_tensor("x", x, floating=True)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: UNet expected images of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        k = self.downsampling
        if x.shape[2] % k or x.shape[3] % k:
            raise ValueError(f"x: UNet expected H and W divisible by {k} (it halves them "
                             f"{len(self.down_blocks) - 1} times), got {tuple(x.shape[2:])}")
        e = self._embed(x, t, y)
        h = self.input(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h, e)
            skips.append(h)                                      # same resolution as the way up
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.middle(h, e)
        for i, block in enumerate(self.up_blocks):
            h = block(torch.cat([h, skips.pop()], dim=1), e)     # U-Net skip connection
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.output(h)


__all__ += ["RandomFourierFeatures", "FourierTimeMLP", "UNet"]


# --- notebook 01: a small convolutional encoder and decoder for 8x8 images ---------------------------
def _check_image_shape(image_shape: Sequence[int], levels: int) -> tuple[int, int, int]:
    """``(C, H, W)`` with positive ints and ``H``, ``W`` divisible by ``2 ** levels``."""
    if isinstance(image_shape, (int, str)) or not isinstance(image_shape, Sequence) or len(image_shape) != 3:
        raise ValueError(f"image_shape: expected (C, H, W), got {image_shape!r}")
    c, h, w = (check_int(f"image_shape[{i}]", s, minimum=1) for i, s in enumerate(image_shape))
    k = 2 ** levels
    if h % k or w % k:
        raise ValueError(f"image_shape: expected H and W divisible by {k} ({levels} stride-2 "
                         f"levels halve them), got {(h, w)}")
    return c, h, w


def _check_channels(channels: Sequence[int]) -> tuple[int, ...]:
    if isinstance(channels, (int, str)) or not isinstance(channels, Sequence) or not channels:
        raise ValueError(f"channels: expected a non-empty sequence of ints, got {channels!r}")
    return tuple(check_int(f"channels[{i}]", c, minimum=1) for i, c in enumerate(channels))


class ConvEncoder(nn.Module):
    """Convolutional encoder ``f_theta``: images ``(N, C, H, W)`` -> codes ``(N, latent_dim)``.

    One level per entry ``c_i`` of ``channels``: a 4x4 convolution with stride 2 (halves ``H`` and
    ``W``; "strided convolutions instead of pooling", Springenberg et al. 2015, as in DCGAN,
    Radford et al. 2016), the activation, a 3x3 convolution (padding 1, same size), the activation.
    Then the feature maps ``(N, c_L, H / 2^L, W / 2^L)`` are flattened and a linear layer gives the
    code. With ``channels=(16,)`` on 8x8 digits: ``8x8 -> 4x4`` with 16 channels, ``256 -> latent_dim``.

    Every convolution shares its weights across positions, so the encoder has far fewer parameters
    than an MLP with as many hidden units, but does more arithmetic per image (each weight is used
    at every position). Examples are processed independently (no batch statistics).

    Parameters
    ----------
    image_shape : (int, int, int), default (1, 8, 8)
        ``(C, H, W)``; ``H`` and ``W`` divisible by ``2 ** len(channels)``.
    latent_dim : int, default 8
        Code width ``K``.
    channels : sequence of int, default (16,)
        Channels per level (one stride-2 halving each).
    activation : str or nn.Module class, default "silu"

    Shapes
    ------
    ``forward(x)``: ``x`` ``(N, C, H, W)`` floating -> ``(N, latent_dim)``.

    Raises
    ------
    ValueError
        On bad constructor arguments, or an input that is not ``(N, C, H, W)`` with this ``C``,
        ``H``, ``W`` (the message names ``x`` and gives the expected and the actual shape).
    TypeError
        If ``x`` is not a floating tensor.

    References
    ----------
    LeCun et al. 1998, "Gradient-based learning applied to document recognition" (convolutional
    networks); Masci et al. 2011, "Stacked convolutional auto-encoders for hierarchical feature
    extraction" (convolutional autoencoders).
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), latent_dim: int = 8,
                 channels: Sequence[int] = (16,), activation: str | type[nn.Module] = "silu"):
        super().__init__()
        self.channels = _check_channels(channels)
        self.image_shape = _check_image_shape(image_shape, len(self.channels))
        self.latent_dim = check_int("latent_dim", latent_dim, minimum=1)
        c, h, w = self.image_shape
        layers: list[nn.Module] = []
        prev = c
        for ch in self.channels:
            layers += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), make_activation(activation),   # H -> H/2
                       nn.Conv2d(ch, ch, 3, padding=1), make_activation(activation)]             # same size
            prev = ch
        s = 2 ** len(self.channels)
        self.feature_shape = (prev, h // s, w // s)
        self.features = nn.Sequential(*layers)
        self.output = nn.Linear(prev * (h // s) * (w // s), self.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, floating=True)
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            hint = " (reshape flat vectors to images first, e.g. x.reshape(-1, 1, 8, 8))" if x.dim() == 2 else ""
            raise ValueError(f"x: ConvEncoder expected images of shape (N, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}{hint}")
        return self.output(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """Convolutional decoder ``g_phi``: codes ``(N, latent_dim)`` -> images ``(N, C, H, W)``.

    The mirror image of :class:`ConvEncoder` with the same ``channels``: a linear layer and the
    activation give feature maps ``(N, c_L, H / 2^L, W / 2^L)``; then per level, from the deepest,
    a 3x3 convolution and the activation, and a 4x4 transposed convolution with stride 2 (doubles
    ``H`` and ``W``; the "up-convolution", Dumoulin & Visin 2016, Sec. 4) to the next level's
    channels, followed by the activation, except after the last, which outputs ``C`` channels and
    applies ``final_activation``.

    Parameters
    ----------
    image_shape : (int, int, int), default (1, 8, 8)
        ``(C, H, W)`` of the output; ``H`` and ``W`` divisible by ``2 ** len(channels)``.
    latent_dim : int, default 8
    channels : sequence of int, default (16,)
        As in :class:`ConvEncoder` (listed from the input side; the decoder runs them backwards).
    activation : str or nn.Module class, default "silu"
    final_activation : str or nn.Module class, optional
        E.g. ``"tanh"`` for images in ``[-1, 1]``.

    Shapes
    ------
    ``forward(z)``: ``z`` ``(N, latent_dim)`` floating -> ``(N, C, H, W)``.

    Raises
    ------
    ValueError
        On bad constructor arguments, or ``z`` not ``(N, latent_dim)``.
    TypeError
        If ``z`` is not a floating tensor.

    References
    ----------
    Masci et al. 2011 (convolutional autoencoders); Dumoulin & Visin 2016, "A guide to convolution
    arithmetic for deep learning", Sec. 4 (transposed convolution).
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), latent_dim: int = 8,
                 channels: Sequence[int] = (16,), activation: str | type[nn.Module] = "silu",
                 final_activation: str | type[nn.Module] | None = None):
        super().__init__()
        self.channels = _check_channels(channels)
        self.image_shape = _check_image_shape(image_shape, len(self.channels))
        self.latent_dim = check_int("latent_dim", latent_dim, minimum=1)
        c, h, w = self.image_shape
        s = 2 ** len(self.channels)
        self.feature_shape = (self.channels[-1], h // s, w // s)
        self.input = nn.Sequential(nn.Linear(self.latent_dim, self.channels[-1] * (h // s) * (w // s)),
                                   make_activation(activation), nn.Unflatten(1, self.feature_shape))
        layers: list[nn.Module] = []
        outs = (c, *self.channels[:-1])                       # channels after each up-convolution
        for i in reversed(range(len(self.channels))):
            ch = self.channels[i]
            layers += [nn.Conv2d(ch, ch, 3, padding=1), make_activation(activation),
                       nn.ConvTranspose2d(ch, outs[i], 4, stride=2, padding=1)]             # H -> 2H
            if i > 0:
                layers.append(make_activation(activation))
        if final_activation is not None:
            layers.append(make_activation(final_activation, "final_activation"))
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _check_batch("z", z, self.latent_dim, "ConvDecoder")
        return self.features(self.input(z))


__all__ += ["ConvEncoder", "ConvDecoder"]
