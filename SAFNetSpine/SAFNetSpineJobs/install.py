"""The install/update decision: what to ask, what to run, what to say, in which order.

The Slicer calls (dialogs, ``PyTorchUtils.installTorch``, ``slicer.util.pip_install``) are
passed in as an :class:`Installer`, so the whole flow runs and is tested in plain Python.
The order follows SlicerTotalSegmentator: check, ask once listing everything, install
PyTorch through the PyTorch extension, then the pip packages with ``--upgrade`` (so an
installed but too old package really is updated), and say when a restart is needed.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

from . import requirements
from .requirements import PackageStatus


@dataclass
class Installer:
    """The Slicer side of installing.

    Attributes:
        confirm: ``confirm(question) -> bool`` (an OK/Cancel dialog).
        error: ``error(message, details)`` (an error dialog).
        info: ``info(message)`` (an information dialog).
        install_torch: ``install_torch(requirement) -> bool`` through the PyTorch extension;
            None when that extension is not installed.
        pip_install: ``pip_install(arguments)``; raises on failure.
    """

    confirm: Callable[[str], bool]
    error: Callable[[str, str], None]
    info: Callable[[str], None]
    install_torch: Callable[[str], bool] | None
    pip_install: Callable[[list[str]], None]


#: Shown when PyTorch is needed but the PyTorch extension is missing.
NO_PYTORCH_EXTENSION = ("SAFNetSpine needs the PyTorch extension. Install 'PyTorch' from the Extensions Manager, "
                        "restart Slicer, and try again.")
#: Shown after an installed PyTorch was replaced by a newer one.
RESTART_AFTER_TORCH = "PyTorch was updated. Restart Slicer before segmenting."


def install_dependencies(statuses: list[PackageStatus], installer: Installer, upgrade_all: bool = False,
                         ask: bool = True) -> bool | None:
    """Install what is missing, update what is too old, or (``upgrade_all``) upgrade every pip package.

    Returns:
        True when done (or nothing was to do), False on failure (the message was shown),
        None when the user declined.
    """
    torch = next(s for s in statuses if s.name == "torch")
    pip_args = requirements.pip_arguments(statuses, upgrade_all=upgrade_all)
    if torch.satisfied and not pip_args:
        return True
    if not torch.satisfied and installer.install_torch is None:
        installer.error(NO_PYTORCH_EXTENSION, "")
        return False
    if ask and not installer.confirm(requirements.install_question(statuses, upgrade_all)):
        return None
    try:
        if not torch.satisfied and not installer.install_torch(requirements.TORCH_REQUIREMENT):
            raise RuntimeError("PyTorch was not installed")
        if pip_args:
            installer.pip_install(pip_args)
    except Exception:
        installer.error(requirements.offline_message(), traceback.format_exc())
        return False
    if torch.installed is not None and not torch.satisfied:
        installer.info(RESTART_AFTER_TORCH)
    return True
