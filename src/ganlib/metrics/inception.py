"""Inception-v3 pool features for FID and KID: the FID Inception papers use, or torchvision's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_choice
from ._download import fetch
from .fid_inception import FID_WEIGHTS_URL, FIDInceptionV3

__all__ = ["IMAGENET_WEIGHTS_URL", "InceptionFeatures", "InceptionVariant"]

InceptionVariant = Literal["fid", "imagenet"]

IMAGENET_WEIGHTS_URL = "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"
_URLS: dict[str, str] = {"fid": FID_WEIGHTS_URL, "imagenet": IMAGENET_WEIGHTS_URL}
_NAMES = {"fid": "FID Inception weights", "imagenet": "torchvision's Inception-v3 ImageNet weights"}
# The classifier's width tells the two weight files apart.
_VARIANT_OF_CLASSES: dict[int, InceptionVariant] = {1008: "fid", 1000: "imagenet"}


class InceptionFeatures(nn.Module):
    """Inception-v3's 2048-d pool features of images in [-1, 1], for FID and KID.

    Images of any size with 1 or 3 channels are resized to 299x299 (bilinear,
    ``align_corners=False``, as pytorch-fid does; one channel is repeated to
    three) and enter the network in [-1, 1]. Pass the module to
    [`embed`][ganlib.metrics.embed] and the features to
    [`frechet_distance`][ganlib.metrics.frechet_distance] /
    [`kernel_distance`][ganlib.metrics.kernel_distance].

    Two networks:

    - ``"fid"``: the FID Inception, TensorFlow's 2015-12-05 Inception-v3 as
      ported by pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``), the
      network papers' FIDs are measured with. Its features match pytorch-fid's
      to float precision, so its FIDs are comparable with papers' measured the
      same way (sample count, reference set, resizing).
    - ``"imagenet"``: torchvision's ImageNet Inception-v3
      (``inception_v3_google-0cc3c7bd.pth``), fed exactly what torchvision's
      ``transform_input=True`` gives its first convolution. Its FIDs are not
      comparable with papers'.

    Args:
        weights: Path of the network's state dict. ``None`` takes the file from
            ganlib's cache folder (``$GANLIB_CACHE``, else ``~/.cache/ganlib``),
            downloading it there once if it is missing.
        variant: ``"fid"`` or ``"imagenet"``. ``None`` reads it off the weights
            file (1008 classes: ``"fid"``; 1000: ``"imagenet"``), and is
            ``"fid"`` when no file is given.
        download: Whether a file missing from the cache may be downloaded.

    Raises:
        FileNotFoundError: If ``weights`` does not exist, or if it is ``None`` and
            the file is neither cached nor downloadable (offline); the message
            says where to put it.
        ValueError: If the file is not an Inception-v3 state dict, or holds the
            other variant than ``variant``.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        *,
        variant: InceptionVariant | None = None,
        download: bool = True,
    ) -> None:
        super().__init__()
        if variant is not None:
            check_choice("variant", variant, list(_URLS))
        if weights is None:
            variant = variant or "fid"
            path = fetch(_URLS[variant], _NAMES[variant], download=download)
        else:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(
                    f"Inception weights not found at {path}: pass the path of the FID "
                    "Inception's pt_inception-2015-12-05-6726825d.pth (paper-comparable "
                    "FID) or of torchvision's inception_v3_google-0cc3c7bd.pth, or "
                    "weights=None to use ganlib's cache"
                )
        state = _read_state_dict(path)
        found = _variant_of(state)
        if found is None:
            raise ValueError(
                f"{path} is not an Inception-v3 state dict: it has no 1008- or 1000-class "
                "`fc.weight`"
            )
        if variant is not None and variant != found:
            raise ValueError(f"`variant` is {variant!r} but {path} holds the {found!r} weights")
        self.variant: InceptionVariant = found
        self.network = _build(self.variant)
        try:
            self.network.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{path} is not an Inception-v3 state dict: {exc}") from exc
        if self.variant == "imagenet":
            self.network.AuxLogits = None
            self.network.aux_logits = False
            self.network.fc = nn.Identity()
        self.network.eval().requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 1 or 3, H, W) images in [-1, 1] -> (B, 2048) features."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be (B, 1 or 3, H, W), got shape {tuple(images.shape)}")
        x = images.float().expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        # Both networks take [-1, 1] at their first convolution. For torchvision's
        # ImageNet weights, transform_input=True maps its ImageNet-normalised input
        # (u - mean) / std back to (u - 0.5) / 0.5, i.e. to [-1, 1], so the images
        # go in as they are instead of normalising them and undoing it.
        self.network.eval()
        return self.network(x)


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling raises many kinds
        raise ValueError(
            f"{path} is not an Inception-v3 state dict: cannot read it ({exc})"
        ) from exc
    if not isinstance(state, dict):
        raise ValueError(
            f"{path} is not an Inception-v3 state dict: it holds a {type(state).__name__}"
        )
    return state


def _variant_of(state: dict[str, Tensor]) -> InceptionVariant | None:
    classifier = state.get("fc.weight")
    if not isinstance(classifier, Tensor) or classifier.dim() != 2:
        return None
    return _VARIANT_OF_CLASSES.get(classifier.shape[0])


def _build(variant: InceptionVariant) -> Any:
    if variant == "fid":
        return FIDInceptionV3()
    from torchvision.models import inception_v3

    # Built as torchvision builds it for these weights, except transform_input (see forward).
    return inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
