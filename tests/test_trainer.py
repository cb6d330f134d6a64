"""Trainer: smoke runs, step order, hooks, stopping, data forms and bad input."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from conftest import tiny_gan
from ganlib import DCGAN, CheckpointError, Trainer
from ganlib.callbacks import Callback, ModelCheckpoint
from ganlib.losses import BCELoss


def images(n: int = 24, size: int = 12, channels: int = 1, seed: int = 1) -> torch.Tensor:
    return (
        torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    )


def trainer(gan: DCGAN | None = None, **kwargs) -> Trainer:
    kwargs.setdefault("max_steps", 3)
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("device", "cpu")
    return Trainer(gan or tiny_gan(), **kwargs)


class Recorder(Callback):
    """Records hook calls, with enough detail to check their order."""

    def __init__(self, name: str = "rec", log: list | None = None) -> None:
        self.name = name
        self.log = [] if log is None else log

    @property
    def state_key(self) -> str:
        return f"Recorder[{self.name}]"

    def on_fit_start(self, trainer):
        self.log.append((self.name, "fit_start"))

    def on_epoch_start(self, trainer):
        self.log.append((self.name, "epoch_start", trainer.state.epoch))

    def on_batch_start(self, trainer, images):
        self.log.append((self.name, "batch_start", trainer.state.step))

    def on_before_optimizer_step(self, trainer, network, optimizer):
        grads = [p.grad for p in getattr(trainer, network).parameters()]
        assert all(g is not None for g in grads), f"{network} has no gradients"
        self.log.append((self.name, "before_step", network))

    def on_batch_end(self, trainer, metrics):
        self.log.append((self.name, "batch_end", trainer.state.step))

    def on_epoch_end(self, trainer):
        self.log.append((self.name, "epoch_end", trainer.state.epoch))

    def on_fit_end(self, trainer):
        self.log.append((self.name, "fit_end"))

    def on_exception(self, trainer, exception):
        self.log.append((self.name, "exception", type(exception).__name__))

    def on_teardown(self, trainer):
        self.log.append((self.name, "teardown"))


@pytest.mark.parametrize("loss", ["bce", "hinge", "wgan-gp", "lsgan"])
def test_every_loss_trains(loss):
    gan = tiny_gan()
    before = copy.deepcopy(gan)
    state = trainer(gan, loss=loss).fit(images(), batch_size=8)
    assert state.step == 3
    assert set(state.metrics) == {"loss_d", "loss_g", "d_real", "d_fake", "d_fake_after"}
    assert all(torch.isfinite(torch.tensor(v)) for v in state.metrics.values())
    for network in ("generator", "discriminator"):
        old = dict(getattr(before, network).named_parameters())
        new = dict(getattr(gan, network).named_parameters())
        # Every convolution's weights move (a bias may see cancelling gradients, as in hinge).
        filters = [k for k in old if old[k].dim() == 4]
        assert all(not torch.equal(old[k], new[k]) for k in filters), f"{network} did not move"


def test_discriminator_step_is_visible_in_the_metrics():
    # The recipe's published run logged D(G(z)) 0.727>>0.727: D never stepped.
    history: list[Mapping[str, float]] = []

    class Keep(Callback):
        def on_batch_end(self, trainer, metrics):
            history.append(dict(metrics))

    trainer(callbacks=[Keep()], max_steps=6).fit(images(), batch_size=8)
    assert all(m["d_fake"] != m["d_fake_after"] for m in history)
    # A discriminator that does not step shows exactly the recipe's symptom.
    history.clear()
    frozen = lambda params: torch.optim.Adam(params, lr=0.0)  # noqa: E731
    trainer(callbacks=[Keep()], max_steps=6, d_optimizer=frozen).fit(images(), batch_size=8)
    assert all(m["d_fake"] == m["d_fake_after"] for m in history)


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_mixed_precision_trains(precision):
    state = trainer(precision=precision).fit(images(), batch_size=8)
    assert all(torch.isfinite(torch.tensor(v)) for v in state.metrics.values())


def test_hooks_fire_in_order_and_callbacks_in_list_order():
    log: list = []
    first, second = Recorder("a", log), Recorder("b", log)
    trainer(callbacks=[first, second], max_steps=None, max_epochs=1).fit(images(16), batch_size=8)
    hooks_a = [entry[1:] for entry in log if entry[0] == "a"]
    assert hooks_a == [
        ("fit_start",),
        ("epoch_start", 0),
        ("batch_start", 0),
        ("before_step", "discriminator"),
        ("before_step", "generator"),
        ("batch_end", 1),
        ("batch_start", 1),
        ("before_step", "discriminator"),
        ("before_step", "generator"),
        ("batch_end", 2),
        ("epoch_end", 1),
        ("fit_end",),
        ("teardown",),
    ]
    # Each hook runs a then b.
    assert [entry[0] for entry in log] == ["a", "b"] * (len(log) // 2)


def test_checkpoint_callbacks_run_last(tmp_path):
    log: list = []

    class Spy(ModelCheckpoint):
        def on_batch_end(self, trainer, metrics):
            log.append("checkpoint")

    t = trainer(callbacks=[Spy(tmp_path), Recorder("a", log)], max_steps=1)
    assert [type(c).__name__ for c in t.callbacks] == ["Recorder", "Spy"]
    t.fit(images(), batch_size=8)
    assert log.index("checkpoint") > log.index(("a", "batch_end", 1))


def test_d_steps_updates_d_more_often():
    log: list = []
    trainer(callbacks=[Recorder("a", log)], d_steps=3, max_steps=2).fit(images(), batch_size=8)
    networks = [entry[2] for entry in log if entry[1] == "before_step"]
    assert networks == (["discriminator"] * 3 + ["generator"]) * 2


def test_a_callback_stops_training_and_nothing_resets_it():
    class StopAt(Callback):
        def on_batch_end(self, trainer, metrics):
            if trainer.state.step == 2:
                trainer.should_stop = True

    t = trainer(callbacks=[StopAt()], max_steps=None, max_epochs=5)
    assert t.fit(images(), batch_size=4).step == 2
    assert t.should_stop
    assert t.fit(images(), batch_size=4).step == 2  # still stopped


def test_max_epochs_and_partial_last_batch():
    t = trainer(max_steps=None, max_epochs=2)
    state = t.fit(images(20), batch_size=8)  # 8, 8, 4
    assert (state.step, state.epoch, state.batch_in_epoch) == (6, 2, 0)
    t = trainer(max_steps=None, max_epochs=2)
    assert t.fit(images(20), batch_size=8, drop_last=True).step == 4


def test_default_is_ten_epochs():
    t = Trainer(tiny_gan(), progress=False, device="cpu")
    assert (t.max_epochs, t.max_steps) == (10, None)


@pytest.mark.parametrize("form", ["tensor", "pair", "dataset", "loader", "loader-pairs"])
def test_data_forms(form):
    x = images(16)
    labels = torch.arange(16)
    data = {
        "tensor": x,
        "pair": (x, labels),
        "dataset": TensorDataset(x, labels),
        "loader": DataLoader(x, batch_size=4),
        "loader-pairs": DataLoader(TensorDataset(x, labels), batch_size=4, shuffle=True),
    }[form]
    seen: list[int] = []

    class Sizes(Callback):
        def on_batch_start(self, trainer, batch):
            assert batch.shape[1:] == (1, 12, 12)
            seen.append(batch.shape[0])

    trainer(callbacks=[Sizes()], max_steps=None, max_epochs=1).fit(data, batch_size=4)
    assert seen == [4, 4, 4, 4]


def test_shuffled_order_depends_on_seed_and_epoch_only():
    x = torch.arange(12, dtype=torch.float32).view(12, 1, 1, 1).expand(12, 1, 12, 12) / 12

    def order(seed: int) -> list[list[float]]:
        batches: list[list[float]] = []

        class Grab(Callback):
            def on_batch_start(self, trainer, batch):
                batches.append(batch[:, 0, 0, 0].tolist())

        trainer(callbacks=[Grab()], seed=seed, max_steps=None, max_epochs=2).fit(x, batch_size=4)
        return batches

    first, again, other = order(5), order(5), order(6)
    assert first == again and first != other
    assert first[:3] != first[3:]  # each epoch reshuffles
    assert sorted(v for batch in first[:3] for v in batch) == sorted(x[:, 0, 0, 0].tolist())


def test_custom_loss_object_and_pair_gan():
    class MyLoss:
        def discriminator_loss(self, real_logits, fake_logits):
            return BCELoss().discriminator_loss(real_logits, fake_logits)

        def generator_loss(self, fake_logits):
            return BCELoss().generator_loss(fake_logits)

    gan = tiny_gan()
    t = Trainer(
        (gan.generator, gan.discriminator, 8),
        loss=MyLoss(),
        max_steps=2,
        progress=False,
        device="cpu",
    )
    state = t.fit(images(), batch_size=8)
    assert state.step == 2 and t.image_shape() == (1, 12, 12)


def test_optimizer_factory_and_instance():
    gan = tiny_gan()
    g_opt = torch.optim.SGD(gan.generator.parameters(), lr=0.01)
    t = trainer(gan, g_optimizer=g_opt, d_optimizer=lambda p: torch.optim.RMSprop(p, lr=1e-3))
    assert t.g_optimizer is g_opt and isinstance(t.d_optimizer, torch.optim.RMSprop)
    t.fit(images(), batch_size=8)


def test_default_optimizers_follow_the_recipe():
    t = trainer()
    for opt in (t.g_optimizer, t.d_optimizer):
        assert isinstance(opt, torch.optim.Adam)
        assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)


def test_adam_settings_over_the_recipe_and_the_fast_paths_kernel():
    t = trainer(g_optimizer={"lr": 1e-4}, d_optimizer={"betas": (0.0, 0.9)})
    assert t.g_optimizer.defaults["lr"] == 1e-4 and t.g_optimizer.defaults["betas"] == (0.5, 0.999)
    assert t.d_optimizer.defaults["lr"] == 2e-4 and t.d_optimizer.defaults["betas"] == (0.0, 0.9)
    assert not t.g_optimizer.defaults["fused"]
    fast = trainer(fast=True, g_optimizer={"lr": 1e-4})
    assert fast.g_optimizer.defaults["fused"] and fast.d_optimizer.defaults["fused"]
    own = trainer(fast=True, g_optimizer={"lr": 1e-4, "fused": False})
    assert not own.g_optimizer.defaults["fused"]  # the user's word wins
    refused = r"`d_optimizer`: Adam settings \{'momentum': 0.9\} refused"
    with pytest.raises(TypeError, match=refused):
        trainer(d_optimizer={"momentum": 0.9})


def test_auto_device_on_a_machine_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert trainer(device="auto").device.type in ("cpu", "mps")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"loss": "wgan"},
            ValueError,
            r"`loss` must be one of \['bce', 'hinge', 'wgan-gp', "
            r"'lsgan'\], got 'wgan'",
        ),
        ({"loss": 3}, TypeError, r"`loss` must be one of .* or an object with discriminator_loss"),
        ({"d_steps": 0}, ValueError, r"`d_steps` must be >= 1, got 0"),
        ({"d_steps": 1.5}, TypeError, r"`d_steps` must be an integer, got 1.5"),
        (
            {"precision": "fp16"},
            ValueError,
            r"`precision` must be one of \['32', 'bf16', '16'\], "
            r"got 'fp16'",
        ),
        ({"max_epochs": 0}, ValueError, r"`max_epochs` must be >= 1, got 0"),
        ({"max_steps": -2}, ValueError, r"`max_steps` must be >= 1, got -2"),
        (
            {"device": "tpu"},
            ValueError,
            r"`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', "
            r"got 'tpu'",
        ),
        ({"seed": -1}, ValueError, r"`seed` must be an integer with 0 <= seed < 2\*\*63, got -1"),
        ({"seed": 2**64}, ValueError, r"`seed` must be an integer with 0 <= seed < 2\*\*63, got"),
        ({"g_optimizer": "adam"}, TypeError, r"`g_optimizer` must be a torch Optimizer"),
        (
            {"callbacks": [object()]},
            TypeError,
            r"`callbacks\[0\]` must be a "
            r"ganlib.callbacks.Callback, got object",
        ),
        (
            {"callbacks": [Recorder("x"), Recorder("x")]},
            ValueError,
            r"two callbacks share the state_key 'Recorder\[x\]'",
        ),
    ],
)
def test_bad_trainer_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        trainer(**kwargs)


def test_cuda_requested_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"`device` is 'cuda' but CUDA is not available"):
        trainer(device="cuda")


def test_optimizer_over_the_wrong_network():
    gan = tiny_gan()
    with pytest.raises(
        ValueError,
        match=r"`d_optimizer` must optimise the discriminator's "
        r"parameters only; it holds \d+ parameter\(s\) of another",
    ):
        trainer(gan, d_optimizer=torch.optim.Adam(gan.generator.parameters()))


def test_bad_gan():
    with pytest.raises(
        TypeError,
        match=r"`gan` must provide .generator, .discriminator and "
        r".sample_noise .* got Linear",
    ):
        Trainer(nn.Linear(2, 2))


class NeverStep(Callback):
    def on_batch_start(self, trainer, batch):
        raise AssertionError("a training step ran")


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (
            images(size=14),
            ValueError,
            r"images must be shaped \(C, H, W\) = \(1, 12, 12\) to match "
            r"the generator's output, got \(1, 14, 14\) from `data`",
        ),
        (images(channels=3), ValueError, r"got \(3, 12, 12\)"),
        (
            torch.empty(0, 1, 12, 12),
            ValueError,
            r"`data` is empty: there are no images to train on",
        ),
        (TensorDataset(torch.empty(0, 1, 12, 12)), ValueError, r"`data` is empty"),
        (
            (images() * 127 + 128).to(torch.uint8),
            ValueError,
            r"images must be floating point and scaled to \[-1, 1\], got dtype torch.uint8",
        ),
        (
            {"images": images()},
            TypeError,
            r"`data` must be a tensor of images, an \(images, labels\) "
            r"pair of tensors, a Dataset or a DataLoader, got dict",
        ),
    ],
)
def test_bad_data_fails_before_any_step(data, error, message):
    with pytest.raises(error, match=message):
        trainer(callbacks=[NeverStep()]).fit(data, batch_size=8)


def test_fewer_images_than_one_batch_with_drop_last():
    with pytest.raises(
        ValueError,
        match=r"`data` has 5 images, fewer than one batch of 8 with "
        r"drop_last=True",
    ):
        trainer(callbacks=[NeverStep()]).fit(images(5), batch_size=8, drop_last=True)


def test_images_in_zero_one_range_warn():
    with pytest.warns(UserWarning, match=r"the generator's Tanh output is \[-1, 1\]"):
        trainer(max_steps=1).fit((images() + 1) * 2, batch_size=8)


def test_bad_checkpoint_fails_before_any_step(tmp_path):
    path = tmp_path / "nope.ckpt"
    with pytest.raises(CheckpointError, match=r"checkpoint '.*nope.ckpt' does not exist"):
        trainer(callbacks=[NeverStep()]).fit(images(), ckpt_path=str(path))


def test_exceptions_reach_callbacks_and_propagate():
    log: list = []

    class Boom(Callback):
        def on_batch_end(self, trainer, metrics):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        trainer(callbacks=[Recorder("a", log), Boom()]).fit(images(), batch_size=8)
    assert log[-2:] == [("a", "exception", "RuntimeError"), ("a", "teardown")]


def test_fast_path_trains_and_writes_ordinary_checkpoints(tmp_path):
    from ganlib.runtime import native_bf16 as _native_bf16

    # (compile forced on, so that a compiled training runs here too)
    fast = trainer(tiny_gan(), fast=True, compile=True, loss="wgan-gp", max_steps=3)
    # bf16 only where the CPU computes it natively; an explicit precision wins.
    assert fast.precision == ("bf16" if _native_bf16(torch.device("cpu")) else "32")
    assert trainer(tiny_gan(), fast=True, precision="bf16").precision == "bf16"
    assert (
        fast.channels_last and not trainer(tiny_gan(), fast=True, channels_last=False).channels_last
    )
    # The fast path compiles where it pays back (on CUDA), not on a CPU; explicit wins.
    from ganlib.runtime import CompiledOrEager

    def compiled(t):
        return isinstance(t.train_step.networks.generator, CompiledOrEager)

    assert not compiled(trainer(tiny_gan(), fast=True))
    assert not compiled(trainer(tiny_gan(), fast=True, precision="bf16"))
    assert compiled(fast) and compiled(trainer(tiny_gan(), fast=True, precision="32", compile=True))
    before = copy.deepcopy(fast.generator.state_dict())
    state = fast.fit(images(), batch_size=8)
    assert state.step == 3
    assert all(torch.isfinite(torch.tensor(v)) for v in state.metrics.values())
    after = fast.generator.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())
    # The compiled wrappers stay out of checkpoints: a plain Trainer resumes them.
    assert list(after) == list(tiny_gan().generator.state_dict())
    path = tmp_path / "fast.ckpt"
    fast.save_checkpoint(str(path))
    plain = trainer(tiny_gan(seed=5), loss="wgan-gp", max_steps=4)
    assert plain.fit(images(), str(path), batch_size=8).step == 4


def test_compile_failure_falls_back_to_eager(monkeypatch):
    from ganlib import trainer as trainer_module

    def broken_compile(module):
        def call(*args):
            raise RuntimeError("no C++ compiler")

        return call

    monkeypatch.setattr(trainer_module.torch, "compile", broken_compile)
    fast = trainer(tiny_gan(), fast=True, compile=True, max_steps=2)
    with pytest.warns(UserWarning) as caught:
        assert fast.fit(images(), batch_size=8).step == 2
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2  # one warning per network, not one per call
    assert messages[0].startswith("torch.compile failed for Discriminator (RuntimeError: no C++")
    assert messages[1].startswith("torch.compile failed for Generator (RuntimeError: no C++")


def test_preloaded_batches_come_in_the_same_order():
    from ganlib.batching import BatchSource

    data = (images(30), torch.arange(30))
    kwargs = dict(batch_size=7, shuffle=True, drop_last=False, num_workers=0, seed=3)
    plain = BatchSource(data, device=torch.device("cpu"), **kwargs)
    preloaded = BatchSource(data, device=torch.device("cpu"), preload=True, **kwargs)
    for epoch in range(2):
        for (x1, y1), (x2, y2) in zip(
            plain.epoch(epoch, 1), preloaded.epoch(epoch, 1), strict=True
        ):
            assert torch.equal(x1, x2) and torch.equal(y1, y2)
