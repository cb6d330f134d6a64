"""Class-conditional DCGAN: shapes with labels, label errors, training, grids, scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import ganlib.gan
from conftest import tiny_gan
from ganlib import DCGAN, GAN, Trainer, register_architecture
from ganlib.callbacks import EMA, SampleGrid
from ganlib.checkpoint import load_gan
from ganlib.cli import main as cli_main
from ganlib.data import load_mnist
from ganlib.gan import check_labels
from ganlib.metrics import MNISTEvaluator


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_cgan(num_classes: int = 3, seed: int = 0) -> DCGAN:
    return tiny_gan(seed, num_classes=num_classes)


def labelled(n: int = 24, num_classes: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 12, 12, generator=rng) * 2 - 1
    return images, torch.randint(num_classes, (n,), generator=rng)


@settings(max_examples=25, deadline=None)
@given(
    image_size=st.integers(5, 64),
    channels=st.integers(1, 3),
    latent_dim=st.integers(1, 32),
    num_classes=st.integers(1, 12),
    embedding_dim=st.one_of(st.none(), st.integers(1, 16)),
    batch=st.integers(1, 4),
)
def test_conditional_shapes_and_label_gradients(
    image_size, channels, latent_dim, num_classes, embedding_dim, batch
):
    gan = DCGAN(
        image_size,
        channels,
        latent_dim,
        width=2,
        max_width=8,
        num_classes=num_classes,
        embedding_dim=embedding_dim,
    )
    labels = gan.sample_labels(batch)
    assert labels.shape == (batch,) and labels.min() >= 0 and labels.max() < num_classes
    images = gan.generator(gan.sample_noise(batch), labels)
    assert images.shape == (batch, channels, image_size, image_size)
    logits = gan.discriminator(images, labels)
    assert logits.shape == (batch,)
    logits.sum().backward()
    # Both label paths learn: G's embedding rows and D's projection rows of the used classes.
    used = labels.unique()
    assert gan.generator.label_embedding.weight.grad[used].abs().sum() > 0
    assert gan.discriminator.projection.weight.grad[used].abs().sum() > 0


def test_unconditional_networks_are_unchanged():
    plain, conditional = DCGAN(), DCGAN(num_classes=10)
    assert (_count(plain.generator), _count(plain.discriminator)) == (2_169_473, 1_713_025)
    assert "num_classes" not in plain.config and plain.num_classes is None
    # G: a 10-d embedding and 10 more input channels of the 3x3 first layer (512 wide);
    # D: one projection row per class over the 512x3x3 features the last convolution reads.
    assert _count(conditional.generator) - _count(plain.generator) == 10 * 10 + 10 * 512 * 9
    assert _count(conditional.discriminator) - _count(plain.discriminator) == 10 * 512 * 9


def test_new_projection_discriminator_scores_like_its_unconditional_part():
    gan = tiny_cgan()
    images, labels = labelled(6)
    gan.discriminator.eval()
    with torch.no_grad():
        plain = gan.discriminator.net(images).flatten()
        assert torch.equal(gan.discriminator(images, labels), plain)
        gan.discriminator.projection.weight.normal_()
        assert not torch.allclose(gan.discriminator(images, labels), plain)


def test_the_label_changes_the_generated_image():
    gan = tiny_cgan().eval()
    z = gan.sample_noise(1).repeat(3, 1)
    images = gan.generator(z, torch.arange(3))
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[1], images[2])


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (None, ValueError, r"`labels` are required: the model is conditional \(num_classes=3\)"),
        (torch.tensor([0.0, 1.0]), TypeError, r"integer class indices in \[0, 3\).*float32"),
        (torch.eye(3)[:2].long(), ValueError, r"shaped \(2,\), got \(2, 3\)"),
        (torch.tensor([0, 1, 2]), ValueError, r"shaped \(2,\), got \(3,\)"),
        (torch.tensor([0, 3]), ValueError, r"lie in \[0, 3\), got values from 0 to 3"),
        (torch.tensor([-1, 2]), ValueError, r"got values from -1 to 2"),
        ([0, 1], TypeError, "tensor of class indices, got list"),
    ],
)
def test_bad_labels_name_the_rule_and_value(labels, error, message):
    gan = tiny_cgan()
    with pytest.raises(error, match=message):
        gan.generator(gan.sample_noise(2), labels)
    images = torch.zeros(2, 1, 12, 12)
    with pytest.raises(error, match=message):
        gan.discriminator(images, labels)


def test_labels_for_an_unconditional_model_and_bad_builder_arguments():
    gan = DCGAN(image_size=12, width=2, latent_dim=4)
    with pytest.raises(ValueError, match="unconditional model"):
        gan.generator(gan.sample_noise(2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="sample_labels needs a conditional pair"):
        gan.sample_labels(2)
    with pytest.raises(ValueError, match="`embedding_dim` is for conditional models"):
        DCGAN(embedding_dim=4)
    with pytest.raises(ValueError, match="num_classes"):
        DCGAN(num_classes=0)
    assert check_labels(torch.tensor([2, 0], dtype=torch.int32), 3).dtype == torch.int64


def test_trainer_learns_the_class_terms_and_resumes_exactly(tmp_path):
    data = labelled()

    def make(max_steps: int) -> Trainer:
        return Trainer(tiny_cgan(), loss="hinge", max_steps=max_steps, seed=3, progress=False)

    full = make(6)
    state = full.fit(data, batch_size=8)
    assert state.step == 6 and all(torch.isfinite(torch.tensor(list(state.metrics.values()))))
    assert full.discriminator.projection.weight.abs().sum() > 0  # trained from zero

    part = make(4)
    part.fit(data, batch_size=8)
    part.save_checkpoint(str(tmp_path / "part.ckpt"))
    resumed = make(6)
    resumed.fit(data, batch_size=8, ckpt_path=str(tmp_path / "part.ckpt"))
    for a, b in zip(full.gan.parameters(), resumed.gan.parameters(), strict=True):
        assert torch.equal(a, b)


class IntLabelled(torch.utils.data.Dataset):
    """Items as torchvision's datasets give them: (image tensor, int class)."""

    def __init__(self) -> None:
        self.images, self.labels = labelled()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


