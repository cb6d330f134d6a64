"""BatchNorm statistics for averaged (EMA) weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

__all__ = ["recompute_batchnorm_stats"]


@torch.no_grad()
def recompute_batchnorm_stats(
    module: nn.Module, inputs: Iterable[Tensor | tuple[Tensor, ...]]
) -> int:
    """Replace every BatchNorm's running mean and variance by their exact average
    over forward passes of ``inputs``, leaving the weights untouched.

    An EMA generator holds averaged weights but BatchNorm statistics copied from
    the live network, which do not match them; sampling it in eval mode needs
    statistics measured with the averaged weights themselves.

    Args:
        module: The network; its train/eval mode is restored afterwards.
        inputs: Batches to run (for a generator: latents), each a tensor or a
            tuple of the module's arguments (latents and labels).

    Returns:
        The number of batches run.

    Raises:
        ValueError: If ``inputs`` is empty (the statistics would be left reset).
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = module.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches
    module.train()
    count = 0
    try:
        for batch in inputs:
            module(*batch) if isinstance(batch, tuple) else module(batch)
            count += 1
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        module.train(was_training)
    if count == 0:
        raise ValueError("`inputs` is empty: no batches to measure BatchNorm statistics on")
    return count
