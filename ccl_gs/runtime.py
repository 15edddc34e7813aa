"""Device and thread policy shared by every stage that runs PyTorch."""

from __future__ import annotations

import os

import torch

CPU_TORCH_THREADS = 1
"""PyTorch intra-op threads on CPU. The rasterizer's numba kernels already use
every core, and stages run beside each other on small machines; PyTorch's
OpenMP threads spinning against other busy threads made training 5-30x
slower on 2 cores (a codebook step: 16 ms at 1 thread, 150 ms - 2.4 s at 2
threads on a busy machine), so PyTorch runs single-threaded on CPU
(``CCL_GS_TORCH_THREADS`` overrides)."""


def device_for_run(requested: str | torch.device | None = None) -> torch.device:
    """``requested``, or CUDA when available, else CPU; on CPU PyTorch is set to :data:`CPU_TORCH_THREADS` threads."""
    dev = torch.device(requested) if requested is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    if dev.type == "cpu":
        torch.set_num_threads(int(os.environ.get("CCL_GS_TORCH_THREADS", CPU_TORCH_THREADS)))
    return dev
