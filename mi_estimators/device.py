"""Device choice shared by ``estimate()``, ``validate`` and the trainers."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "with_index"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None: CUDA when present, else the CPU; anything else as ``torch.device``.

    Raises ``ValueError`` for a name torch does not know, for CUDA where none is available, and for
    a CUDA index beyond the devices present (``cuda:1`` on a machine with one GPU).

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: CUDA is not available here; use 'cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA device(s), "
                         f"cuda:0 to cuda:{count - 1}")
    return dev


def with_index(device: torch.device) -> torch.device:
    """``device`` with its index: ``cuda`` becomes the current CUDA device (``cuda:0`` unless
    :func:`torch.cuda.set_device` chose another), which is where tensors sent to ``cuda`` go; other
    devices are returned as they are.

    >>> with_index(torch.device("cpu"))
    device(type='cpu')
    """
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device
