"""One training loop for every notebook: minibatches, device handling, seeding, progress, history.

``fit(model, loss_fn, data, num_steps)`` draws minibatches from ``data`` with a
``torch.Generator``, calls ``loss_fn(model, batch, generator=generator)``, and takes an optimizer
step. The loss function owns the mathematics (ELBO, L_simple, score matching, ...); the loop only
owns the bookkeeping, so every notebook trains the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._checks import check_int, check_positive
from ._primitives import progress as progress_bar
from ._primitives import randperm
from .data import _as_tensor_tuple

__all__ = ["History", "fit", "minibatch_indices"]


@dataclass
class History:
    """What :func:`fit` records.

    Attributes
    ----------
    losses : list of float
        The training loss at every step (``len(losses) == num_steps``).
    logs : list of (int, dict)
        ``(step, values)`` for every dict the ``callback`` returned.
    seconds : float
        Wall-clock duration of the loop.
    """

    losses: list[float] = field(default_factory=list)
    logs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.losses)

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 10% of the steps (at least one): less noisy than the last step."""
        if not self.losses:
            raise ValueError("history: no losses recorded")
        k = max(1, len(self.losses) // 10)
        return sum(self.losses[-k:]) / k

    def log_values(self, key: str) -> tuple[list[int], list[Any]]:
        """Steps and values of one key of the callback's logs."""
        pairs = [(s, v[key]) for s, v in self.logs if key in v]
        return [s for s, _ in pairs], [v for _, v in pairs]

    def plot(self, ax=None, smooth: int | None = None, logy: bool = False, label: str | None = None,
             title: str = "training loss"):
        """Plot the loss per step (faint) and its moving average over ``smooth`` steps.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Draw into this axes; by default a new figure is made.
        smooth : int, optional
            Moving-average window; default ``max(1, len(losses) // 50)``.
        logy : bool, default False
            Logarithmic loss axis (needs positive losses).
        label, title : str

        Returns
        -------
        matplotlib.figure.Figure
        """
        from course_lib.plotting import loss_curve

        w = smooth if smooth is not None else max(1, len(self.losses) // 50)
        w = check_int("smooth", w, minimum=1)
        if label is None and w > 1:
            label = f"moving average ({w} steps)"
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(5, 3))
        loss_curve({label: self.losses}, ax=ax, xlabel="step", ylabel="loss", title=title,
                   smooth=w, log_y=logy, show_raw=w > 1)
        ax.figure.tight_layout()
        return ax.figure


def minibatch_indices(n: int, batch_size: int, num_steps: int,
                      generator: torch.Generator | None = None):
    """Yield ``num_steps`` index tensors of length ``min(batch_size, n)``, epoch by epoch.

    Each epoch is a fresh random permutation of ``range(n)`` (drawn on the generator's device, or
    the CPU) cut into consecutive batches; a final incomplete batch is dropped, so every batch has
    the same size and each row is seen at most once per epoch.
    """
    b = min(batch_size, n)
    per_epoch = n // b
    step = 0
    while step < num_steps:
        perm = randperm(n, generator, "cpu")
        for j in range(per_epoch):
            if step >= num_steps:
                return
            yield perm[j * b:(j + 1) * b]
            step += 1


def fit(model: nn.Module, loss_fn: Callable[..., torch.Tensor],
        data: torch.Tensor | Sequence[torch.Tensor], num_steps: int, batch_size: int = 128,
        lr: float = 1e-3, optimizer: torch.optim.Optimizer | None = None,
        device: torch.device | str | None = None, generator: torch.Generator | None = None,
        progress: bool = True, log_every: int | None = None,
        callback: Callable[[int, float, nn.Module], dict | None] | None = None,
        grad_clip: float | None = None, desc: str = "training") -> History:
    """Train ``model`` by minimizing ``loss_fn`` on minibatches of ``data`` for ``num_steps`` steps.

    Each step: take the next minibatch (random permutations, epoch by epoch, see
    :func:`minibatch_indices`), compute ``loss = loss_fn(model, batch, generator=generator)``,
    back-propagate, optionally clip the gradient norm, and take an optimizer step.

    Parameters
    ----------
    model : nn.Module
        Moved to ``device`` in place; left in the training/eval mode it had on entry.
    loss_fn : callable
        ``loss_fn(model, batch, generator=None) -> scalar tensor``. ``batch`` is a tensor
        ``(B, ...)`` if ``data`` is a tensor, else a tuple of tensors in ``data``'s order. Random
        draws inside it should use ``generator`` (drawn on its device, then moved).
    data : torch.Tensor or sequence of torch.Tensor
        Training set, ``(N, ...)`` or several tensors with the same ``N`` (e.g. images and
        labels). Moved to ``device`` once.
    num_steps : int
        Number of optimizer steps (>= 1).
    batch_size : int, default 128
        Minibatch size; ``min(batch_size, N)`` is used (full batch when ``N <= batch_size``).
    lr : float, default 1e-3
        Adam learning rate, used only when ``optimizer`` is None.
    optimizer : torch.optim.Optimizer, optional
        Default ``torch.optim.Adam(model.parameters(), lr=lr)`` (Kingma & Ba 2015).
    device : torch.device or str, optional
        Default :func:`course_lib.get_device`.
    generator : torch.Generator, optional
        Drives the minibatch order and is passed to ``loss_fn``. With a seeded CPU generator the
        run is deterministic on the CPU. ``None`` uses PyTorch's global generator.
    progress : bool, default True
        Show a ``tqdm.auto`` progress bar (a widget in Jupyter, text in a terminal).
    log_every : int, optional
        Every ``log_every`` steps the bar shows the mean loss since the last update and
        ``callback`` is called; default ``max(1, num_steps // 100)``.
    callback : callable, optional
        ``callback(step, loss, model)`` (``step`` 1-based, ``loss`` the running mean); a returned
        dict is stored in ``History.logs``.
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    desc : str
        Progress bar label.

    Returns
    -------
    History
        ``losses`` (one float per step), ``logs``, ``seconds``; ``History.plot()`` draws it.

    Raises
    ------
    ValueError
        If the loss at some step is not a finite scalar (the message names the step), or on
        invalid arguments.
    TypeError
        If ``model`` is not an ``nn.Module`` or ``loss_fn`` not callable.
    """
    from . import get_device

    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a callable loss_fn(model, batch, generator=None), "
                        f"got {type(loss_fn).__name__}")
    single, items = _as_tensor_tuple("data", data)
    num_steps = check_int("num_steps", num_steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    log_every = max(1, num_steps // 100) if log_every is None else check_int("log_every", log_every, 1)
    if grad_clip is not None:
        check_positive("grad_clip", grad_clip)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    device = get_device() if device is None else torch.device(device)

    model.to(device)
    items = tuple(t.to(device) for t in items)
    if optimizer is None:
        check_positive("lr", lr)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model: has no trainable parameters")
        optimizer = torch.optim.Adam(params, lr=lr)

    history = History()
    was_training = model.training
    model.train()
    start = time.perf_counter()
    bar = progress_bar(desc=desc, total=num_steps, leave=True) if progress else None
    window: list[float] = []
    try:
        for step, idx in enumerate(minibatch_indices(items[0].shape[0], batch_size, num_steps,
                                                     generator), start=1):
            idx = idx.to(device)
            batch = tuple(t[idx] for t in items)
            loss = loss_fn(model, batch[0] if single else batch, generator=generator)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise ValueError(f"loss_fn: expected a scalar tensor at step {step}, got {shape}")
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ValueError(f"loss_fn: the loss is not finite at step {step} (got {value}); "
                                 f"try a smaller lr or check the loss for log(0) / division by 0")
            optimizer.zero_grad(set_to_none=True)
            loss.reshape(()).backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            history.losses.append(value)
            window.append(value)
            if step % log_every == 0 or step == num_steps:
                running = sum(window) / len(window)
                window.clear()
                if bar is not None:
                    bar.set_postfix(loss=f"{running:.4g}", refresh=False)
                    bar.update(step - bar.n)
                if callback is not None:
                    out = callback(step, running, model)
                    if out is not None:
                        if not isinstance(out, dict):
                            raise TypeError(f"callback: expected a dict or None, got "
                                            f"{type(out).__name__} at step {step}")
                        history.logs.append((step, dict(out)))
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
        history.seconds = time.perf_counter() - start
    return history
