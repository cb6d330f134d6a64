"""Image grids from fixed noise after each epoch, the first real batch, and an overview."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import make_grid, save_image
from typing_extensions import override

from .._validation import check_int
from ..sampling import generate, save_grid
from ..seeding import grid_seed
from .base import Callback
from .ema import EMA

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..trainer import Trainer

__all__ = ["MAX_OVERVIEW_FRAMES", "SampleGrid"]

MAX_OVERVIEW_FRAMES = 12


def _read_png(path: Path) -> Tensor:
    with Image.open(path) as image:
        return pil_to_tensor(image.convert("RGB")).float() / 255.0


class SampleGrid(Callback):
    """Saves ``generated_epoch_{epoch:03d}.png`` after each epoch (epochs count from 1),
    ``real_samples.png`` from the first real batch, and at the end
    ``generated_step_{step:07d}.png`` if training stopped mid-epoch, then
    ``overview.png`` stacking all those grids (oldest on top).

    The fixed noise is drawn once from the trainer's seed and kept in checkpoints,
    so a resumed run keeps drawing the same latents.

    For a conditional model the grid has one row per class, row ``k`` showing
    class ``k``; each column keeps one latent across the rows, so a column shows
    one "style" in every class.

    Args:
        out_dir: Folder for the images.
        num_samples: Images per grid (the recipe: 50); a conditional model's grid
            has ``num_classes * nrow`` instead.
        nrow: Images per row (the recipe: 10).
        every_n_epochs: Epochs between grids (``None``: not by epochs).
        every_n_steps: Also save ``generated_step_{step:07d}.png`` every this many steps.
        save_real: Save the first real batch.
        overview: Build the overview image at the end (at most
            ``MAX_OVERVIEW_FRAMES`` grids, evenly spaced, the last included).
        use_ema: Sample from the EMA generator: ``"auto"`` when an
            [`EMA`][ganlib.callbacks.EMA] callback is present.
        eval_mode: Sample with BatchNorm in eval mode (running statistics,
            recomputed first for an EMA generator); the recipe samples in train
            mode (the statistics of the batch of fixed latents).
    """

    main_process_only = True  # writes files or prints

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        num_samples: int = 50,
        nrow: int = 10,
        every_n_epochs: int | None = 1,
        every_n_steps: int | None = None,
        save_real: bool = True,
        overview: bool = True,
        use_ema: bool | Literal["auto"] = "auto",
        eval_mode: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.num_samples = check_int("num_samples", num_samples, 1)
        self.nrow = check_int("nrow", nrow, 1)
        self.every_n_epochs = (
            None if every_n_epochs is None else check_int("every_n_epochs", every_n_epochs, 1)
        )
        self.every_n_steps = (
            None if every_n_steps is None else check_int("every_n_steps", every_n_steps, 1)
        )
        self.save_real = save_real
        self.overview = overview
        self.use_ema = use_ema
        self.eval_mode = eval_mode
        self.noise: Tensor | None = None
        self.labels: Tensor | None = None  # row classes, for a conditional model
        self._real_saved = False

    @property
    @override
    def state_key(self) -> str:
        return f"SampleGrid[{self.out_dir}]"

    @override
    def output_folders(self) -> list[Path]:
        return [self.out_dir]

    @override
    def earlier_outputs(self) -> list[Path]:
        names = ("real_samples.png", "overview.png")
        return sorted(self.out_dir.glob("generated_*.png")) + [
            self.out_dir / n for n in names if (self.out_dir / n).exists()
        ]

    def _sampler(self, trainer: Trainer) -> nn.Module:
        ema = trainer.callback(EMA)
        if self.use_ema is True and ema is None:
            raise ValueError("SampleGrid(use_ema=True) needs an EMA callback in the trainer")
        if self.use_ema and isinstance(ema, EMA) and ema.module is not None:
            # The average's copied BatchNorm statistics do not fit its weights.
            return ema.recompute_batchnorm(trainer) if self.eval_mode else ema.module
        return trainer.generator

    def sample(self, trainer: Trainer) -> Tensor:
        """The generator's images for the fixed noise."""
        assert self.noise is not None
        module = self._sampler(trainer)
        labels = None if self.labels is None else self.labels.to(trainer.device)
        return generate(module, self.noise.to(trainer.device), self.eval_mode, labels)

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        if self.noise is not None:
            return
        rng = torch.Generator(device=trainer.device).manual_seed(grid_seed(trainer.seed))
        if trainer.num_classes is None:
            self.noise = trainer.gan.sample_noise(self.num_samples, trainer.device, rng).cpu()
            return
        # One row per class; column j keeps latent j in every row.
        row = trainer.gan.sample_noise(self.nrow, trainer.device, rng).cpu()
        self.noise = row.repeat(trainer.num_classes, *[1] * (row.dim() - 1))
        self.labels = torch.arange(trainer.num_classes).repeat_interleave(self.nrow)

    @override
    def on_batch_start(self, trainer: Trainer, images: Any) -> None:
        if self.save_real and not self._real_saved:
            save_grid(
                images[: self.num_samples].float().cpu(),
                self.out_dir / "real_samples.png",
                self.nrow,
            )
            self._real_saved = True

    def grid_path(self, epoch: int) -> Path:
        return self.out_dir / f"generated_epoch_{epoch:03d}.png"

    def step_path(self, step: int) -> Path:
        return self.out_dir / f"generated_step_{step:07d}.png"

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        if self.every_n_steps and trainer.state.step % self.every_n_steps == 0:
            save_grid(self.sample(trainer).cpu(), self.step_path(trainer.state.step), self.nrow)

    @override
    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.every_n_epochs and trainer.state.epoch % self.every_n_epochs == 0:
            save_grid(self.sample(trainer).cpu(), self.grid_path(trainer.state.epoch), self.nrow)

    @override
    def on_fit_end(self, trainer: Trainer) -> None:
        path = self.step_path(trainer.state.step)
        if trainer.state.batch_in_epoch > 0 and not path.exists():  # show where it got to
            save_grid(self.sample(trainer).cpu(), path, self.nrow)
        if not self.overview:
            return
        grids = sorted(self.out_dir.glob("generated_*.png"))
        if len(grids) > MAX_OVERVIEW_FRAMES:  # evenly spaced, the last included
            picks = torch.linspace(0, len(grids) - 1, MAX_OVERVIEW_FRAMES).round().long()
            grids = [grids[int(i)] for i in picks.unique()]
        if grids:
            images = [_read_png(p) for p in grids]
            height = max(i.shape[1] for i in images)
            width = max(i.shape[2] for i in images)
            padded = [
                nn.functional.pad(i, (0, width - i.shape[2], 0, height - i.shape[1]), value=1.0)
                for i in images
            ]
            overview = make_grid(padded, nrow=1, padding=6, pad_value=0.5)
            save_image(overview, self.out_dir / "overview.png")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"noise": self.noise, "labels": self.labels, "real_saved": self._real_saved}

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.noise = state_dict["noise"]
        self.labels = state_dict.get("labels")  # (absent from older checkpoints)
        self._real_saved = bool(state_dict["real_saved"])
