"""Device names: the ones ganlib trains on, and clear refusals for the rest."""

from __future__ import annotations

import pytest
import torch

from ganlib import DCGAN, Trainer
from ganlib.device import resolve_device

ACCEPTED = r"`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got "


@pytest.mark.parametrize("device", ["meta", "xla", "hpu", "lazy", torch.device("meta")])
def test_devices_ganlib_does_not_train_on_are_refused(device):
    shown = str(device)
    with pytest.raises(ValueError, match=rf"{ACCEPTED}'{shown}' \(ganlib does not train on '"):
        resolve_device(device)


def test_the_trainer_refuses_a_meta_device():
    with pytest.raises(ValueError, match=rf"{ACCEPTED}'meta'"):
        Trainer(DCGAN(image_size=8, width=4), device="meta", progress=False)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", ""])
def test_names_torch_does_not_know_are_refused(device):
    with pytest.raises(ValueError, match=rf"{ACCEPTED}'{device}'"):
        resolve_device(device)


def test_cpu_names_pass():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cpu:0") == torch.device("cpu:0")
    assert resolve_device(torch.device("cpu")).type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
