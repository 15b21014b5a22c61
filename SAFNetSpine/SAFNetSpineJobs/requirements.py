"""Which Python packages the module needs inside Slicer, which versions are there, and what to ask.

PyTorch is installed with light-the-torch, as the PyTorch extension does, which picks the
CUDA or CPU build for the machine, but in child processes; the rest comes from
``Resources/requirements.txt`` through Slicer's pip helpers, with a constraints file that
holds torch and Slicer's own numpy, scipy and SimpleITK at their installed versions.
Nothing here installs anything or touches the network: the module asks first, and pip
itself (which honours the proxy settings) reports a failed download.

Versions are read from package metadata (``importlib.metadata``), so checking never
imports torch into Slicer.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

#: Minimum PyTorch the library runs with.
TORCH_REQUIREMENT = ">=2.1"
#: light-the-torch, which picks the CUDA or CPU torch build for the machine (what the PyTorch extension uses).
LIGHT_THE_TORCH = "light-the-torch>=0.5"
#: Packages pip must never replace as a side effect: torch (the PyTorch extension's CUDA or CPU build, shared
#: with other extensions) and what Slicer ships and pins. Installed versions are held with a constraints file.
HELD_PACKAGES = ("torch", "numpy", "scipy", "SimpleITK")
#: What each panel action needs. Saving a corrected case uses only the case store
#: (numpy + SimpleITK, both shipped with Slicer); segmenting and fine-tuning run the network.
NEEDS = {
    "save_case": ("numpy", "SimpleITK"),
    "segment": ("torch", "monai", "safetensors", "slicerio", "scipy"),
    "finetune": ("torch", "monai", "safetensors", "slicerio", "scipy"),
}


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements file (comments, blanks and pip options skipped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


@dataclass(frozen=True)
class PackageStatus:
    """One requirement and what is installed for it.

    Attributes:
        requirement: The requirement text, e.g. ``"monai>=1.4"``.
        name: Its distribution name ("monai").
        installed: The installed version, or None.
        satisfied: True if the installed version meets the requirement (or a marker
            says it is not needed here).
    """

    requirement: str
    name: str
    installed: str | None
    satisfied: bool

    @property
    def text(self) -> str:
        """``"monai 1.5.1"``, ``"torch 2.0.1 (needs >=2.1)"`` or ``"slicerio: not installed"``."""
        if self.installed is None:
            return f"{self.name}: not installed"
        if not self.satisfied:
            return f"{self.name} {self.installed} (needs {self.requirement[len(self.name):].strip()})"
        return f"{self.name} {self.installed}"


def package_status(requirement: str) -> PackageStatus:
    """The installed version of ``requirement``'s package and whether it meets it."""
    from packaging.requirements import Requirement

    importlib.invalidate_caches()  # a pip child may have changed site-packages since the last look
    req = Requirement(requirement)
    try:
        installed = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if req.marker is not None and not req.marker.evaluate():
        return PackageStatus(requirement, req.name, installed, True)
    satisfied = installed is not None and req.specifier.contains(installed, prereleases=True)
    return PackageStatus(requirement, req.name, installed, satisfied)


def is_satisfied(requirement: str) -> bool:
    """True if the installed distribution meets ``requirement`` (e.g. ``"monai>=1.4"``)."""
    return package_status(requirement).satisfied


def dependency_status(requirements_file: str | Path) -> list[PackageStatus]:
    """PyTorch (against :data:`TORCH_REQUIREMENT`) first, then every line of the requirements file."""
    return [package_status(f"torch{TORCH_REQUIREMENT}")] + [
        package_status(r) for r in read_requirements(requirements_file)]


def missing_requirements(path: str | Path) -> list[str]:
    """The requirements of ``path`` that are not met."""
    return [r for r in read_requirements(path) if not is_satisfied(r)]


def unmet(statuses: list[PackageStatus], action: str | None = None) -> list[PackageStatus]:
    """The statuses not satisfied, limited to what ``action`` (a key of :data:`NEEDS`) uses."""
    wanted = None if action is None else {n.lower() for n in NEEDS[action]}
    return [s for s in statuses if not s.satisfied and (wanted is None or s.name.lower() in wanted)]


def _held(status: PackageStatus) -> bool:
    return status.name.lower() in {n.lower() for n in HELD_PACKAGES}


