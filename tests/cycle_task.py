"""A small CycleGAN-shaped task for the tests of the task seam: two generators, two
discriminators, LSGAN + cycle + identity losses, and a pool of earlier fakes per D (task
state drawn from the run's stream), trained on ``(images_a, images_b)`` batches.

Kept tiny (1x1 and 3x3 convolutions) so it trains in milliseconds; it exercises what a
translation task needs from the Trainer, not translation quality.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from ganlib.batching import Batch, BatchSource
from ganlib.sampling import preserved_state
from ganlib.tasks import GridInputs, Task, TaskContext

__all__ = ["TinyCycleTask", "domain_pair"]


def _generator(channels: int, width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, channels, 1),
        nn.Tanh(),
    )


def _discriminator(channels: int, width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 1, 3, padding=1),  # (B, 1, H/2, W/2): a patch of scores
    )


def domain_pair(n: int = 24, size: int = 8, seed: int = 1) -> tuple[Tensor, Tensor]:
    """Two synthetic domains in [-1, 1]: dark noise and its bright, flipped counterpart."""
    rng = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 1, size, size, generator=rng) - 1.0
    b = torch.rand(n, 1, size, size, generator=rng).flip(-1)
    return a, b


class TinyCycleTask(Task):
    """G_ab, G_ba, D_a, D_b, trained as CycleGAN trains them (one step: both generators
    against both discriminators, then each D on real and pooled fakes)."""

    kind: ClassVar[str] = "tiny-cycle"
    image_network: ClassVar[str | None] = "g_ab"

    def __init__(self, channels: int = 1, width: int = 4, pool_size: int = 4) -> None:
        torch.manual_seed(0)
        self.channels, self.width, self.pool_size = channels, width, pool_size
        self.networks = {
            "g_ab": _generator(channels, width),
            "g_ba": _generator(channels, width),
            "d_a": _discriminator(channels, width),
            "d_b": _discriminator(channels, width),
        }
        self.pools: dict[str, Tensor | None] = {"a": None, "b": None}

    def setup(self, context: TaskContext) -> None:
        super().setup(context)
        n = self.networks
        self.g_optimizer = self.build_optimizer(None, nn.ModuleList([n["g_ab"], n["g_ba"]]), "g")
        self.d_optimizer = self.build_optimizer(None, nn.ModuleList([n["d_a"], n["d_b"]]), "d")
        self.calls = {name: self.forward_of(net) for name, net in n.items()}

    @property
    def optimizers(self) -> dict[str, Optimizer]:
        return {"g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}

    @property
    def config(self) -> dict[str, Any]:
        return {"channels": self.channels, "width": self.width, "pool_size": self.pool_size}

    def check_data(self, source: BatchSource) -> None:
        super().check_data(source)
        if source.labels is None or source.labels.shape != source.images.shape:  # type: ignore[union-attr]
            raise ValueError("`data` must be (images_a, images_b) of one shape")

    def _pooled(self, domain: str, fakes: Tensor) -> Tensor:
        """Half the time an earlier fake in place of each new one (CycleGAN's history)."""
        fakes = fakes.detach()
        pool = self.pools[domain]
        if pool is None or len(pool) < self.pool_size:
            self.pools[domain] = fakes.clone() if pool is None else torch.cat([pool, fakes])
            self.pools[domain] = self.pools[domain][-self.pool_size :]  # type: ignore[index]
            return fakes
        rng = self.context.rng
        swap = torch.rand(len(fakes), generator=rng, device=rng.device) < 0.5
        slots = torch.randint(len(pool), (len(fakes),), generator=rng, device=rng.device)
        out = torch.where(swap[:, None, None, None], pool[slots], fakes)
        pool[slots[swap]] = fakes[swap]
        return out

    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        real_a, real_b = batch
        assert real_b is not None
        call, n, runtime = self.calls, self.networks, self.runtime
        mse = lambda x, target: ((x - target) ** 2).mean()  # noqa: E731  (LSGAN)
        with runtime.autocast():
            fake_b, fake_a = call["g_ab"](real_a), call["g_ba"](real_b)
            cycle = (call["g_ba"](fake_b) - real_a).abs().mean()
            cycle = cycle + (call["g_ab"](fake_a) - real_b).abs().mean()
            identity = (call["g_ab"](real_b) - real_b).abs().mean()
            identity = identity + (call["g_ba"](real_a) - real_a).abs().mean()
            for d in ("d_a", "d_b"):
                n[d].requires_grad_(False)
            adversarial = mse(n["d_b"](fake_b), 1.0) + mse(n["d_a"](fake_a), 1.0)
            loss_g = adversarial + 10.0 * cycle + 5.0 * identity
        try:
            self.optimizer_step(loss_g, self.g_optimizer, "generators")
        finally:
            for d in ("d_a", "d_b"):
                n[d].requires_grad_(True)
        with runtime.autocast():
            old_a, old_b = self._pooled("a", fake_a), self._pooled("b", fake_b)
            loss_d = 0.5 * (mse(call["d_a"](real_a), 1.0) + mse(call["d_a"](old_a), 0.0))
            loss_d = loss_d + 0.5 * (mse(call["d_b"](real_b), 1.0) + mse(call["d_b"](old_b), 0.0))
        self.optimizer_step(loss_d, self.d_optimizer, "discriminators")
        values = torch.stack([loss_g.detach(), loss_d.detach(), cycle.detach()]).float()
        numbers = self.context.reduce(values).tolist()
        return dict(zip(("loss_g", "loss_d", "cycle"), numbers, strict=True))

    def metric_groups(self) -> dict[str, tuple[str, ...]]:
        return {"losses": ("loss_g", "loss_d"), "cycle": ("cycle",)}

    def grid_inputs(
        self, count: int, nrow: int, rng: torch.Generator, batch: Batch | None
    ) -> tuple[GridInputs, int] | None:
        if batch is None:
            return None  # the grid shows inputs from the data: wait for the first batch
        shown = batch[0][: min(count, nrow)].detach().float().cpu()
        return {"a": shown}, len(shown)

    @torch.no_grad()
    def grid(
        self,
        inputs: Mapping[str, Tensor | None],
        networks: Mapping[str, nn.Module],
        eval_mode: bool,
    ) -> Tensor:
        a = inputs["a"]
        assert a is not None
        g_ab, g_ba = networks["g_ab"], networks["g_ba"]
        with preserved_state(g_ab), preserved_state(g_ba):
            g_ab.train(not eval_mode)
            g_ba.train(not eval_mode)
            a = a.to(next(g_ab.parameters()).device)
            fake_b = g_ab(a)
            return torch.cat([a, fake_b, g_ba(fake_b)]).float()  # rows: a, a->b, a->b->a

    def extra_state(self) -> dict[str, Any]:
        return {"pools": dict(self.pools)}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.pools = dict(state["pools"])
