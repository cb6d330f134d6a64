"""The networks' optimizers: the recipe's Adam by default, or the user's, checked."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn
from torch.optim import Adam, Optimizer

__all__ = ["OptimizerArg", "build_optimizer"]

# An optimizer, a function of parameters returning one, or None for the recipe's Adam.
OptimizerArg = Optimizer | Callable[[Iterable[nn.Parameter]], Optimizer] | None
_NETWORKS = {"g_optimizer": "generator", "d_optimizer": "discriminator"}


def build_optimizer(
    arg: OptimizerArg, module: nn.Module, name: str, fused: bool = False
) -> Optimizer:
    """The optimizer of ``module`` from the Trainer argument ``name``.

    Args:
        arg: An optimizer over ``module``'s parameters, a function ``params ->
            Optimizer``, or ``None`` for Adam(lr 2e-4, betas (0.5, 0.999)).
        module: The network it optimises.
        name: The argument's name, for messages (``"g_optimizer"`` / ``"d_optimizer"``).
        fused: Use Adam's fused kernel for the default (CUDA).

    Raises:
        ValueError: An optimizer holding parameters of another module.
        TypeError: Anything else than the three forms.
    """
    if arg is None:  # the recipe's Adam
        return Adam(module.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=fused or None)
    if isinstance(arg, Optimizer):
        owned = {id(p) for p in module.parameters()}
        held = [p for group in arg.param_groups for p in group["params"]]
        if not held or any(id(p) not in owned for p in held):
            raise ValueError(
                f"`{name}` must optimise the {_NETWORKS.get(name, 'network')}'s parameters only; "
                f"it holds {sum(id(p) not in owned for p in held)} parameter(s) of another module"
            )
        return arg
    if callable(arg):
        return arg(module.parameters())
    raise TypeError(
        f"`{name}` must be a torch Optimizer, a function of parameters returning one, or None; "
        f"got {type(arg).__name__}"
    )
