"""Precision names: ganlib's short ones and Lightning 2's, one canonical name after."""

from __future__ import annotations

import pytest
import torch

from ganlib import DCGAN, Trainer
from ganlib.runtime import Runtime, canonical_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("32", "32"),
        ("32-true", "32"),
        (32, "32"),
        ("bf16", "bf16"),
        ("bf16-mixed", "bf16"),
        ("16", "16"),
        ("16-mixed", "16"),
        (16, "16"),
    ],
)
def test_lightning_names_resolve_to_the_short_name(name, canonical):
    assert canonical_precision(name) == canonical
    runtime = Runtime.resolve(CPU, precision=name)
    assert runtime.precision == canonical
    expected_dtype = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[canonical]
    assert runtime.autocast_dtype is expected_dtype
    assert runtime.grad_scaler().is_enabled() == (canonical == "16")


@pytest.mark.parametrize("name", ["16-mixed", 16, "bf16-mixed", "32-true", 32])
def test_the_trainer_takes_them_and_reports_the_short_name(name):
    trainer = Trainer(DCGAN(image_size=8, width=4), precision=name, device="cpu", progress=False)
    assert trainer.precision == canonical_precision(name)
    assert trainer.precision in ("32", "bf16", "16")


ACCEPTED = (
    r"`precision` must be one of \['32', 'bf16', '16'\], got {value}; "
    r"Lightning's names '32-true', 32, 'bf16-mixed', '16-mixed' and 16 are accepted too"
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("fp16", "'fp16'"), (64, "64"), (32.0, r"32\.0"), (True, "True"), ("16_mixed", "'16_mixed'")],
)
def test_unknown_names_are_refused_with_the_accepted_ones(value, shown):
    with pytest.raises(ValueError, match=ACCEPTED.format(value=shown)):
        Runtime.resolve(CPU, precision=value)


def test_true_half_precision_is_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"got '16-true'; .* \(ganlib keeps fp32 weights"):
        Runtime.resolve(CPU, precision="16-true")