def test_datasets_of_image_and_int_class_train():
    trainer = Trainer(tiny_cgan(), max_steps=2, seed=0, progress=False)
    assert trainer.fit(IntLabelled(), batch_size=8).step == 2


def test_gradient_penalty_scores_interpolates_with_labels():
    trainer = Trainer(tiny_cgan(), loss="wgan-gp", max_steps=2, seed=0, progress=False)
    assert trainer.fit(labelled(), batch_size=8).step == 2


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (labelled()[0], ValueError, r"conditional \(num_classes=3\) but `data` has no labels"),
        ((labelled()[0], labelled()[1].float()), TypeError, "integer class indices"),
        ((labelled()[0], labelled()[1] + 3), ValueError, r"lie in \[0, 3\)"),
    ],
)
def test_bad_training_labels_fail_before_any_step(data, error, message):
    trainer = Trainer(tiny_cgan(), max_steps=1, progress=False)
    with pytest.raises(error, match=message):
        trainer.fit(data, batch_size=8)
    assert trainer.state.step == 0


def test_sample_grid_draws_one_row_per_class_and_ema_handles_labels(tmp_path):
    grid = SampleGrid(tmp_path, nrow=4, eval_mode=True)
    trainer = Trainer(tiny_cgan(), max_epochs=1, seed=0, progress=False, callbacks=[EMA(), grid])
    trainer.fit(labelled(), batch_size=8)
    assert grid.labels is not None and grid.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert grid.noise is not None and torch.equal(grid.noise[:4], grid.noise[4:8])
    with Image.open(tmp_path / "generated_epoch_001.png") as image:
        # torchvision's grid: 4 columns and 3 rows of 12-px images with 2-px padding.
        assert image.size == (4 * 14 + 2, 3 * 14 + 2)
    assert grid.state_dict()["labels"] is grid.labels


class LabelPainter(GAN):
    """A conditional pair whose generator paints image ``i`` one grey level per class,
    ``-1 + 2 * label / (num_classes - 1)``, whatever the latent: a grid's pixels say which
    label each image was drawn for."""

    def __init__(self, num_classes: int = 3, image_size: int = 4) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = 2, num_classes
        self.image_shape = (1, image_size, image_size)
        self.config = dict(num_classes=num_classes, image_size=image_size)
        self.generator = _Painter(num_classes, image_size)
        self.discriminator = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(image_size * image_size, 1), torch.nn.Flatten(0)
        )


