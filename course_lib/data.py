"""The 8x8 digits data set (bundled with scikit-learn, no download) and minibatch helpers.

Images are returned batch first as ``(N, 1, 8, 8)`` and scaled to ``[-1, 1]`` (DESIGN.md §4).
Used by the autoencoder, VAE, GAN and DDPM notebooks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from ._checks import check_int, check_tensor
from ._primitives import randperm

__all__ = ["load_digits", "train_test_split_digits", "iterate_minibatches", "DIGITS_SHAPE"]

#: Shape of one digit image, ``(C, H, W)``.
DIGITS_SHAPE = (1, 8, 8)

_SPLIT_SEED = 0  # the default split is the same for everyone


def load_digits(device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the 1797 scikit-learn 8x8 digits as images in ``[-1, 1]`` and their labels.

    The raw pixel values are integers ``0..16`` (UCI "Optical Recognition of Handwritten Digits",
    Alpaydin & Kaynak 1998); they are mapped to ``[-1, 1]`` by ``x = v / 8 - 1``.

    Parameters
    ----------
    device : torch.device or str, optional
        Where the tensors live (default CPU).
    dtype : torch.dtype, default torch.float32
        Floating dtype of the images.

    Returns
    -------
    images : torch.Tensor, shape (1797, 1, 8, 8)
        Pixel intensities in ``[-1, 1]`` (``-1`` = background, ``1`` = full ink).
    labels : torch.Tensor, shape (1797,), dtype long
        Digit classes ``0..9``.

    Raises
    ------
    TypeError
        If ``dtype`` is not a floating dtype.

    References
    ----------
    scikit-learn ``sklearn.datasets.load_digits`` (bundled copy of the UCI test set).
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    from sklearn.datasets import load_digits as _sk_load_digits

    raw = _sk_load_digits()
    values = torch.as_tensor(raw.images, dtype=torch.float64)  # (1797, 8, 8), integers 0..16
    images = (values / 8.0 - 1.0).unsqueeze(1)                 # x = v / 8 - 1, (1797, 1, 8, 8)
    labels = torch.as_tensor(raw.target, dtype=torch.long)
    return images.to(device=device, dtype=dtype), labels.to(device=device)


def train_test_split_digits(test_fraction: float = 0.2, generator: torch.Generator | None = None,
                            device: torch.device | str | None = None,
                            dtype: torch.dtype = torch.float32,
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split the digits into a training and a test set by a random permutation.

    Parameters
    ----------
    test_fraction : float, default 0.2
        Fraction of the 1797 images put in the test set, in ``(0, 1)``; the test set has
        ``round(1797 * test_fraction)`` images.
    generator : torch.Generator, optional
        CPU generator for the permutation. Default: a generator seeded with 0, so the split is the
        same on every machine and in every notebook.
    device, dtype :
        As in :func:`load_digits`.

    Returns
    -------
    x_train : torch.Tensor, shape (N_train, 1, 8, 8)
    y_train : torch.Tensor, shape (N_train,), long
    x_test : torch.Tensor, shape (N_test, 1, 8, 8)
    y_test : torch.Tensor, shape (N_test,), long

    Raises
    ------
    ValueError
        If ``test_fraction`` is not in ``(0, 1)`` or leaves an empty set.
    """
    try:
        frac = float(test_fraction)
    except (TypeError, ValueError):
        raise TypeError(f"test_fraction: expected a float in (0, 1), got {test_fraction!r}") from None
    if not 0.0 < frac < 1.0:
        raise ValueError(f"test_fraction: expected a float in (0, 1), got {test_fraction!r}")
    images, labels = load_digits(dtype=dtype)
    n = images.shape[0]
    n_test = int(round(n * frac))
    if n_test == 0 or n_test == n:
        raise ValueError(f"test_fraction: {test_fraction!r} leaves an empty training or test set "
                         f"out of {n} images")
    if generator is None:
        generator = torch.Generator().manual_seed(_SPLIT_SEED)
    perm = randperm(n, generator, "cpu")
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    return (images[train_idx].to(device), labels[train_idx].to(device),
            images[test_idx].to(device), labels[test_idx].to(device))


def iterate_minibatches(tensors: torch.Tensor | Sequence[torch.Tensor], batch_size: int,
                        generator: torch.Generator | None = None, shuffle: bool = True,
                        drop_last: bool = False) -> Iterator:
    """Yield minibatches (one pass over the data) from tensors that share their first dimension.

    Parameters
    ----------
    tensors : torch.Tensor or sequence of torch.Tensor
        A tensor ``(N, ...)`` or several with the same ``N`` (e.g. ``(images, labels)``).
    batch_size : int
        Rows per batch (>= 1); the last batch may be smaller unless ``drop_last``.
    generator : torch.Generator, optional
        Drives the shuffling permutation (drawn on the generator's device).
    shuffle : bool, default True
        Visit the rows in a random order; otherwise in order.
    drop_last : bool, default False
        Skip a final batch smaller than ``batch_size``.

    Yields
    ------
    torch.Tensor or tuple of torch.Tensor
        A tensor if ``tensors`` was a tensor, else a tuple in the same order.

    Raises
    ------
    ValueError
        If the tensors' first dimensions differ or ``batch_size < 1``.
    """
    single, items = _as_tensor_tuple("tensors", tensors)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    n = items[0].shape[0]
    if shuffle:
        order = randperm(n, generator, "cpu")
    else:
        order = torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        batch = tuple(t[idx.to(t.device)] for t in items)
        yield batch[0] if single else batch


def _as_tensor_tuple(name: str, data) -> tuple[bool, tuple[torch.Tensor, ...]]:
    """Normalise a tensor or a sequence of tensors with a common first dimension."""
    if isinstance(data, torch.Tensor):
        check_tensor(name, data)
        if data.dim() == 0:
            raise ValueError(f"{name}: expected a tensor with a batch dimension, got a 0-D tensor")
        return True, (data,)
    if not isinstance(data, (tuple, list)) or len(data) == 0:
        raise TypeError(f"{name}: expected a tensor or a non-empty tuple/list of tensors, "
                        f"got {type(data).__name__}")
    for i, t in enumerate(data):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{i}]: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() == 0:
            raise ValueError(f"{name}[{i}]: expected a tensor with a batch dimension, got a 0-D tensor")
    sizes = [t.shape[0] for t in data]
    if len(set(sizes)) != 1:
        raise ValueError(f"{name}: expected tensors with the same first dimension, got sizes {sizes}")
    if sizes[0] == 0:
        raise ValueError(f"{name}: expected at least one row, got 0")
    return False, tuple(data)
