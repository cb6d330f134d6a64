"""Inception features against the reference implementations, and the weights cache.

Every network here has random weights: nothing is downloaded. The FID Inception
is checked against pytorch-fid (skipped where it is not installed), torchvision's
ImageNet Inception against torchvision's own pretrained-weights pipeline.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from ganlib.metrics import FIDInceptionV3, InceptionFeatures
from ganlib.metrics import _download as download
from ganlib.metrics.fid_inception import FID_WEIGHTS_URL

FID_FILE = "pt_inception-2015-12-05-6726825d.pth"


def images(batch: int, channels: int, height: int, width: int, seed: int) -> Tensor:
    rng = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, height, width, generator=rng) * 2 - 1


def randomise_(network: nn.Module, seed: int) -> nn.Module:
    """Random weights with BatchNorm statistics measured on random images, so every
    layer sees O(1) activations (default statistics would make BatchNorm an identity)."""
    torch.manual_seed(seed)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration pass
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.normal_(module.bias, std=0.2)
    network.train()
    with torch.no_grad():
        network(images(4, 3, 299, 299, seed=seed))
    return network.eval()


def input_of_first_conv(model: nn.Module, network: nn.Module, x: Tensor) -> Tensor:
    """What ``network.Conv2d_1a_3x3`` receives when ``model`` (which runs it) is given ``x``."""
    seen: list[Tensor] = []
    handle = network.Conv2d_1a_3x3.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0]


# torchvision's ImageNet Inception-v3


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, Tensor]:
    from torchvision.models import inception_v3

    network = inception_v3(weights=None, aux_logits=True, init_weights=False)
    return randomise_(network, seed=0).state_dict()


@pytest.fixture
def torchvision_pretrained(monkeypatch, imagenet_state):
    """torchvision's ``inception_v3(weights=IMAGENET1K_V1)``, as torchvision configures it
    (transform_input=True among others), with random weights in place of the download."""
    from torchvision.models import Inception_V3_Weights, inception_v3

    weights = Inception_V3_Weights.IMAGENET1K_V1
    monkeypatch.setattr(Inception_V3_Weights, "get_state_dict", lambda *a, **k: imagenet_state)
    network = inception_v3(weights=weights).eval()
    assert network.transform_input
    preprocess = weights.transforms()
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1)

    def run(batch: Tensor) -> tuple[Tensor, Tensor]:
        """[-1, 1] -> [0, 1] -> resized -> ImageNet-normalised -> torchvision's network:
        the first conv's input and the pool features."""
        unit = ((batch + 1) / 2).expand(-1, 3, -1, -1)
        unit = nn.functional.interpolate(
            unit, size=(299, 299), mode="bilinear", align_corners=False
        )
        pooled: list[Tensor] = []
        handle = network.avgpool.register_forward_hook(lambda *args: pooled.append(args[2]))
        first = input_of_first_conv(network, network, (unit - mean) / std)
        handle.remove()
        return first, pooled[0].flatten(1)

    return run


