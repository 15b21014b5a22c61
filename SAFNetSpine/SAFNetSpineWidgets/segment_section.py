"""Segment (input, sample, model, output, progress, naming status) and Correct and save."""

import traceback

import slicer
from SAFNetSpineJobs import commands
from SAFNetSpineMRML.segmentation_nodes import labels_from_segmentation, show_in_3d
from slicer.i18n import tr as _

#: Sample Data name of the bundled phantom volume.
SAMPLE_NAME = "SAFNetSpinePhantom"


class SegmentSection:
    """Args: panel (the module Widget: ui, logic, parameterNode, startJob, jobs, stores, setupSection)."""

    def __init__(self, panel, registerSampleData):
        self.panel, self.ui, self.logic = panel, panel.ui, panel.logic
        self.registerSampleData = registerSampleData
        for name, slot in (("segmentButton", self.onSegment), ("cancelSegmentButton", self.onCancelSegment),
                           ("loadSampleButton", self.onLoadSample),
                           ("openSegmentEditorButton", self.onOpenSegmentEditor), ("saveCaseButton", self.onSaveCase)):
            getattr(self.ui, name).clicked.connect(slot)

    def onLoadSample(self):
        import SampleData

        self.registerSampleData()
        self.panel.parameterNode.inputVolume = SampleData.SampleDataLogic().downloadSample(SAMPLE_NAME)

    def onSegment(self):
        volume, target = self.panel.parameterNode.inputVolume, self.panel.parameterNode.outputSegmentation
        if not self.logic.ensureDependencies("segment"):
            return self.panel.setupSection.updateLabel()
        try:
            args, run = self.logic.prepareSegmentation(volume, self.ui.modelComboBox.currentData,
                                                       self.ui.deviceComboBox.currentData,
                                                       self.panel.parameterNode.useTestTimeAugmentation, target,
                                                       self.panel.parameterNode.useUprightPasses)
        except Exception as error:
            return slicer.util.errorDisplay(_("Could not start the segmentation: {error}").format(error=error),
                                            detailedText=traceback.format_exc())
        self.ui.segmentProgressBar.value = 0
        self.ui.segmentStatusLabel.text = _("Starting (loading PyTorch and the model) ...")
        self.ui.namingStatusLabel.text = ""
        if self.panel.startJob("segment", args, self._finishSegmentation, self.ui.segmentProgressBar,
                                self.ui.segmentStatusLabel, run, cleanup=lambda: self.logic.discardRun(run)) is None:
            self.logic.discardRun(run)

    def onCancelSegment(self):
        if self.panel.jobs.cancel("segment"):
            self.ui.segmentStatusLabel.text = _("Cancelling ...")

    def _finishSegmentation(self, job, run):
        try:
            if job.cancel_requested:
                self.ui.segmentStatusLabel.text = _("Cancelled: nothing was added to the scene.")
                self.ui.segmentProgressBar.value = 0
            elif job.returncode != 0:
                self.ui.segmentStatusLabel.text = _("Failed (exit code {code}).").format(code=job.returncode)
                slicer.util.errorDisplay(_("Segmentation failed. The last lines of its log:") + "\n\n"
                                         + job.log_tail(12), detailedText=job.log_tail(200))
            else:
                segmentation, summary = self.logic.finishSegmentation(run)
                self.panel.parameterNode.outputSegmentation = segmentation
                self.ui.segmentStatusLabel.text = commands.segment_done_text(
                    summary, segmentation.GetSegmentation().GetNumberOfSegments(), job.elapsed_s)
                naming, uncertain = commands.naming_text(summary)
                self.ui.namingStatusLabel.text = naming
                self.ui.namingStatusLabel.styleSheet = "color: #c0392b;" if uncertain else ""
                if self.panel.parameterNode.showResultIn3D:
                    show_in_3d(segmentation)
                if uncertain:
                    self.panel.levelsSection.askAfterUncertainNaming(summary["naming"].get("reason", ""))
        except Exception as error:
            self.ui.segmentStatusLabel.text = _("Failed: {error}").format(error=error)
            slicer.util.errorDisplay(_("Could not load the segmentation result: {error}").format(error=error),
                                     detailedText=traceback.format_exc() + "\n" + job.log_tail(40))

    def onOpenSegmentEditor(self):
        self.logic.openSegmentEditor(self.panel.parameterNode.inputVolume, self.panel.parameterNode.outputSegmentation)

    def onSaveCase(self):
        volume, segmentation = self.panel.parameterNode.inputVolume, self.panel.parameterNode.outputSegmentation
        if not self.logic.ensureDependencies("save_case"):  # numpy + SimpleITK: come with Slicer
            return
        try:
            export = labels_from_segmentation(slicer.mrmlScene, segmentation, volume)
            if export.unknown_segments and not slicer.util.confirmOkCancelDisplay(
                    _("These segments match no spine level and will not be saved:\n\n{names}\n\n"
                      "Save the other segments?").format(names="\n".join(export.unknown_segments))):
                return
            caseId = self.logic.saveCorrectedCase(volume, segmentation, export, self.ui.caseNoteLineEdit.text)
        except Exception as error:
            return slicer.util.errorDisplay(_("The case was not saved: {error}").format(error=error),
                                            detailedText=traceback.format_exc())
        self.ui.caseNoteLineEdit.text = ""
        self.panel.stores.updateCount(self.panel.jobs.busy("finetune"))
        skipped = _(" Not saved: {names}.").format(names=", ".join(export.unknown_segments)) \
            if export.unknown_segments else ""
        self.ui.caseStatusLabel.text = _("Saved {case} ({count} reviewed structures); the store holds {total} cases.").format(
            case=caseId, count=len(export.reviewed_ids), total=self.panel.stores.caseCount) + skipped
