"""The work folder field, the corrected-case count, and opening or clearing a store folder."""

import os

import qt
import slicer
from SAFNetSpineJobs.work_folders import clear_store, count_stored_cases
from slicer.i18n import tr as _

#: QSettings key of the work folder.
WORK_FOLDER_KEY = "SAFNetSpine/WorkFolder"


def work_folder_changed(typed_path, current_path):
    """True when an edited work-folder path differs from the one in use (and is not empty)."""
    return bool(typed_path) and os.path.normpath(typed_path) != os.path.normpath(current_path)


class StoresSection:
    """Args: ui, logic, onChanged (called after the work folder or a store changed), log."""

    def __init__(self, ui, logic, onChanged, log):
        self.ui, self.logic, self.onChanged, self.log = ui, logic, onChanged, log
        self.caseCount = 0
        # ctkPathLineEdit emits currentPathChanged on every valid keystroke; the stores are
        # read again only when editing ends (Enter or leaving the field), or after Browse.
        pathEdit = ui.workFolderPathLineEdit
        pathEdit.currentPath = logic.workFolder
        self._lineEdit = pathEdit.comboBox().lineEdit()
        self._lineEdit.connect("editingFinished()", self.onEdited)
        pathEdit.connect("currentPathChanged(QString)", self.onPathChanged)
        for name, which, slot in (("openCasesFolderButton", "cases", self.onOpen),
                                  ("clearCasesFolderButton", "cases", self.onClear),
                                  ("openModelsFolderButton", "models", self.onOpen),
                                  ("clearModelsFolderButton", "models", self.onClear)):
            getattr(ui, name).clicked.connect(lambda checked=False, w=which, s=slot: s(w))

    def onPathChanged(self, path):
        if not self._lineEdit.hasFocus():  # the browse button or the history menu, not typing
            self.onEdited()

    def onEdited(self):
        path = self.ui.workFolderPathLineEdit.currentPath
        if not work_folder_changed(path, self.logic.workFolder):
            return  # editingFinished also fires when the field merely loses focus
        self.logic.workFolder = path
        qt.QSettings().setValue(WORK_FOLDER_KEY, path)
        self.onChanged()

    def updateCount(self, finetuning):
        from SAFNetSpineLib.stores.patients import count_patients  # no torch

        self.caseCount = count_stored_cases(self.logic.folders.cases)
        self.ui.storeCountLabel.text = _("{count} case(s) of {patients} patient(s) in {folder}").format(
            count=self.caseCount, patients=count_patients(self.logic.folders.cases), folder=self.logic.folders.cases)
        if not finetuning:
            self.ui.finetuneStatusLabel.text = (
                _("Ready: {count} corrected case(s) in the store.").format(count=self.caseCount)
                if self.caseCount else _("Save at least one corrected case to fine-tune."))

    def onOpen(self, which):
        folder = self.logic.folders.store(which)
        folder.mkdir(parents=True, exist_ok=True)
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(folder)))

    def onClear(self, which):
        folder = self.logic.folders.store(which)
        what = _("every corrected case") if which == "cases" else _("every fine-tuned model version")
        if not folder.exists() or not slicer.util.confirmOkCancelDisplay(
                _("Delete {what} in\n{folder}?\n\nThis cannot be undone.").format(what=what, folder=folder),
                windowTitle=_("SAFNetSpine - delete")):
            return
        try:
            count = clear_store(self.logic.folders, which)
        except (OSError, ValueError) as error:
            slicer.util.errorDisplay(str(error))
            return
        self.log(_("Deleted {folder} ({count} entries).").format(folder=folder, count=count))
        self.onChanged()

    def updateButtons(self, finetuning, modelsIdle):
        self.ui.clearCasesFolderButton.enabled = not finetuning
        self.ui.clearModelsFolderButton.enabled = modelsIdle