@pytest.mark.parametrize("shape", [(2, 3, 299, 299), (2, 1, 28, 28)])
def test_imagenet_inception_sees_what_torchvision_feeds_its_pretrained_weights(
    tmp_path, imagenet_state, torchvision_pretrained, shape
):
    path = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    torch.save(imagenet_state, path)
    features = InceptionFeatures(path)
    assert features.variant == "imagenet"
    batch = images(*shape, seed=1)

    expected_input, expected_features = torchvision_pretrained(batch)
    ours = input_of_first_conv(features, features.network, batch)
    difference = (ours - expected_input).abs().max()
    print(f"ImageNet Inception's first-conv input vs torchvision's, {shape}: {difference:.2e}")
    assert difference < 1e-6
    with torch.no_grad():
        out = features(batch)
    torch.testing.assert_close(out, expected_features, rtol=1e-4, atol=1e-4)
    # The old preprocessing (ImageNet normalisation without transform_input) was far off.
    old = (expected_input + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    old = old / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert (old - expected_input).abs().max() > 0.5


# The FID Inception against pytorch-fid


@pytest.fixture(scope="module")
def fid_state() -> dict[str, Tensor]:
    """A state dict in the reference file's format: pytorch-fid's network, random weights."""
    inception = pytest.importorskip("pytorch_fid.inception")
    from torchvision.models import inception_v3

    # pytorch-fid's fid_inception_v3() without its download: torchvision's network
    # with 1008 classes and no aux head, its blocks replaced by pytorch-fid's.
    network = inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    network.Mixed_5b = inception.FIDInceptionA(192, pool_features=32)
    network.Mixed_5c = inception.FIDInceptionA(256, pool_features=64)
    network.Mixed_5d = inception.FIDInceptionA(288, pool_features=64)
    network.Mixed_6b = inception.FIDInceptionC(768, channels_7x7=128)
    network.Mixed_6c = inception.FIDInceptionC(768, channels_7x7=160)
    network.Mixed_6d = inception.FIDInceptionC(768, channels_7x7=160)
    network.Mixed_6e = inception.FIDInceptionC(768, channels_7x7=192)
    network.Mixed_7b = inception.FIDInceptionE_1(1280)
    network.Mixed_7c = inception.FIDInceptionE_2(2048)
    return randomise_(network, seed=2).state_dict()


@pytest.fixture
def fid_file(tmp_path, fid_state) -> Path:
    path = tmp_path / FID_FILE
    torch.save(fid_state, path)
    return path


@pytest.fixture(scope="module")
def own_fid_state() -> dict[str, Tensor]:
    """ganlib's own FID Inception with random weights, for tests that need no pytorch-fid."""
    return randomise_(FIDInceptionV3(), seed=6).state_dict()


@pytest.fixture
def own_fid_file(tmp_path, own_fid_state) -> Path:
    path = tmp_path / "own-fid-inception.pth"
    torch.save(own_fid_state, path)
    return path


def pytorch_fid_features(monkeypatch, path: Path, batch: Tensor) -> Tensor:
    """pytorch-fid's pool3 features, its loader pointed at ``path`` instead of the web."""
    inception = pytest.importorskip("pytorch_fid.inception")

    def load(url: str, progress: bool = True) -> dict[str, Tensor]:
        assert url == FID_WEIGHTS_URL
        return torch.load(path, weights_only=True)

    monkeypatch.setattr(inception, "load_state_dict_from_url", load)
    reference = inception.InceptionV3(
        [3], resize_input=True, normalize_input=False, use_fid_inception=True
    ).eval()
    with torch.no_grad():
        return reference(batch.expand(-1, 3, -1, -1))[0].flatten(1)


@pytest.mark.parametrize("shape", [(2, 3, 64, 48), (2, 1, 28, 28), (1, 3, 299, 299)])
def test_fid_inception_features_equal_pytorch_fid(monkeypatch, fid_file, shape):
    batch = images(*shape, seed=3)
    expected = pytorch_fid_features(monkeypatch, fid_file, batch)
    features = InceptionFeatures(fid_file)  # the variant is read off the file
    assert features.variant == "fid" and isinstance(features.network, FIDInceptionV3)
    with torch.no_grad():
        ours = features(batch)
    assert ours.shape == (shape[0], 2048)
    scale = expected.abs().max()
    assert scale > 0.1  # the features are not degenerate
    difference = (ours - expected).abs().max() / scale
    print(f"FID Inception vs pytorch-fid, {shape}: max |diff| / max |feature| = {difference:.2e}")
    assert difference < 1e-4


def test_the_fid_patches_matter(own_fid_state, own_fid_file):
    """torchvision's unpatched blocks with the same weights give other features, so the
    equivalence above tests the TensorFlow pooling, not only the weights."""
    from torchvision.models import inception_v3

    plain = inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    plain.load_state_dict(own_fid_state)
    plain.fc = nn.Identity()
    batch = images(2, 3, 299, 299, seed=4)
    with torch.no_grad():
        ours = InceptionFeatures(own_fid_file)(batch)
        theirs = plain.eval()(batch)
    assert (ours - theirs).abs().max() > 1e-2 * ours.abs().max()


def test_variant_must_match_the_file(own_fid_file, tmp_path):
    assert InceptionFeatures(own_fid_file, variant="fid").variant == "fid"
    with pytest.raises(ValueError, match=r"`variant` is 'imagenet' but .* holds the 'fid' weights"):
        InceptionFeatures(own_fid_file, variant="imagenet")
    choices = r"`variant` must be one of \['fid', 'imagenet'\], got 'tf'"
    with pytest.raises(ValueError, match=choices):
        InceptionFeatures(own_fid_file, variant="tf")  # type: ignore[arg-type]
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not an Inception-v3 state dict: cannot read it"):
        InceptionFeatures(tmp_path / "junk.pth")


# The weights cache


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("GANLIB_CACHE", str(folder))
    return folder


@pytest.fixture
def offline(monkeypatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(download.urllib.request, "urlopen", refuse)


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path / "here"))
    assert download.cache_dir() == tmp_path / "here"
    monkeypatch.delenv("GANLIB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == tmp_path / "xdg" / "ganlib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert download.cache_dir() == Path.home() / ".cache" / "ganlib"


def test_hash_prefix_is_read_from_the_file_name():
    assert download.hash_prefix(FID_FILE) == "6726825d"
    assert download.hash_prefix("inception_v3_google-0cc3c7bd.pth") == "0cc3c7bd"
    with pytest.raises(ValueError, match=r"`filename` must end in -<SHA-256 prefix.*'plain\.pth'"):
        download.hash_prefix("plain.pth")


def test_fetch_downloads_once_and_checks_the_hash(tmp_path, cache):
    payload = b"weights" * 1000
    source = tmp_path / f"tiny-{hashlib.sha256(payload).hexdigest()[:10]}.pth"
    source.write_bytes(payload)
    path = download.fetch(source.as_uri(), "tiny weights")
    assert path == cache / source.name and path.read_bytes() == payload
    source.unlink()  # cached: no second download
    assert download.fetch(source.as_uri(), "tiny weights") == path

    wrong = tmp_path / "tiny-00000000.pth"
    wrong.write_bytes(payload)
    with pytest.raises(ValueError, match=r"must start with 00000000 .*the download was not kept"):
        download.fetch(wrong.as_uri(), "tiny weights")
    assert sorted(p.name for p in cache.iterdir()) == [path.name]  # no partial file left


def test_offline_without_the_file_says_where_to_put_it(cache, offline):
    with pytest.raises(FileNotFoundError) as caught:
        InceptionFeatures()
    message = str(caught.value)
    assert "FID Inception weights not found" in message
    assert "Name or service not known" in message
    assert f"download {FID_WEIGHTS_URL} and put the file at {cache / FID_FILE}" in message
    assert not cache.exists() or not any(cache.iterdir())
    with pytest.raises(FileNotFoundError, match=r"inception_v3_google-0cc3c7bd\.pth"):
        InceptionFeatures(variant="imagenet")
    with pytest.raises(FileNotFoundError, match=re.escape("`download` is False")):
        InceptionFeatures(download=False)


def test_a_file_put_in_the_cache_is_used_without_downloading(cache, offline, own_fid_state):
    cache.mkdir()
    torch.save(own_fid_state, cache / FID_FILE)
    features = InceptionFeatures()
    assert features.variant == "fid"
    assert features(images(1, 1, 32, 32, seed=5)).shape == (1, 2048)
