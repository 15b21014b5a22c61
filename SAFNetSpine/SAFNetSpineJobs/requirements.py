"""Which Python packages the module needs inside Slicer, which versions are there, and what to ask.

PyTorch comes from the PyTorch extension (``PyTorchUtils``), which picks the CUDA or CPU
build for the machine; the rest comes from ``Resources/requirements.txt`` through
Slicer's pip helpers. Nothing here installs anything or touches the network: the module
asks first, and pip itself (which honours the proxy settings) reports a failed download.

Versions are read from package metadata (``importlib.metadata``), so checking never
imports torch into Slicer.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

#: Minimum PyTorch the library runs with (passed to the PyTorch extension).
TORCH_REQUIREMENT = ">=2.1"
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


def pip_arguments(statuses: list[PackageStatus], upgrade_all: bool = False) -> list[str]:
    """``pip install`` arguments for the non-torch packages: the unmet ones, or all with ``upgrade_all``.

    ``--upgrade`` is always passed, so an installed but too old package is really updated.
    """
    chosen = [s.requirement for s in statuses if s.name != "torch" and (upgrade_all or not s.satisfied)]
    return ["--upgrade", *chosen] if chosen else []


def status_text(statuses: list[PackageStatus]) -> str:
    """One line for the panel listing every package with its version or what is wrong."""
    return ", ".join(s.text for s in statuses)


def install_question(statuses: list[PackageStatus], upgrade_all: bool = False) -> str:
    """The one question asked before installing, listing each package with what will happen."""
    items = []
    for s in statuses:
        if s.satisfied and not upgrade_all:
            continue
        if s.name == "torch":
            if s.satisfied:
                continue  # the PyTorch extension manages updates of an adequate torch
            verb = "install" if s.installed is None else f"update {s.installed} to"
            items.append(f"PyTorch: {verb} torch{TORCH_REQUIREMENT} through the PyTorch extension (the CUDA build "
                         "when an NVIDIA driver is found, otherwise the CPU build; about 1-3 GB)")
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
