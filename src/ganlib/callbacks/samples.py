"""Image grids from fixed inputs after each epoch, the first real batch, and an overview.

What a grid shows is the task's to say ([`Task.grid`][ganlib.tasks.Task.grid]): a GAN
pair's generator on fixed latents (one row per class when conditional), a translation
task's inputs beside their outputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from PIL import Image
from torch import Tensor, nn
from typing_extensions import override

from .._validation import check_int
from ..sampling import MAX_GRID_PIXELS, check_grid_pixels, save_grid
from ..seeding import grid_seed
from .base import Callback
from .ema import EMA

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..trainer import Trainer

__all__ = ["MAX_GRID_PIXELS", "MAX_OVERVIEW_FRAMES", "SampleGrid"]

MAX_OVERVIEW_FRAMES = 12
# SampleGrid's checkpoint entries that are not grid inputs.
_STATE_ONLY = ("real_saved", "images_per_row")


def _read_png(path: Path) -> Tensor:
    from torchvision.transforms.functional import pil_to_tensor  # (torchvision: only when used)

    with Image.open(path) as image:
        return pil_to_tensor(image.convert("RGB")).float() / 255.0


class SampleGrid(Callback):
    """Saves ``generated_epoch_{epoch:03d}.png`` after each epoch (epochs count from 1),
    ``real_samples.png`` from the first real batch, and at the end
    ``generated_step_{step:07d}.png`` if the last step has no grid yet (training stopped
    mid-epoch, or grids by steps missed it), then ``overview.png`` stacking those grids
    (oldest on top).

    The fixed inputs (latents) are drawn once from the trainer's seed and kept in
    checkpoints, so a resumed run keeps drawing the same grid.

    For a conditional model the grid has one row per class, row ``k`` showing
    class ``k``; each column keeps one latent across the rows, so a column shows
    one "style" in every class.

    A grid's images hold at most `MAX_GRID_PIXELS` pixels (checked when training starts,
    for a GAN pair); the generator draws them in batches
    ([`generate`][ganlib.sampling.generate]).

    Args:
        out_dir: Folder for the images.
        num_samples: Images per grid (the recipe: 50); a conditional model's grid
            has ``num_classes * nrow`` instead.
        nrow: Images per row (the recipe: 10).
        every_n_epochs: Epochs between grids (``None``: not by epochs).
        every_n_steps: Also save ``generated_step_{step:07d}.png`` every this many steps.
        save_real: Save the first real batch.
        overview: Build the overview image at the end (at most
            ``MAX_OVERVIEW_FRAMES`` grids, fewer where they would exceed
            `MAX_GRID_PIXELS` together, evenly spaced, the last included).
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
        self.inputs: dict[str, Tensor | None] | None = None  # the task's fixed grid inputs
        self.images_per_row = self.nrow
        self._real_saved = False

    @property
    def noise(self) -> Tensor | None:
        """The grid's fixed latents (a GAN pair's), or ``None``."""
        return None if self.inputs is None else self.inputs.get("noise")

    @property
    def labels(self) -> Tensor | None:
        """The grid's row classes (a conditional pair's), or ``None``."""
        return None if self.inputs is None else self.inputs.get("labels")

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

    def _networks(self, trainer: Trainer) -> dict[str, nn.Module]:
        """The task's networks, with the EMA's average in place of the one it averages."""
        ema = trainer.callback(EMA)
        if self.use_ema is True and ema is None:
            raise ValueError("SampleGrid(use_ema=True) needs an EMA callback in the trainer")
        networks = dict(trainer.task.networks)
        if self.use_ema and isinstance(ema, EMA) and ema.module is not None:
            if self.eval_mode:  # the average's copied BatchNorm statistics do not fit it
                ema.recompute_batchnorm(trainer)
            networks.update(ema.averaged(trainer))
        return networks

    def sample(self, trainer: Trainer) -> Tensor:
        """The grid's images for the fixed inputs."""
        assert self.inputs is not None, "the grid's inputs are drawn at the first step"
        return trainer.task.grid(self.inputs, self._networks(trainer), self.eval_mode)

    def _draw_inputs(self, trainer: Trainer, batch: Any) -> None:
        rng = torch.Generator(device=trainer.device).manual_seed(grid_seed(trainer.seed))
        drawn = trainer.task.grid_inputs(self.num_samples, self.nrow, rng, batch)
        if drawn is not None:
            self.inputs, self.images_per_row = drawn

    def _check_size(self, trainer: Trainer) -> None:
        """Refuse a grid over `MAX_GRID_PIXELS`, where the task's images have a known shape
        (a GAN pair's).

        Raises:
            ValueError: Naming ``num_samples``, the image size, the pixels and the bound.
        """
        shape = getattr(getattr(trainer.task, "gan", None), "image_shape", None)
        if self.noise is None or not shape:
            return
        height, width = shape[-2:]
        given, remedy = "SampleGrid: `num_samples`", "lower `num_samples`"
        check_grid_pixels(len(self.noise), height, width, given, remedy)

    @override
    def on_fit_start(self, trainer: Trainer) -> None:
        if self.inputs is None:  # (a task that shows its data waits for the first batch)
            self._draw_inputs(trainer, None)
        self._check_size(trainer)

    @override
    def on_batch_start(self, trainer: Trainer, images: Any) -> None:
        if self.inputs is None:
            self._draw_inputs(trainer, trainer.current_batch)
        if self.save_real and not self._real_saved:
            save_grid(
                images[: self.num_samples].float().cpu(),
                self.out_dir / "real_samples.png",
                self.nrow,
            )
            self._real_saved = True

    def _save(self, trainer: Trainer, path: Path) -> None:
        save_grid(self.sample(trainer).cpu(), path, self.images_per_row)

    def grid_path(self, epoch: int) -> Path:
        return self.out_dir / f"generated_epoch_{epoch:03d}.png"

    def step_path(self, step: int) -> Path:
        return self.out_dir / f"generated_step_{step:07d}.png"

    @override
    def on_batch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        if self.every_n_steps and trainer.state.step % self.every_n_steps == 0:
            self._save(trainer, self.step_path(trainer.state.step))

    @override
    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.every_n_epochs and trainer.state.epoch % self.every_n_epochs == 0:
            self._save(trainer, self.grid_path(trainer.state.epoch))

    def _has_grid_of_last_step(self, trainer: Trainer) -> bool:
        state = trainer.state
        if self.step_path(state.step).exists():
            return True
        every = self.every_n_epochs
        at_epoch_end = state.batch_in_epoch == 0 and state.epoch > 0
        return bool(at_epoch_end and every and state.epoch % every == 0)

    @override
    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.state.step > 0 and not self._has_grid_of_last_step(trainer):
            self._save(trainer, self.step_path(trainer.state.step))  # show where it got to
        if not self.overview:
            return
        grids = sorted(self.out_dir.glob("generated_*.png"))
        frames = MAX_OVERVIEW_FRAMES
        if grids:  # large grids: fewer frames, so the overview stays within the grid bound
            with Image.open(grids[-1]) as last:
                frames = max(1, min(frames, MAX_GRID_PIXELS // (last.width * last.height)))
        if len(grids) > frames:  # evenly spaced, the last included
            picks = torch.linspace(0, len(grids) - 1, frames).round().long()
            grids = [grids[int(i)] for i in picks.unique()]
        if grids:
            self._save_overview(grids)

    def _save_overview(self, grids: list[Path]) -> None:
        """``overview.png``: ``grids`` stacked, oldest on top, each padded with white to the
        largest one's size."""
        from torchvision.utils import make_grid, save_image  # (torchvision: only when used)

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
        # The inputs by name (a GAN pair's: noise, labels, as earlier releases saved them).
        return {
            **(self.inputs or {"noise": None}),
            "real_saved": self._real_saved,
            "images_per_row": self.images_per_row,
        }

    @override
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        inputs = {k: v for k, v in state_dict.items() if k not in _STATE_ONLY}
        self.inputs = None if all(v is None for v in inputs.values()) else inputs
        self.images_per_row = int(state_dict.get("images_per_row", self.nrow))
        self._real_saved = bool(state_dict["real_saved"])
