"""scripts/convert_sphinx_roles.py: Sphinx roles become mkdocstrings cross-references to
the entries the API page has, or plain code where it has none."""

from __future__ import annotations

import importlib.util
import zlib

import pytest

from conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "convert_sphinx_roles", REPO_ROOT / "scripts" / "convert_sphinx_roles.py"
)
assert spec is not None and spec.loader is not None
convert = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert)

# What objects.inv says of a few entries: documented name -> anchor, aliases -> that anchor.
INVENTORY = {
    "ganlib.GAN": "ganlib.GAN",
    "ganlib.gan.GAN": "ganlib.GAN",
    "ganlib.gan.check_labels": "ganlib.gan.check_labels",
    "ganlib.GAN.check_labels": "ganlib.GAN.check_labels",
    "ganlib.runtime.Runtime": "ganlib.runtime.Runtime",
    "ganlib.runtime.Runtime.describe": "ganlib.runtime.Runtime.describe",
}

SOURCE = '''"""Module text: :class:`GAN`, :class:`~ganlib.runtime.Runtime`, :mod:`ganlib.step`."""


class Runtime:
    """See :meth:`describe`, :func:`check_labels` and :class:`the pair <GAN>`."""

    def describe(self):
        """Unknown: :func:`nowhere`, :class:`~torch.utils.data.DistributedSampler`."""
'''


def test_roles_become_references_or_plain_code():
    documented = convert.documented_names(INVENTORY)
    # As if written in ganlib/gan.py, where GAN and check_labels live.
    text, changes = convert.convert_text(SOURCE, "ganlib.gan", documented)
    assert "[`GAN`][ganlib.GAN]" in text
    assert "[`Runtime`][ganlib.runtime.Runtime]" in text  # ~ shows the last part
    assert "`ganlib.step`" in text and "[`ganlib.step`]" not in text  # no entry: plain code
    assert "[`the pair`][ganlib.GAN]" in text  # an explicit title is kept
    # :func: inside a class means the module's function, not the method of that name.
    assert "[`check_labels`][ganlib.gan.check_labels]" in text
    assert "`nowhere`" in text and "`DistributedSampler`" in text
    assert not convert.ROLE.search(text)
    assert [line for line, _, _ in changes] == [1, 1, 1, 5, 5, 5, 8, 8]


def test_a_method_role_looks_in_the_enclosing_class_first():
    documented = convert.documented_names(INVENTORY)
    text, _ = convert.convert_text(SOURCE, "ganlib.runtime", documented)
    assert "[`describe`][ganlib.runtime.Runtime.describe]" in text


def test_the_inventory_is_read_with_its_anchors(tmp_path):
    body = (
        "ganlib.GAN py:class 1 api/#$ -\n"
        "ganlib.gan.GAN py:class 2 api/#ganlib.GAN -\n"
        "ganlib.seeding py:module 1 api/#$ -\n"
    )
    path = tmp_path / "objects.inv"
    header = b"# Sphinx inventory version 2\n# Project: x\n# Version: 0\n# zlib follows\n"
    path.write_bytes(header + zlib.compress(body.encode()))
    assert convert.read_inventory(path) == {
        "ganlib.GAN": "ganlib.GAN",
        "ganlib.gan.GAN": "ganlib.GAN",
        "ganlib.seeding": "ganlib.seeding",
    }


def test_check_mode_reports_files_with_roles_left(tmp_path, capsys):
    clean, dirty = tmp_path / "clean.py", tmp_path / "dirty.py"
    clean.write_text('"""[`GAN`][ganlib.GAN]."""\n')
    dirty.write_text('"""See :class:`GAN`."""\n')
    assert convert.main(["--check", str(clean)]) == 0
    assert convert.main(["--check", str(tmp_path)]) == 1
    assert "dirty.py: Sphinx roles left" in capsys.readouterr().out
    assert dirty.read_text() == '"""See :class:`GAN`."""\n'  # --check changes nothing


@pytest.mark.parametrize("path", ["src/ganlib/gan.py", "src/ganlib/data/__init__.py"])
def test_module_names_follow_the_src_layout(path):
    expected = path.removeprefix("src/").removesuffix(".py").removesuffix("/__init__")
    assert convert.module_name(REPO_ROOT / path) == expected.replace("/", ".")
