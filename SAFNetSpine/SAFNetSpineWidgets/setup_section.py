"""Python packages (installed versions, Install or update, Upgrade) and the devices the library sees."""

import qt
import slicer
from SAFNetSpineJobs import commands, requirements
from SAFNetSpineJobs.install import Installer
from slicer.i18n import tr as _

#: QSettings keys of the two device choices.
DEVICE_KEYS = ("SAFNetSpine/Device", "SAFNetSpine/FinetuneDevice")


def runChild(args):
    """Run a child of Slicer's Python launcher to its end, its output in the log; raises CalledProcessError."""
    # Slicer's own environment (not the one it was started from), as slicer.util.executePythonModule uses.
    slicer.util.logProcessOutput(slicer.util.launchConsoleProcess(args, useStartupEnvironment=False))


def slicerInstaller(python):
    """The :class:`Installer` made of Slicer's dialogs, child processes and Slicer's pip."""
    return Installer(
        confirm=lambda question: slicer.util.confirmOkCancelDisplay(question, windowTitle=_("SAFNetSpine - install")),
        error=lambda message, details: slicer.util.errorDisplay(message, detailedText=details or None),
        info=slicer.util.infoDisplay, run=runChild, pip_install=slicer.util.pip_install, python=python)


class SetupSection:
    """Args: ui, logic, startJob (the Widget's), log."""

    def __init__(self, ui, logic, startJob, log):
        self.ui, self.logic, self.startJob, self.log = ui, logic, startJob, log
        self._needsInstall = True
        ui.installDependenciesButton.clicked.connect(lambda: self.install(upgradeAll=False))
        ui.upgradeDependenciesButton.clicked.connect(lambda: self.install(upgradeAll=True))
        for combo in (ui.deviceComboBox, ui.finetuneDeviceComboBox):
            combo.connect("currentIndexChanged(int)", self.saveDevices)

    def updateLabel(self):
        statuses = self.logic.dependencyStatus()
        self.ui.dependenciesLabel.text = requirements.status_text(statuses)
        self._needsInstall = bool(requirements.unmet(statuses))
        self.updateButtons(self.logic.installs.running)

    def updateButtons(self, installing):
        """Install and Upgrade are greyed out while an install runs (a second click would start another)."""
        self.ui.installDependenciesButton.enabled = self._needsInstall and not installing
        self.ui.upgradeDependenciesButton.enabled = not installing

    def install(self, upgradeAll):
        self.logic.installDependencies(self.logic.dependencyStatus(), upgradeAll=upgradeAll)
        self.updateLabel()
        self.detectDevices()

    def fillDevices(self, gpuName, torchFound, gpuDevice="cuda"):
        for combo, key in zip((self.ui.deviceComboBox, self.ui.finetuneDeviceComboBox), DEVICE_KEYS, strict=True):
            wanted = slicer.util.settingsValue(key, "auto")
            combo.blockSignals(True)
            combo.clear()
            for value, label in commands.device_labels(gpuName, torchFound, gpuDevice):
                combo.addItem(label, value)
            combo.currentIndex = max(0, combo.findData(wanted))
            combo.blockSignals(False)

    def detectDevices(self):
        """The library names the devices, in a child process: torch is never imported into Slicer."""
        torchFound = requirements.package_status("torch").installed is not None
        self.fillDevices(None, torchFound)
        if torchFound:
            self.startJob("devices", commands.device_probe_command(self.logic.pythonExecutable()), self._showDevices)

    def _showDevices(self, job, context):
        try:
            record = commands.parse_device_probe("\n".join(job.log))
            self.fillDevices(commands.gpu_label(record), True, "mps" if record["auto"] == "mps" else "cuda")
        except ValueError as error:
            self.log(f"device check failed: {error}\n{job.log_tail(5)}")

    def saveDevices(self, *args):
        settings = qt.QSettings()
        for combo, key in zip((self.ui.deviceComboBox, self.ui.finetuneDeviceComboBox), DEVICE_KEYS, strict=True):
            settings.setValue(key, combo.currentData)
