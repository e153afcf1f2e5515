"""Optimizer wrappers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from toolkit.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Mixed precision through ``torch.autocast`` on any device, CPU included.

    mmengine's ``AmpOptimWrapper`` asserts CUDA, but bf16 autocast is about 2x faster than fp32
    for ViT forward passes on CPUs with AVX512-BF16. bf16 has fp32's exponent range, so no
    gradient scaler is needed; fp16 should use ``AmpOptimWrapper`` (CUDA) instead.
    """

    def __init__(self, *args, dtype: str = "bfloat16", device_type: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")

    @contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.dtype):
            yield
