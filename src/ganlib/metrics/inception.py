"""Inception-v3 pool features for FID, from weights the user supplies (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InceptionFeatures"]


class InceptionFeatures(nn.Module):
    """torchvision's Inception-v3 up to its 2048-d average pool, for FID and KID.

    Images in [-1, 1] of any size are resized to 299x299 (bilinear); one channel
    is repeated to three. Pass the returned features (or this module) to
    :func:`~ganlib.metrics.frechet_distance` / :func:`~ganlib.metrics.embed`.
    The first convolution sees exactly what torchvision's own pipeline for these
    weights gives it (ImageNet normalisation, then ``transform_input=True``).

    The weights are torchvision's ``inception_v3`` ImageNet state dict
    (``inception_v3_google-0cc3c7bd.pth``, from ``torchvision.models.Inception_V3_Weights``
    on a machine with internet). Values are FIDs in that network's space; they
    are close to, not identical with, the TensorFlow-Inception FIDs papers report.

    Args:
        weights: Path of the state dict.

    Raises:
        FileNotFoundError: If ``weights`` does not exist.
        ValueError: If it is not an Inception-v3 state dict.
    """

    def __init__(self, weights: str | os.PathLike[str]) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"Inception weights not found at {path}: download torchvision's "
                "inception_v3 ImageNet weights (inception_v3_google-0cc3c7bd.pth) and pass its path"
            )
        # Built as torchvision builds it for these weights, except transform_input (see forward).
        network = inception_v3(
            weights=None, aux_logits=True, init_weights=False, transform_input=False
        )
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            network.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{path} is not an Inception-v3 state dict: {exc}") from exc
        network.AuxLogits = None
        network.aux_logits = False
        network.fc = nn.Identity()  # type: ignore[assignment]
        self.network = network.eval().requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 1 or 3, H, W) images in [-1, 1] -> (B, 2048) features."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be (B, 1 or 3, H, W), got shape {tuple(images.shape)}")
        x = images.float().expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        # torchvision's ImageNet weights take [-1, 1] at their first convolution:
        # transform_input=True maps the ImageNet-normalised (u - mean) / std back to
        # (u - 0.5) / 0.5. The images go in as they are instead of normalising them and
        # undoing it (the same values, up to float rounding).
        self.network.eval()
        return self.network(x)