class _Painter(torch.nn.Module):
    def __init__(self, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.num_classes, self.image_size = num_classes, image_size
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        level = -1 + 2 * labels.float() / (self.num_classes - 1) + 0 * self.anchor
        return level.view(-1, 1, 1, 1).expand(-1, 1, self.image_size, self.image_size)


@pytest.fixture
def painter_checkpoint(monkeypatch, tmp_path):
    """A saved LabelPainter, rebuilt by name by ``ganlib sample`` (registry restored after)."""
    monkeypatch.setattr(ganlib.gan, "_ARCHITECTURES", dict(ganlib.gan._ARCHITECTURES))
    register_architecture("label-painter", LabelPainter)
    gan = LabelPainter()
    path = tmp_path / "painter.ckpt"
    Trainer(gan, progress=False).save_checkpoint(str(path))
    return path


def grid_labels(path, rows: int, columns: int, size: int = 4, classes: int = 3) -> list[list[int]]:
    """The label of each cell of a grid of one-level images (2-pixel padding)."""
    with Image.open(path) as image:
        pixels = torch.from_numpy(np.array(image.convert("L"))).float()
    assert pixels.shape == (2 + rows * (size + 2), 2 + columns * (size + 2))
    cells = [
        [float(pixels[2 + r * (size + 2) + 1, 2 + c * (size + 2) + 1]) for c in range(columns)]
        for r in range(rows)
    ]
    return [[round(v / 255 * (classes - 1)) for v in row] for row in cells]


def test_cli_samples_rows_per_class_and_one_chosen_class(painter_checkpoint, tmp_path, capsys):
    args = [str(painter_checkpoint), "--nrow", "3", "--device", "cpu", "--no-ema"]
    assert cli_main(["sample", *args, "--num", "12", "--out", str(tmp_path / "rows.png")]) == 0
    # Row r shows class r mod 3: four rows of three.
    assert grid_labels(tmp_path / "rows.png", 4, 3) == [[0] * 3, [1] * 3, [2] * 3, [0] * 3]
    two = ["--num", "6", "--label", "2", "--out", str(tmp_path / "two.png")]
    assert cli_main(["sample", *args, *two]) == 0
    assert grid_labels(tmp_path / "two.png", 2, 3) == [[2] * 3, [2] * 3]
    assert cli_main(["sample", *args, "--label", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "--label must lie in [0, 3), got 3" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    files = ["--num", "4", "--format", "files", "--out", str(tmp_path / "files")]
    assert cli_main(["sample", *args, *files]) == 0
    names = sorted(p.name for p in (tmp_path / "files").iterdir())
    assert names == ["00000_class0.png", "00001_class0.png", "00002_class0.png", "00003_class1.png"]


def test_cli_samples_a_trained_conditional_dcgan(tmp_path):
    trainer = Trainer(tiny_cgan(), max_steps=2, seed=0, progress=False)
    trainer.fit(labelled(), batch_size=8)
    ckpt = tmp_path / "c.ckpt"
    trainer.save_checkpoint(str(ckpt))
    assert load_gan(ckpt).num_classes == 3
    args = [str(ckpt), "--num", "6", "--nrow", "3", "--device", "cpu"]
    assert cli_main(["sample", *args, "--label", "1", "--out", str(tmp_path / "one.png")]) == 0
    with Image.open(tmp_path / "one.png") as image:
        assert image.size == (2 + 3 * 14, 2 + 2 * 14)


class _DigitPainter(torch.nn.Module):
    """A 'generator' that ignores z and draws the real test image of the requested digit."""

    def __init__(self, prototypes: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("prototypes", prototypes)
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.prototypes[labels] + 0 * self.anchor


def test_conditional_accuracy_counts_samples_read_as_the_requested_digit(mnist_root):
    images, labels = load_mnist(mnist_root, "test", download=False)
    evaluator = MNISTEvaluator(images[:500])
    prototypes = torch.stack([images[labels == k][0] for k in range(10)])
    right = evaluator.score_generator(_DigitPainter(prototypes), 200, 4, conditional=True)
    assert right.conditional_accuracy == 1.0 and right.classes_covered == 10
    shifted = _DigitPainter(prototypes.roll(1, dims=0))  # asks for k, draws k - 1
    wrong = evaluator.score_generator(shifted, 200, 4, conditional=True)
    assert wrong.conditional_accuracy == 0.0 and wrong.classes_covered == 10
    assert evaluator.score(images[:50]).conditional_accuracy is None
