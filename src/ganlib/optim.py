"""The networks' optimizers: the recipe's Adam by default, or the user's, checked."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Adam, Optimizer

__all__ = [
    "RECIPE_ADAM",
    "OptimizerArg",
    "Updater",
    "build_optimizer",
    "check_same_kind",
    "hyperparameters",
    "keep_hyperparameters",
    "no_hook",
]

# An optimizer, a function of parameters returning one, Adam's settings (a mapping such as
# {"lr": 1e-4}, over the recipe's), or None for the recipe's Adam.
OptimizerArg = Optimizer | Callable[[Iterable[nn.Parameter]], Optimizer] | Mapping[str, Any] | None
RECIPE_ADAM: dict[str, Any] = {"lr": 2e-4, "betas": (0.5, 0.999)}
_NETWORKS = {"g_optimizer": "generator", "d_optimizer": "discriminator"}


def build_optimizer(
    arg: OptimizerArg, module: nn.Module, name: str, fused: bool = False
) -> Optimizer:
    """The optimizer of ``module`` from the Trainer argument ``name``.

    Args:
        arg: An optimizer over ``module``'s parameters, a function ``params ->
            Optimizer``, a mapping of Adam's keyword arguments over the recipe's (``{"lr":
            1e-4}``), or ``None`` for Adam(lr 2e-4, betas (0.5, 0.999)). The Trainer
            chooses the implementation (``fused``) of the last two.
        module: The network it optimises.
        name: The argument's name, for messages (``"g_optimizer"`` / ``"d_optimizer"``).
        fused: Use Adam's fused kernel for the Adam this builds (CUDA and CPU).

    Raises:
        ValueError: An optimizer holding parameters of another module.
        TypeError: Anything else than the four forms, or a setting Adam does not take.
    """
    if arg is None or isinstance(arg, Mapping):  # Adam: the recipe's, or with these settings
        settings = {**RECIPE_ADAM, "fused": fused or None, **(arg or {})}
        try:
            return Adam(module.parameters(), **settings)
        except TypeError as error:
            raise TypeError(f"`{name}`: Adam settings {dict(arg or {})} refused: {error}") from None
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
        f"`{name}` must be a torch Optimizer, a function of parameters returning one, a mapping "
        f"of Adam settings, or None; "
        f"got {type(arg).__name__}"
    )


def hyperparameters(optimizer: Optimizer) -> list[dict[str, Any]]:
    """Each parameter group's settings (lr, betas, ...), without the parameters."""
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


def check_same_kind(optimizer: Optimizer, saved: dict[str, Any], name: str) -> None:
    """Refuse a saved optimizer state of another kind or shape before it is loaded.

    Raises:
        ValueError: If the saved groups differ in number or lack settings this optimizer
            has (an SGD state for an Adam, say).
    """
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise ValueError(f"`{name}`'s saved state has another number of parameter groups")
    for index, (group, theirs) in enumerate(zip(optimizer.param_groups, groups, strict=True)):
        missing = sorted(set(group) - set(theirs) - {"params"}) if isinstance(theirs, dict) else []
        if missing or not isinstance(theirs, dict):
            raise ValueError(
                f"`{name}` is a {type(optimizer).__name__}, but the checkpoint's group {index} "
                f"lacks its settings {missing}: it was saved by another kind of optimizer"
            )


# Settings that choose an implementation, not the maths: put back silently on resume (a
# fast run's fused Adam resumes in a plain Trainer's for-loop one without a notice).
_IMPLEMENTATION = frozenset({"fused", "foreach", "capturable", "differentiable"})


def keep_hyperparameters(
    optimizer: Optimizer, wanted: list[dict[str, Any]], name: str
) -> list[str]:
    """Put back the settings the user gave (``wanted``) after a checkpoint's optimizer
    state replaced them, and say what changed (implementation switches such as ``fused``
    are put back without a word).

    Returns:
        One line per changed setting, e.g. ``"g_optimizer lr: 0.0002 -> 0.0001"``.
    """
    changes = []
    for group, mine in zip(optimizer.param_groups, wanted, strict=True):
        for key, value in mine.items():
            if key in ("initial_lr",) or group[key] == value:
                continue
            if key not in _IMPLEMENTATION:
                changes.append(f"{name} {key}: {group[key]} -> {value}")
            group[key] = value
    return changes


def no_hook(network: str, optimizer: Optimizer) -> None:
    """The default hook before an optimizer step: nothing."""


@dataclass
class Updater:
    """How a step's losses reach the weights: backward (scaled where the precision needs
    it), a hook on the true gradients, the optimizer step. Every task's step updates its
    networks through one of these, so precision and the callbacks' hook work alike.

    Attributes:
        scaler: The grad scaler of the run's precision (disabled outside fp16).
        before_optimizer_step: Called as ``(network, optimizer)`` after the backward
            (gradients unscaled), before the optimizer steps.
    """

    scaler: torch.amp.GradScaler
    before_optimizer_step: Callable[[str, Optimizer], None] = no_hook

    def step(self, loss: Tensor, optimizer: Optimizer, network: str) -> None:
        """Zero ``optimizer``'s gradients, backpropagate ``loss``, run the hook, step."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.scaler.is_enabled():
            self.scaler.unscale_(optimizer)  # hooks see true gradients
        self.before_optimizer_step(network, optimizer)
        self.scaler.step(optimizer)
