"""Measure: run ``measure`` on the output segmentation in a child process and show the rows."""

import traceback

import qt
import slicer
from SAFNetSpineJobs import commands
from SAFNetSpineMRML.measure_runs import (
    discard_measurement,
    finish_measurement,
    measured_segmentation,
    prepare_measurement,
)
from slicer.i18n import tr as _


class MeasureSection:
    """Args: panel (the module Widget: ui, logic, parameterNode, startJob, jobs)."""

    def __init__(self, panel):
        self.panel, self.ui, self.logic = panel, panel.ui, panel.logic
        self.ui.measureButton.clicked.connect(self.onMeasure)
        self.ui.cancelMeasureButton.clicked.connect(self.onCancel)
        table = self.ui.measurementsTable
        table.setColumnCount(len(commands.MEASUREMENT_COLUMNS))
        table.setHorizontalHeaderLabels([_(title) for _key, title in commands.MEASUREMENT_COLUMNS])
        table.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)

    def onMeasure(self):
        node = self.panel.parameterNode
        try:
            args, run = prepare_measurement(slicer.mrmlScene, node.outputSegmentation, node.inputVolume,
                                            self.logic.pythonExecutable(), slicer.app.temporaryPath)
        except Exception as error:
            slicer.util.errorDisplay(_("Could not start measuring: {error}").format(error=error),
                                     detailedText=traceback.format_exc())
            return
        self.ui.measureStatusLabel.text = _("Measuring ...")
        if self.panel.startJob("measure", args, self._finish, context=run,
                               cleanup=lambda: discard_measurement(run)) is None:
            discard_measurement(run)

    def onCancel(self):
        if self.panel.jobs.cancel("measure", grace_s=5.0):
            self.ui.measureStatusLabel.text = _("Cancelling ...")

    def _finish(self, job, run):
        try:
            if job.cancel_requested:
                self.ui.measureStatusLabel.text = _("Cancelled.")
            elif job.returncode != 0:
                self.ui.measureStatusLabel.text = _("Failed: {log}").format(log=job.log_tail(2))
            else:
                segmentation = measured_segmentation(slicer.mrmlScene, run)
                measurements, rows, summary = finish_measurement(run)
                self.showRows(rows)
                self.ui.measureStatusLabel.text = summary
                self.logic.showMeasurementNodes(measurements, segmentation)
        except Exception as error:
            self.ui.measureStatusLabel.text = _("Failed: {error}").format(error=error)
            slicer.util.errorDisplay(str(error), detailedText=traceback.format_exc())

    def showRows(self, rows):
        table = self.ui.measurementsTable
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(commands.measurement_cells(row)):
                item = qt.QTableWidgetItem(value)
                item.setToolTip(row.get("not_measured", ""))
                table.setItem(r, c, item)
        table.resizeColumnsToContents()