def pip_arguments(statuses: list[PackageStatus], upgrade_all: bool = False) -> list[str]:
    """``pip install`` arguments for the non-torch packages: the unmet ones, or all with ``upgrade_all``.

    ``--upgrade`` is always passed, so an installed but too old package is really updated.
    Upgrade-all leaves the :data:`HELD_PACKAGES` alone (Slicer's own scipy); they are installed
    only when missing or too old.
    """
    chosen = [s.requirement for s in statuses if s.name != "torch" and not s.satisfied]
    if upgrade_all:
        chosen += [s.requirement for s in statuses if s.satisfied and not _held(s)]
    return ["--upgrade", *chosen] if chosen else []


def constraints_text(held: list[PackageStatus]) -> str:
    """A pip constraints file holding every installed, adequate :data:`HELD_PACKAGES` at its version.

    With it pip cannot pull another torch from PyPI over the PyTorch extension's build (a CPU-only
    wheel on Windows) nor replace Slicer's numpy or scipy while installing MONAI; it picks
    versions of the other packages that work with them, or fails and says so.

    Args:
        held: Statuses of the held packages (e.g. :func:`held_statuses`).
    """
    lines = [f"{s.name}=={s.installed}" for s in held if _held(s) and s.installed is not None and s.satisfied]
    return "".join(f"{line}\n" for line in lines)


def held_statuses(statuses: list[PackageStatus]) -> list[PackageStatus]:
    """The held packages as installed now: those in ``statuses`` read again, the others with no requirement."""
    listed = {s.name.lower(): s.requirement for s in statuses}
    return [package_status(listed.get(name.lower(), name)) for name in HELD_PACKAGES]


def torch_install_commands(python: str, requirement: str = TORCH_REQUIREMENT) -> list[list[str]]:
    """The child processes that install torch the way the PyTorch extension does, without importing it here.

    ``PyTorchUtilsLogic.installTorch`` installs light-the-torch, runs it, and then imports torch
    into Slicer to return it. Here its two steps run as children of Slicer's Python launcher,
    and a third child imports the new torch and prints its version (a broken wheel fails here,
    not in the first Segment).
    """
    return [[str(python), "-m", "pip", "install", LIGHT_THE_TORCH],
            [str(python), "-m", "light_the_torch", "install", f"torch{requirement}"],
            [str(python), "-c", "import torch; print('torch', torch.__version__)"]]


def status_text(statuses: list[PackageStatus]) -> str:
    """One line for the panel listing every package with its version or what is wrong."""
    return ", ".join(s.text for s in statuses)


def install_question(statuses: list[PackageStatus], upgrade_all: bool = False) -> str:
    """The one question asked before installing, listing each package with what will happen."""
    items = []
    for s in statuses:
        if s.satisfied and (not upgrade_all or _held(s)):
            continue
        if s.name == "torch":  # an adequate torch is held: the PyTorch extension's module manages its updates
            verb = "install" if s.installed is None else f"update {s.installed} to"
            items.append(f"PyTorch: {verb} torch{TORCH_REQUIREMENT} with light-the-torch, as the PyTorch extension "
                         "does (the CUDA build when an NVIDIA driver is found, otherwise the CPU build; about 1-3 GB)")
        elif s.installed is None:
            items.append(f"{s.requirement}: install")
        else:
            items.append(f"{s.requirement}: update from {s.installed} to the newest release")
    listing = "\n".join(f"  - {item}" for item in items)
    return (
        "SAFNetSpine runs the SAFNet network with these Python packages:\n\n"
        f"{listing}\n\nThey are downloaded from the internet into Slicer's own Python (your system Python is "
        "not touched). This takes a few minutes, and Slicer may ask to restart afterwards. Continue?"
    )


def offline_message() -> str:
    """What to tell a user whose install failed (no network, a proxy, a firewall)."""
    return (
        "The Python packages SAFNetSpine needs could not be downloaded. Check the internet connection "
        "(pip uses the proxy set in the HTTPS_PROXY environment variable), then press 'Install or update' "
        "in the Advanced section; or on an offline machine install from wheel files you copied over: "
        "PythonSlicer -m pip install --no-index --find-links WHEEL_FOLDER torch monai safetensors slicerio scipy"
    )
