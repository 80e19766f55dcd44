"""Where the model runs and in which precision."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from gpt.config import DEVICES
from gpt.errors import ConfigError


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


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: the CPUs where bf16 matmuls beat fp32 (Linux reports them in /proc/cpuinfo)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` means bf16 autocast where the device runs it fast, fp32 elsewhere.

    Without native bf16 units a CPU emulates it: its matmuls ran ~80x slower than fp32 on an
    AVX2-only AMD EPYC (``benchmarks.train_speed``), so such CPUs stay at fp32 unless bf16 is asked for.
    """
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "bf16" and device.type == "mps":
        raise ConfigError("precision bf16 is supported on cpu and cuda only")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
