"""A plain (non-editable) ``pip install .`` ships the bundled weights and the sample, and segments.

The slow test installs a copy of the package into a fresh venv in a temporary folder, offline
(``--no-deps --no-build-isolation``: the dependencies come from this venv's site-packages through
a path file, which does not run this venv's editable hook), then runs the command line and the
notebook lines from a folder outside the source tree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig
import tomllib
import venv
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_package_list_names_every_subpackage_and_the_resources():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "SAFNetSpineLib").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
    resources = {"SAFNetSpineLib.resources", "SAFNetSpineLib.resources.Models", "SAFNetSpineLib.resources.SampleData"}
    assert listed - found == resources
    assert PYPROJECT["tool"]["setuptools"]["package-dir"]["SAFNetSpineLib.resources"] == "Resources"
    data = {f"{package.split('.')[-1]}/{pattern}" for package, patterns
            in PYPROJECT["tool"]["setuptools"]["package-data"].items() for pattern in patterns}
    for pattern in data:
        assert list((REPO / "Resources").glob(pattern)), pattern
    for needed in ("Models/safnet-default/model.json", "Models/safnet-default/model.safetensors",
                   "Models/safnet-default/README.md", "SampleData/SAFNetSpinePhantom.nii.gz"):
        assert (REPO / "Resources" / needed).is_file() and any(fnmatch(needed, p) for p in data), needed


def _source_copy(target: Path) -> Path:
    """The files a build needs, copied (building in the shared tree would leave build/ behind)."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, target / name)
    shutil.copytree(REPO / "SAFNetSpineLib", target / "SAFNetSpineLib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for sub in ("Models", "SampleData"):
        shutil.copytree(REPO / "Resources" / sub, target / "Resources" / sub)
    return target


@pytest.mark.slow
def test_a_non_editable_install_segments_outside_the_source_tree(tmp_path):
    (tmp_path / "src").mkdir()
    source = _source_copy(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)  # pip and setuptools come from this venv, through the path file
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps-from-dev-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    built = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                            str(source)], cwd=tmp_path, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    shutil.rmtree(source)  # nothing may still point into the copy it was built from
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([python, "-c", "import SAFNetSpineLib as sp; print(sp.__file__); "
                            "print(sp.default_weights_dir()); print(sp.sample_path())"],
                           capture_output=True, text=True, check=True, cwd=work).stdout.split()
    assert all(Path(p).is_relative_to(site) and Path(p).exists() for p in where), where
    done = subprocess.run([python, "-m", "SAFNetSpineLib", "segment", where[2], "-o", "out", "--device", "cpu",
                           "--progress", "none", "--measure"], capture_output=True, text=True, cwd=work)
    assert done.returncode == 0, done.stderr
    summary = json.loads((work / "out" / "SAFNetSpinePhantom_seg.json").read_text())
    assert summary["model_version"] == "safnet-default" and len(summary["structures"]) >= 10
    assert (work / "out" / "SAFNetSpinePhantom_measurements.json").is_file()
    lines = ("import SAFNetSpineLib as sp\n"
             "result = sp.segment(sp.sample_path(), device='cpu')\n"
             "print(result.naming.naming['status'], len(result.volumes_ml))\n"
             "m = sp.measure(result.labels)\n"
             "print(len(m['vertebrae']))\n")
    out = subprocess.run([python, "-c", lines], capture_output=True, text=True, check=True, cwd=work).stdout.split()
    assert int(out[1]) >= 10 and int(out[2]) >= 5
