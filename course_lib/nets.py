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
    (class conditioning as in the DDPM U-Net of the lecture notes, seed 000).

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
