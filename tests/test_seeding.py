"""seed_everything and check_seed: the model's initial weights repeat, and so does every
documented snippet that claims repeatability."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch
from torch import nn

import ganlib
from conftest import REPO_ROOT
from ganlib import DCGAN, seed_everything
from ganlib.seeding import check_seed


def _weights_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_seed_everything_is_exported_and_returns_the_seed():
    assert "seed_everything" in ganlib.__all__
    assert ganlib.seed_everything(123) == 123


def test_without_seed_everything_two_models_differ_with_it_they_are_equal():
    assert not _weights_equal(DCGAN(), DCGAN())  # the global generator moves on
    seed_everything(7)
    first = DCGAN()
    seed_everything(7)
    second = DCGAN()
    assert _weights_equal(first, second)


def test_seed_everything_seeds_python_torch_and_numpy():
    def draws() -> tuple[float, torch.Tensor, np.ndarray]:
        return random.random(), torch.rand(3), np.random.rand(3)

    seed_everything(11)
    first = draws()
    seed_everything(11)
    second = draws()
    seed_everything(12)
    other = draws()
    assert first[0] == second[0] != other[0]
    assert torch.equal(first[1], second[1]) and not torch.equal(first[1], other[1])
    assert np.array_equal(first[2], second[2]) and not np.array_equal(first[2], other[2])
    # The same streams as seeding each library by hand (numpy's 32-bit seeding included).
    random.seed(11)
    torch.manual_seed(11)
    np.random.seed(11)
    by_hand = draws()
    assert by_hand[0] == first[0] and torch.equal(by_hand[1], first[1])
    assert np.array_equal(by_hand[2], first[2])


def test_seed_everything_seeds_cuda(monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seen.append)
    seed_everything(5)
    assert 5 in seen


def test_seeds_beyond_32_bits_reach_numpy_distinctly():
    big = 2**40 + 3
    seed_everything(big)
    a = np.random.rand(2)
    seed_everything(3)  # the same low 32 bits
    b = np.random.rand(2)
    assert not np.array_equal(a, b)
    assert seed_everything(2**63 - 1) == 2**63 - 1


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, r"`seed` must be an integer with 0 <= seed < 2\*\*63, got -1"),
        (2**63, ValueError, rf"`seed` must be an integer with 0 <= seed < 2\*\*63, got {2**63}"),
        (2**64, ValueError, rf"`seed` must be an integer with 0 <= seed < 2\*\*63, got {2**64}"),
        (1.5, TypeError, r"`seed` must be an integer, got 1.5 \(float\)"),
        (True, TypeError, r"`seed` must be an integer, got True \(bool\)"),
        ("0", TypeError, r"`seed` must be an integer, got '0' \(str\)"),
    ],
)
def test_bad_seeds_are_refused(value, error, message):
    with pytest.raises(error, match=message):
        check_seed(value)
    with pytest.raises(error, match=message):
        seed_everything(value)


def test_check_seed_names_the_argument_and_passes_good_seeds():
    with pytest.raises(ValueError, match=r"`init_seed` must be an integer with 0 <= init_seed"):
        check_seed(-3, name="init_seed")
    assert check_seed(0) == 0
    assert check_seed(np.int64(9)) == 9 and type(check_seed(np.int64(9))) is int
    assert check_seed(2**63 - 1) == 2**63 - 1


def _models(namespace: dict) -> dict[str, nn.Module]:
    """The networks a snippet leaves behind: its modules and its trainers' pairs."""
    found = {}
    for name, value in namespace.items():
        if isinstance(value, nn.Module):
            found[name] = value
        elif isinstance(getattr(value, "gan", None), nn.Module):
            found[f"{name}.gan"] = value.gan
        elif isinstance(getattr(getattr(value, "task", None), "networks", None), dict):
            for key, network in value.task.networks.items():
                found[f"{name}.task.networks[{key!r}]"] = network
    return found


# Every README/docs snippet that trains with `seed=` or scores with a seed must seed the
# model's weights too, before building it.
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (REPO_ROOT / "docs").glob("*.md"))]
SNIPPET = re.compile(r"```python\n(.*?)```", re.S)
SEEDED = [
    (page, i, code)
    for page in PAGES
    for i, code in enumerate(SNIPPET.findall((REPO_ROOT / page).read_text()))
    if "seed=" in code or "seed_everything" in code
]


def test_seeded_snippets_were_found():
    pages = {page for page, _, _ in SEEDED}
    assert {"README.md", "docs/index.md", "docs/quickstart.md", "docs/training.md"} <= pages


@pytest.mark.parametrize(("page", "index", "code"), SEEDED, ids=[f"{p}#{i}" for p, i, _ in SEEDED])
def test_seeded_snippets_repeat_bitwise(page, index, code, tmp_path, monkeypatch):
    # A model is built by a ganlib builder, or by instantiating a class the snippet defines
    # (a task of its own, say).
    own = re.findall(r"^class (\w+)\(", code, re.M)
    networks = r"[A-Z]\w*(?:Task|Generator|Discriminator|Translator)"  # ganlib's own
    builders = "|".join(["DCGAN", "ResNetGAN", "TinyMLP", networks, *own])
    builds = [m.start() for m in re.finditer(rf"(?<!class )\b({builders})\(", code)]
    seeded = code.find("seed_everything(")
    assert builds, f"{page} snippet {index} builds no model"
    assert 0 <= seeded < builds[0], (
        f"{page} snippet {index} passes a seed but builds its model before seed_everything"
    )
    runs = []
    for run in range(2):
        # Each run starts from another global state, as two scripts or sessions would.
        torch.manual_seed(1000 + run)
        random.seed(1000 + run)
        np.random.seed(1000 + run)
        (tmp_path / str(run)).mkdir()
        monkeypatch.chdir(tmp_path / str(run))
        namespace: dict = {"__name__": "__snippet__"}
        exec(compile(code, page, "exec"), namespace)
        runs.append(_models(namespace))
    assert runs[0], f"{page} snippet {index} leaves no model to compare"
    assert runs[0].keys() == runs[1].keys()
    for name, module in runs[0].items():
        assert _weights_equal(module, runs[1][name]), f"{page} snippet {index}: `{name}` differs"
