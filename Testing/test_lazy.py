"""lazy_attributes: package names that import their module on first use."""

import subprocess
import sys

import pytest

from SAFNetSpineLib.lazy import lazy_attributes


def test_a_listed_name_comes_from_its_submodule_and_others_raise():
    getattr_ = lazy_attributes("SAFNetSpineLib.io", {"check_size": "validation"})
    from SAFNetSpineLib.io.validation import check_size

    assert getattr_("check_size") is check_size
    with pytest.raises(AttributeError, match="no attribute 'read_volume'"):
        getattr_("read_volume")


def test_importing_the_packages_loads_neither_torch_nor_simpleitk():
    code = ("import sys, SAFNetSpineLib.io, SAFNetSpineLib.preprocessing, SAFNetSpineLib.training, "
            "SAFNetSpineLib.inference; print(sorted({'torch', 'SimpleITK'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
