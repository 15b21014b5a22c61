"""The model selector, the versions table (training data, date, validation Dice) and activate / roll back."""

import qt
import slicer
from SAFNetSpineJobs import commands
from SAFNetSpineJobs.model_versions import TABLE_COLUMNS, parse_models_list
from slicer.i18n import tr as _


class ModelsSection:
    """Args: ui (the panel's widgets), logic, startJob (the Widget's), log (a line to the log)."""

    def __init__(self, ui, logic, startJob, log):
        self.ui, self.logic, self.startJob, self.log = ui, logic, startJob, log
        self.models = []
        table = ui.modelVersionsTable
        table.setColumnCount(len(TABLE_COLUMNS))
        table.setHorizontalHeaderLabels([_(c) for c in TABLE_COLUMNS])
        table.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        table.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        ui.refreshModelsButton.clicked.connect(self.refresh)
        ui.activateModelButton.clicked.connect(self.onActivate)
        ui.rollbackModelButton.clicked.connect(self.onRollback)

    def refresh(self):
        args = commands.models_list_command(self.logic.pythonExecutable(), self.logic.folders)
        self.startJob("models", args, self._show, queue=True)

    def _show(self, job, context):
        try:
            if job.returncode != 0:
                raise ValueError(job.log_tail(3))
            _active, self.models = parse_models_list("\n".join(job.log))
        except ValueError as error:
            self.log(f"models list failed: {error}")
            self.models = self.logic.bundledModels()
        current = self.ui.modelComboBox.currentText.split(" ")[0]
        self.ui.modelComboBox.clear()
        table = self.ui.modelVersionsTable
        table.setRowCount(len(self.models))
        for row, model in enumerate(self.models):
            self.ui.modelComboBox.addItem(model.label, str(model.folder))
            for column, value in enumerate(model.table_row()):
                item = qt.QTableWidgetItem(value)
                item.setToolTip(model.tooltip)
                table.setItem(row, column, item)
        names = [m.name for m in self.models]
        active = [i for i, m in enumerate(self.models) if m.active]
        self.ui.modelComboBox.currentIndex = names.index(current) if current in names else (active or [0])[0]
        table.resizeColumnsToContents()

    def onActivate(self):
        row = self.ui.modelVersionsTable.currentRow()
        if row < 0 or row >= len(self.models):
            slicer.util.warningDisplay(_("Select a version in the table first."))
            return
        python = self.logic.pythonExecutable()
        self.startJob("models", commands.models_activate_command(python, self.logic.folders, self.models[row].name),
                      self._afterChange, queue=True)

    def onRollback(self):
        args = commands.models_rollback_command(self.logic.pythonExecutable(), self.logic.folders)
        self.startJob("models", args, self._afterChange, queue=True)

    def _afterChange(self, job, context):
        if job.returncode != 0:
            slicer.util.errorDisplay(_("Changing the active model failed:") + "\n\n" + job.log_tail(6))
        else:
            self.log(job.log_tail(1))
        qt.QTimer.singleShot(0, self.refresh)

    def updateButtons(self, idle):
        for button in (self.ui.activateModelButton, self.ui.rollbackModelButton):
            button.enabled = idle and bool(self.models)
