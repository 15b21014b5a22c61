"""The install/update decision: what to ask, what to run, what to say, in which order.

The Slicer calls (dialogs, running a child of Slicer's Python launcher, ``slicer.util.pip_install``)
are passed in as an :class:`Installer`, so the whole flow runs and is tested in plain Python.
The order follows SlicerTotalSegmentator: check, ask once listing everything, install
PyTorch (light-the-torch in child processes, as the PyTorch extension does, so torch is never
imported into Slicer), then the pip packages with ``--upgrade`` (so an installed but too old
package really is updated) under a constraints file that holds torch and Slicer's own
packages, and say when a restart is needed. :class:`InstallRuns` allows one install at a time.
"""

from __future__ import annotations

import os
import tempfile
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
        run: ``run(command_line)`` runs a child process to its end, showing its output;
            raises on a non-zero exit.
        pip_install: ``pip_install(arguments)``; raises on failure.
        python: Slicer's Python launcher (``PythonSlicer``).
    """

    confirm: Callable[[str], bool]
    error: Callable[[str, str], None]
    info: Callable[[str], None]
    run: Callable[[list[str]], None]
    pip_install: Callable[[list[str]], None]
    python: str = "PythonSlicer"


#: Shown after an installed PyTorch was replaced by a newer one.
RESTART_AFTER_TORCH = "PyTorch was updated. Restart Slicer before segmenting."
#: Shown when an install is asked for while one runs (a second click while pip's output is shown).
ALREADY_INSTALLING = "Python packages are being installed. Wait until that has finished."


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
    if ask and not installer.confirm(requirements.install_question(statuses, upgrade_all)):
        return None
    try:
        if not torch.satisfied:
            for command in requirements.torch_install_commands(installer.python):
                installer.run(command)
            if not requirements.package_status(torch.requirement).satisfied:
                raise RuntimeError(f"PyTorch was not installed ({torch.requirement} not found afterwards)")
        if pip_args:
            _pip_install_holding(installer, pip_args, requirements.held_statuses(statuses))
    except Exception:
        installer.error(requirements.offline_message(), traceback.format_exc())
        return False
    if torch.installed is not None and not torch.satisfied:
        installer.info(RESTART_AFTER_TORCH)
    return True


def _pip_install_holding(installer: Installer, pip_args: list[str], held: list[PackageStatus]) -> None:
    """``pip install -c CONSTRAINTS ARGS`` with the held packages pinned; the constraints file is removed after."""
    handle, path = tempfile.mkstemp(prefix="SAFNetSpine-constraints-", suffix=".txt")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(requirements.constraints_text(held))
        # "-c FILE" in the arguments is what constraints= of slicer.packaging.pip_install (Slicer 5.12)
        # adds; as arguments it reaches pip through every Slicer's pip_install.
        installer.pip_install(["-c", path, *pip_args])
    finally:
        os.unlink(path)


@dataclass
class InstallRuns:
    """One install at a time, and whether the user declined one.

    Slicer shows pip's output while it installs and processes GUI events meanwhile, so a
    second click on Segment or Install could start a second install inside the first.

    Attributes:
        running: True while an install runs.
        declined: True after the user declined the install question.
        on_change: Called when ``running`` changes (the panel greys out its buttons).
    """

    running: bool = False
    declined: bool = False
    on_change: Callable[[], None] | None = None

    def install(self, statuses: list[PackageStatus], installer: Installer, upgrade_all: bool = False,
                ask: bool = True) -> bool:
        """:func:`install_dependencies`, refused (message shown, False) while another runs."""
        if self.running:
            installer.error(ALREADY_INSTALLING, "")
            return False
        self._set_running(True)
        try:
            done = install_dependencies(statuses, installer, upgrade_all=upgrade_all, ask=ask)
        finally:
            self._set_running(False)
        self.declined = done is None
        return bool(done)

    def _set_running(self, running: bool) -> None:
        self.running = running
        if self.on_change is not None:
            self.on_change()
