"""Where the model runs and in which precision."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from gpt.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def choose_device(requested: str = "auto") -> tuple[torch.device, str]:
    """The device to use and a short reason; an asked-for device that is missing is an error."""
    if requested not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} (got {requested!r})")
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), f"auto: CUDA is available ({torch.cuda.get_device_name(0)})"
        if _mps_available():
            return torch.device("mps"), "auto: Apple MPS is available, CUDA is not"
        return torch.device("cpu"), "auto: no CUDA or MPS device found"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for, but CUDA is not available on this machine")
    if requested == "mps" and not _mps_available():
        raise ConfigError("device mps was asked for, but Apple MPS is not available on this machine")
    return torch.device(requested), "asked for"


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` means bf16 autocast on a CUDA GPU that supports it, fp32 elsewhere.

    CPUs are left at fp32 unless bf16 is asked for: on CPUs without native bf16
    matrix units autocast is far slower than fp32 (measured ~100x on an AMD EPYC).
    """
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16" and device.type == "mps":
        raise ConfigError("precision bf16 is supported on cpu and cuda only")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def check_same_device(model: nn.Module, *tensors: torch.Tensor) -> None:
    """Fail early and clearly when a batch and the model live on different devices."""
    model_device = next(model.parameters()).device
    for tensor in tensors:
        if tensor.device != model_device:
            raise RuntimeError(f"device mismatch: model on {model_device}, batch on {tensor.device}")
