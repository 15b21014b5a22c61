"""Which Python packages the module still needs inside Slicer, and how to say so.

PyTorch comes from the PyTorch extension (``PyTorchUtils``), which picks the CUDA or CPU
build for the machine; the rest comes from ``Resources/requirements.txt`` through
Slicer's pip helpers. Nothing here installs anything: the module asks first.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import socket
from pathlib import Path

#: Minimum PyTorch the library runs with (passed to the PyTorch extension).
TORCH_REQUIREMENT = ">=2.1"


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements file (comments, blanks and pip options skipped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def is_satisfied(requirement: str) -> bool:
    """True if the installed distribution meets ``requirement`` (e.g. ``"monai>=1.4"``)."""
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate():
        return True
    try:
        installed = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return req.specifier.contains(installed, prereleases=True)


def missing_requirements(path: str | Path) -> list[str]:
    """The requirements of ``path`` that are not met."""
    return [r for r in read_requirements(path) if not is_satisfied(r)]


def torch_installed() -> bool:
    """True if ``import torch`` would find a package (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def install_question(torch_missing: bool, missing: list[str]) -> str:
    """The one question asked before installing, listing what will be installed."""
    items = []
    if torch_missing:
        items.append("PyTorch, through the PyTorch extension (the CUDA build when an NVIDIA driver is found, "
                     "otherwise the CPU build; about 1-3 GB)")
    items += missing
    listing = "\n".join(f"  - {item}" for item in items)
    return (
        "SAFNetSpine runs the SAFNet network with these Python packages, which are not installed yet:\n\n"
        f"{listing}\n\nThey are downloaded from the internet into Slicer's own Python (your system Python is "
        "not touched). This takes a few minutes. Install now?"
    )


def offline_message(host: str) -> str:
    """What to tell a user whose machine cannot reach the package index."""
    return (
        f"Cannot reach {host}, so the Python packages SAFNetSpine needs cannot be downloaded. "
        "Connect to the internet and press 'Install or update dependencies' in the Advanced section, "
        "or on an offline machine install from wheel files you copied over: "
        "PythonSlicer -m pip install --no-index --find-links WHEEL_FOLDER torch monai safetensors slicerio"
    )


def can_reach(host: str = "pypi.org", port: int = 443, timeout_s: float = 5.0) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout_s`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
