"""SAFNetSpine: level-by-level spine MRI segmentation with SAFNet, correction and local fine-tuning.

Module, Widget, Logic and Test of the scripted module. Long work runs in a child
process (``PythonSlicer -m SAFNetSpineLib ...``); MRML conversions live in the
``SAFNetSpineMRML`` package beside this file, the network in ``SAFNetSpineLib``.
"""

import logging
import os
import shutil
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from SAFNetSpineMRML import commands, requirements
from SAFNetSpineMRML.jobs import ChildJob, ProgressUpdate, python_child_environment
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# From the source tree the library sits one folder up; installed, it sits beside this file.
LIBRARY_ROOT = commands.make_library_importable(Path(__file__).resolve().parent)

from SAFNetSpineMRML.segmentation_nodes import labels_from_segmentation, segmentation_from_labels  # noqa: E402
from SAFNetSpineMRML.volume_nodes import (  # noqa: E402
    input_volume_problem,
    read_label_file,
    remove_node,
    volume_from_node,
    write_volume_node,
)

SETTINGS = "SAFNetSpine/"
MODEL_VERSION_ATTRIBUTE = "SAFNetSpine.ModelVersion"


class SAFNetSpine(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SAFNet Spine")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []  # the PyTorch extension is checked when first needed
        self.parent.contributors = ["SAFNetSpine contributors"]
        self.parent.helpText = _(
            "Segments lumbar and lower thoracic spine MRI level by level (S, L5 ... T9 and the discs "
            "L5/S ... T9/T10) with the SAFNet network, on the GPU when PyTorch finds one. Correct the result "
            "in the Segment Editor, save corrected cases, and fine-tune a new model version from them. "
            "Segmentation and fine-tuning run in a separate process, so Slicer stays usable and Cancel "
            "stops them without leaving anything behind."
        )
        self.parent.acknowledgementText = _(
            "The network follows 'A spine segmentation method based on scene aware fusion network', "
            "BMC Neuroscience 24:49 (2023). Label ids follow the MRSpineSeg data set."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Offer the bundled phantom volume in the Sample Data module."""
    import SampleData

    path = commands.sample_volume_path(LIBRARY_ROOT)
    if not path.is_file():
        logging.warning(f"SAFNetSpine sample volume not found: {path}")
        return
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="SAFNetSpine",
        sampleName="SAFNetSpinePhantom",
        thumbnailFileName=str(Path(__file__).resolve().parent / "Resources" / "Icons" / "SAFNetSpine.png"),
        uris=path.as_uri(),
        fileNames=path.name,
        nodeNames="SAFNetSpinePhantom",
        # The checksum makes Sample Data refresh its cached copy when the bundled file changes.
        checksums=f"SHA256:{slicer.util.computeChecksum('SHA256', str(path))}",
        loadFileTypes="VolumeFile",
    )


@parameterNodeWrapper
class SAFNetSpineParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    useTestTimeAugmentation: bool = False
    epochs: Annotated[int, WithinRange(1, 500)] = 10


@dataclass
class SegmentationRun:
    """A running ``segment`` child: its job, the input node and its temporary folder."""

    job: ChildJob
    volumeNodeID: str
    folder: Path
    inputPath: Path


class SAFNetSpineWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._segmentRun = None
        self._finetuneJob = None
        self._modelsJob = None
        self._modelsJobDone = None
        self._models = []
        self._storeCount = 0
        self._settingsApplied = False
        self._refreshAgain = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SAFNetSpine.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SAFNetSpineLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.cancelSegmentButton.connect("clicked(bool)", self.onCancelSegment)
        self.ui.refreshModelsButton.connect("clicked(bool)", self.refreshModels)
        self.ui.openSegmentEditorButton.connect("clicked(bool)", self.onOpenSegmentEditor)
        self.ui.saveCaseButton.connect("clicked(bool)", self.onSaveCase)
        self.ui.startFinetuneButton.connect("clicked(bool)", self.onStartFinetune)
        self.ui.cancelFinetuneButton.connect("clicked(bool)", self.onCancelFinetune)
        self.ui.activateModelButton.connect("clicked(bool)", self.onActivateModel)
        self.ui.rollbackModelButton.connect("clicked(bool)", self.onRollbackModel)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependencies)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.saveSettings)
        self.ui.finetuneDeviceComboBox.connect("currentIndexChanged(int)", self.saveSettings)
        self.ui.workFolderPathLineEdit.currentPath = self.logic.workFolder
        self.ui.workFolderPathLineEdit.connect("currentPathChanged(QString)", self.onWorkFolderChanged)
        self.ui.modelVersionsTable.setColumnCount(5)
        self.ui.modelVersionsTable.setHorizontalHeaderLabels([_("Version"), _("Status"), _("Dice before"),
                                                              _("Dice after"), _("Active")])
        self.ui.modelVersionsTable.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        self.ui.modelVersionsTable.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)

        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.pollJobs)
        self.fillDeviceChoices(None, requirements.torch_installed())
        qt.QTimer.singleShot(0, self.detectDevice)  # importing torch takes seconds: after the panel shows
        self.initializeParameterNode()
        self.updateDependencyLabel()
        self.updateStoreCount()
        self.refreshModels()

    def cleanup(self):
        for job in (self._segmentRun.job if self._segmentRun else None, self._finetuneJob, self._modelsJob):
            if job is not None and not job.finished:
                job.cancel(grace_s=2.0)  # no orphan processes when Slicer closes
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._settingsApplied:  # choices kept between sessions
            self._settingsApplied = True
            epochs = slicer.util.settingsValue(SETTINGS + "Epochs", 10, converter=int)
            self._parameterNode.epochs = min(max(epochs, 1), 500)
            self._parameterNode.useTestTimeAugmentation = slicer.util.settingsValue(
                SETTINGS + "TestTimeAugmentation", False, converter=slicer.util.toBool)
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self.updateButtons()

    # --- state shown in the panel

    def fillDeviceChoices(self, gpuName, torchFound=True):
        for combo, key in ((self.ui.deviceComboBox, "Device"), (self.ui.finetuneDeviceComboBox, "FinetuneDevice")):
            wanted = slicer.util.settingsValue(SETTINGS + key, "auto")
            combo.blockSignals(True)
            combo.clear()
            for value, label in commands.device_labels(gpuName, torchFound):
                combo.addItem(label, value)
            combo.currentIndex = max(0, combo.findData(wanted))
            combo.blockSignals(False)

    def detectDevice(self):
        if requirements.torch_installed():
            self.fillDeviceChoices(self.logic.gpuName())

    def saveSettings(self, *args):
        settings = qt.QSettings()
        settings.setValue(SETTINGS + "Device", self.ui.deviceComboBox.currentData)
        settings.setValue(SETTINGS + "FinetuneDevice", self.ui.finetuneDeviceComboBox.currentData)

    def onWorkFolderChanged(self, path):
        self.logic.workFolder = path
        qt.QSettings().setValue(SETTINGS + "WorkFolder", path)
        self.updateStoreCount()
        self.refreshModels()

    def updateButtons(self, caller=None, event=None):
        node = self._parameterNode
        volume = node.inputVolume if node else None
        segmentation = node.outputSegmentation if node else None
        problem = input_volume_problem(volume)
        segmenting = self._segmentRun is not None
        finetuning = self._finetuneJob is not None
        self.ui.inputProblemLabel.text = problem if volume is not None and problem else ""
        self.ui.inputProblemLabel.visible = bool(volume is not None and problem)
        self.ui.segmentButton.enabled = problem is None and not segmenting
        self.ui.segmentButton.toolTip = problem or _("Run SAFNet in a separate process; Slicer stays usable.")
        self.ui.cancelSegmentButton.enabled = segmenting
        ready = segmentation is not None and problem is None and not segmenting
        self.ui.openSegmentEditorButton.enabled = ready
        self.ui.saveCaseButton.enabled = ready
        self.ui.startFinetuneButton.enabled = not finetuning and self._storeCount > 0
        self.ui.cancelFinetuneButton.enabled = finetuning
        idle = not finetuning and self._modelsJob is None
        self.ui.activateModelButton.enabled = idle and bool(self._models)
        self.ui.rollbackModelButton.enabled = idle and bool(self._models)
        if node and self._settingsApplied:
            settings = qt.QSettings()
            settings.setValue(SETTINGS + "Epochs", node.epochs)
            settings.setValue(SETTINGS + "TestTimeAugmentation", node.useTestTimeAugmentation)

    def updateStoreCount(self):
        self._storeCount = commands.count_stored_cases(self.logic.folders.cases)
        self.ui.storeCountLabel.text = _("{count} in {folder}").format(
            count=self._storeCount, folder=self.logic.folders.cases)
        if not self._finetuneJob:
            self.ui.finetuneStatusLabel.text = (
                _("Ready: {count} corrected case(s) in the store.").format(count=self._storeCount)
                if self._storeCount else _("Save at least one corrected case to fine-tune."))
        self.updateButtons()

    def updateDependencyLabel(self):
        torchMissing, missing = self.logic.missingDependencies()
        names = (["PyTorch"] if torchMissing else []) + missing
        self.ui.dependenciesLabel.text = (
            _("missing: {names} (installed on first use, after asking)").format(names=", ".join(names))
            if names else _("PyTorch, MONAI, safetensors, slicerio: installed"))

    def log(self, line):
        self.ui.logTextEdit.appendPlainText(line)

    # --- segment

    def onSegment(self):
        volume = self._parameterNode.inputVolume
        problem = input_volume_problem(volume)
        if problem:
            slicer.util.errorDisplay(problem)
            return
        if not self.logic.ensureDependencies():
            self.updateDependencyLabel()
            return
        self.updateDependencyLabel()
        weights = self.ui.modelComboBox.currentData
        try:
            self._segmentRun = self.logic.startSegmentation(
                volume, Path(weights) if weights else None, self.ui.deviceComboBox.currentData,
                self._parameterNode.useTestTimeAugmentation)
        except Exception as error:
            slicer.util.errorDisplay(_("Could not start the segmentation: {error}").format(error=error),
                                     detailedText=traceback.format_exc())
            return
        self.ui.segmentProgressBar.value = 0
        self.ui.segmentStatusLabel.text = _("Starting (loading PyTorch and the model) ...")
        self._timer.start()
        self.updateButtons()

    def onCancelSegment(self):
        if self._segmentRun:
            self._segmentRun.job.cancel()
            self.ui.segmentStatusLabel.text = _("Cancelling ...")

    def _showProgress(self, job, bar, label):
        for item in job.poll():
            if isinstance(item, ProgressUpdate):
                bar.value = int(round(100 * item.fraction))
                label.text = f"{item.stage}: {item.message} ({job.elapsed_s:.0f} s)"
            else:
                self.log(item)

    def _finishSegmentation(self):
        run, self._segmentRun = self._segmentRun, None
        job = run.job
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
                self._parameterNode.outputSegmentation = segmentation
                count = segmentation.GetSegmentation().GetNumberOfSegments()
                self.ui.segmentStatusLabel.text = _(
                    "Done: {count} structures in {seconds:.0f} s on {device} with {model}.").format(
                    count=count, seconds=job.elapsed_s, device=summary.get("device", "?"),
                    model=summary.get("model_version", "?"))
        except Exception as error:
            self.ui.segmentStatusLabel.text = _("Failed: {error}").format(error=error)
            slicer.util.errorDisplay(_("Could not load the segmentation result: {error}").format(error=error),
                                     detailedText=traceback.format_exc() + "\n" + job.log_tail(40))
        finally:
            self.logic.discardRun(run)
            self.updateButtons()

    # --- correct and save

    def onOpenSegmentEditor(self):
        self.logic.openSegmentEditor(self._parameterNode.inputVolume, self._parameterNode.outputSegmentation)

    def onSaveCase(self):
        volume, segmentation = self._parameterNode.inputVolume, self._parameterNode.outputSegmentation
        if not self.logic.ensureDependencies():
            return
        try:
            export = labels_from_segmentation(slicer.mrmlScene, segmentation, volume)
            if export.unknown_segments and not slicer.util.confirmOkCancelDisplay(
                    _("These segments match no spine level and will not be saved:\n\n{names}\n\n"
                      "Save the other segments?").format(names="\n".join(export.unknown_segments))):
                return
            caseId = self.logic.saveCorrectedCase(volume, segmentation, export, self.ui.caseNoteLineEdit.text)
        except Exception as error:
            slicer.util.errorDisplay(_("The case was not saved: {error}").format(error=error),
                                     detailedText=traceback.format_exc())
            return
        self.ui.caseNoteLineEdit.text = ""
        self.updateStoreCount()
        skipped = _(" Not saved: {names}.").format(names=", ".join(export.unknown_segments)) \
            if export.unknown_segments else ""
        self.ui.caseStatusLabel.text = _("Saved {case} ({count} reviewed structures); the store holds {total} cases.").format(
            case=caseId, count=len(export.reviewed_ids), total=self._storeCount) + skipped

    # --- fine-tune

    def onStartFinetune(self):
        if not self.logic.ensureDependencies():
            return
        try:
            self._finetuneJob = self.logic.startFinetune(self._parameterNode.epochs,
                                                         self.ui.finetuneDeviceComboBox.currentData)
        except Exception as error:
            slicer.util.errorDisplay(_("Could not start fine-tuning: {error}").format(error=error),
                                     detailedText=traceback.format_exc())
            return
        self.ui.finetuneProgressBar.value = 0
        self.ui.finetuneOutcomeLabel.text = ""
        self.ui.finetuneStatusLabel.text = _("Starting ...")
        self._timer.start()
        self.updateButtons()

    def onCancelFinetune(self):
        if self._finetuneJob:
            self._finetuneJob.cancel(grace_s=30.0)  # lets the library finish its batch and clean up
            self.ui.finetuneStatusLabel.text = _("Cancelling ...")

    def _finishFinetune(self):
        job, self._finetuneJob = self._finetuneJob, None
        if job.cancel_requested or job.returncode == 130:
            self.ui.finetuneStatusLabel.text = _("Cancelled: the case store and the active model are unchanged.")
        elif job.returncode != 0:
            self.ui.finetuneStatusLabel.text = _("Failed (exit code {code}).").format(code=job.returncode)
            slicer.util.errorDisplay(_("Fine-tuning failed. The last lines of its log:") + "\n\n" + job.log_tail(12),
                                     detailedText=job.log_tail(200))
        else:
            self.ui.finetuneStatusLabel.text = _("Finished in {seconds:.0f} s.").format(seconds=job.elapsed_s)
            try:
                self.ui.finetuneOutcomeLabel.text = commands.finetune_outcome_text(self.logic.finetuneSummary(job))
            except ValueError as error:
                self.ui.finetuneOutcomeLabel.text = str(error)
        self.refreshModels()
        self.updateButtons()

    # --- model versions

    def _runModelsJob(self, args, done):
        if self._modelsJob is not None:
            self._refreshAgain = True  # list again once the running models command ends
            return
        self._modelsJob, self._modelsJobDone = self.logic.startJob(args), done
        self._timer.start()
        self.updateButtons()

    def refreshModels(self, *args):
        try:
            self._runModelsJob(commands.models_list_command(self.logic.pythonExecutable(), self.logic.folders),
                               self._showModels)
        except RuntimeError as error:
            self.log(str(error))

    def _showModels(self, job):
        try:
            if job.returncode != 0:
                raise ValueError(job.log_tail(3))
            _active, self._models = commands.parse_models_list("\n".join(job.log))
        except ValueError as error:
            self.log(f"models list failed: {error}")
            self._models = self.logic.bundledModels()
        current = self.ui.modelComboBox.currentText.split(" ")[0]
        self.ui.modelComboBox.clear()
        table = self.ui.modelVersionsTable
        table.setRowCount(len(self._models))
        for row, model in enumerate(self._models):
            self.ui.modelComboBox.addItem(model.label, str(model.folder))
            values = (model.name, model.status, "" if model.dice_before is None else f"{model.dice_before:.3f}",
                      "" if model.dice_after is None else f"{model.dice_after:.3f}", "yes" if model.active else "")
            for column, value in enumerate(values):
                table.setItem(row, column, qt.QTableWidgetItem(value))
        names = [m.name for m in self._models]
        active = [i for i, m in enumerate(self._models) if m.active]
        self.ui.modelComboBox.currentIndex = names.index(current) if current in names else (active or [0])[0]
        table.resizeColumnsToContents()

    def onActivateModel(self):
        row = self.ui.modelVersionsTable.currentRow()
        if row < 0 or row >= len(self._models):
            slicer.util.warningDisplay(_("Select a version in the table first."))
            return
        name = self._models[row].name
        self._runModelsJob(commands.models_activate_command(self.logic.pythonExecutable(), self.logic.folders, name),
                           self._afterModelChange)

    def onRollbackModel(self):
        self._runModelsJob(commands.models_rollback_command(self.logic.pythonExecutable(), self.logic.folders),
                           self._afterModelChange)

    def _afterModelChange(self, job):
        if job.returncode != 0:
            slicer.util.errorDisplay(_("Changing the active model failed:") + "\n\n" + job.log_tail(6))
        else:
            self.log(job.log_tail(1))
        qt.QTimer.singleShot(0, self.refreshModels)

    def onInstallDependencies(self):
        self.logic.ensureDependencies(askConfirmation=True, force=True)
        self.updateDependencyLabel()
        self.detectDevice()

    # --- the one timer that drives every child process

    def pollJobs(self):
        if self._segmentRun:
            self._showProgress(self._segmentRun.job, self.ui.segmentProgressBar, self.ui.segmentStatusLabel)
            if self._segmentRun.job.finished:
                self._finishSegmentation()
        if self._finetuneJob:
            self._showProgress(self._finetuneJob, self.ui.finetuneProgressBar, self.ui.finetuneStatusLabel)
            if self._finetuneJob.finished:
                self._finishFinetune()
        if self._modelsJob:
            self._modelsJob.poll()
            if self._modelsJob.finished:
                job, done = self._modelsJob, self._modelsJobDone
                self._modelsJob = self._modelsJobDone = None
                done(job)
                self.updateButtons()
                if self._refreshAgain:
                    self._refreshAgain = False
                    self.refreshModels()
        if not (self._segmentRun or self._finetuneJob or self._modelsJob):
            self._timer.stop()


class SAFNetSpineLogic(ScriptedLoadableModuleLogic):
    """Starts the library's commands and turns their results into MRML nodes and stored cases."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        default = os.path.join(qt.QStandardPaths.writableLocation(qt.QStandardPaths.AppDataLocation), "SAFNetSpine")
        self.workFolder = slicer.util.settingsValue(SETTINGS + "WorkFolder", default)
        self._declinedInstall = False

    def getParameterNode(self):
        return SAFNetSpineParameterNode(super().getParameterNode())

    @property
    def folders(self):
        return commands.WorkFolders(Path(self.workFolder))

    def pythonExecutable(self):
        """Slicer's own Python (its launcher sets up the environment); Slicer puts it on PATH."""
        python = shutil.which("PythonSlicer")
        if python is None:
            raise RuntimeError(_("PythonSlicer was not found on the PATH of this Slicer"))
        return python

    def startJob(self, args):
        return ChildJob(args, env=python_child_environment(str(LIBRARY_ROOT)))

    def bundledModels(self):
        folder = LIBRARY_ROOT / "Resources" / "Models" / "safnet-default"
        return [commands.ModelChoice("safnet-default", folder, "bundled", True)] if folder.is_dir() else []

    def gpuName(self):
        try:
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
            if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                return "Apple GPU (MPS)"
        except Exception as error:  # a broken torch install must not break the panel
            logging.warning(f"SAFNetSpine: could not query the GPU: {error}")
        return None

    def startSegmentation(self, volumeNode, weights, device, tta=False):
        """Write the volume for the child and start ``segment`` on it; returns a :class:`SegmentationRun`."""
        folder = Path(tempfile.mkdtemp(prefix="SAFNetSpine-", dir=slicer.app.temporaryPath))
        try:
            inputPath = write_volume_node(volumeNode, folder / "input.nrrd")
            args = commands.segment_command(self.pythonExecutable(), inputPath, folder / "out", weights, device, tta)
            return SegmentationRun(self.startJob(args), volumeNode.GetID(), folder, inputPath)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def finishSegmentation(self, run):
        """The segmentation node made from a finished run, and the run's summary JSON."""
        volumeNode = slicer.mrmlScene.GetNodeByID(run.volumeNodeID)
        if volumeNode is None:
            raise ValueError(_("the input volume was removed from the scene while it was segmented"))
        labelPath, summaryPath = commands.result_paths(run.folder / "out", run.inputPath)
        summary = commands.read_json(summaryPath)
        segmentation = segmentation_from_labels(slicer.mrmlScene, read_label_file(labelPath), volumeNode,
                                                slicer.mrmlScene.GenerateUniqueName(f"{volumeNode.GetName()} spine"))
        segmentation.SetAttribute(MODEL_VERSION_ATTRIBUTE, str(summary.get("model_version", "unknown")))
        return segmentation, summary

    def discardRun(self, run):
        shutil.rmtree(run.folder, ignore_errors=True)

    def openSegmentEditor(self, volumeNode, segmentationNode):
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.util.getModuleWidget("SegmentEditor").editor
        editor.setSegmentationNode(segmentationNode)
        editor.setSourceVolumeNode(volumeNode)
        return editor

    def saveCorrectedCase(self, volumeNode, segmentationNode, export, note=""):
        """Add the volume and the exported labels to the case store as a new case; returns its id."""
        from SAFNetSpineLib.finetune import CaseStore

        source = segmentationNode.GetAttribute(MODEL_VERSION_ATTRIBUTE) or "manual"
        return CaseStore(self.folders.cases).add(volume_from_node(volumeNode), export.labels, export.reviewed_ids,
                                                 source, note=note)

    def startFinetune(self, epochs, device):
        self.folders.models.mkdir(parents=True, exist_ok=True)
        args = commands.finetune_command(self.pythonExecutable(), self.folders, epochs, device)
        return self.startJob(args)

    def finetuneSummary(self, job):
        if job.last_progress is not None and job.last_progress.stage == "summary":
            return job.last_progress.record.get("summary", {})
        raise ValueError(_("fine-tuning ended without a summary"))

    def missingDependencies(self):
        requirementsFile = Path(__file__).resolve().parent / "Resources" / "requirements.txt"
        return not requirements.torch_installed(), requirements.missing_requirements(requirementsFile)

    def ensureDependencies(self, askConfirmation=True, force=False):
        """Install what is missing after asking once; False (with a message shown) when not possible."""
        torchMissing, missing = self.missingDependencies()
        if not torchMissing and not missing:
            return True
        if self._declinedInstall and not force:
            names = ", ".join((["PyTorch"] if torchMissing else []) + missing)
            slicer.util.warningDisplay(_("Not installed: {names}. Use 'Install or update dependencies' in the "
                                         "Advanced section when you are ready.").format(names=names))
            return False
        if torchMissing:
            try:
                import PyTorchUtils  # noqa: F401
            except ModuleNotFoundError:
                slicer.util.errorDisplay(_("SAFNetSpine needs the PyTorch extension. Install 'PyTorch' from the "
                                           "Extensions Manager, restart Slicer, and try again."))
                return False
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                requirements.install_question(torchMissing, missing), windowTitle=_("SAFNetSpine - install")):
            self._declinedInstall = True
            return False
        if not requirements.can_reach("pypi.org"):
            slicer.util.errorDisplay(requirements.offline_message("pypi.org"))
            return False
        try:
            with slicer.util.WaitCursor():
                if torchMissing:
                    import PyTorchUtils

                    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                        askConfirmation=False, torchVersionRequirement=requirements.TORCH_REQUIREMENT)
                    if torch is None:
                        raise RuntimeError(_("PyTorch was not installed"))
                if missing:
                    slicer.util.pip_install(missing)
        except Exception as error:
            slicer.util.errorDisplay(_("Installing the Python packages failed: {error}").format(error=error),
                                     detailedText=traceback.format_exc())
            return False
        return True


class SAFNetSpineTest(ScriptedLoadableModuleTest):
    """Segments the bundled phantom on CPU, saves corrected cases and fine-tunes for one epoch."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentCorrectFinetune()

    def test_SegmentCorrectFinetune(self):
        import SampleData
        from SAFNetSpineMRML.volume_nodes import ijk_to_ras

        from SAFNetSpineLib.labels import structure_by_name

        self.delayDisplay("Loading the bundled sample volume")
        registerSampleData()
        volumeNode = SampleData.SampleDataLogic().downloadSample("SAFNetSpinePhantom")
        self.assertIsNotNone(volumeNode)
        self.assertIsNone(input_volume_problem(volumeNode))

        logic = SAFNetSpineLogic()
        logic.workFolder = tempfile.mkdtemp(prefix="SAFNetSpineTest-", dir=slicer.app.temporaryPath)
        self.assertTrue(logic.ensureDependencies(askConfirmation=False))

        self.delayDisplay("Segmenting on CPU (child process)")
        run = logic.startSegmentation(volumeNode, None, "cpu")
        try:
            self.assertEqual(run.job.wait(timeout_s=1800), 0, run.job.log_tail(40))
            segmentation, summary = logic.finishSegmentation(run)
        finally:
            logic.discardRun(run)
        segments = segmentation.GetSegmentation()
        names = [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())]
        self.assertTrue(names)
        self.assertEqual(sorted(names), sorted(s["name"] for s in summary["structures"]))
        self.assertTrue(all(structure_by_name(n) is not None for n in names))
        geometry = segments.GetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
        matrix = [float(v) for v in geometry.split(";")[:16]]
        expected = ijk_to_ras(volumeNode).reshape(-1)
        self.assertTrue(all(abs(a - b) < 1e-6 for a, b in zip(matrix, expected, strict=True)))

        self.delayDisplay("Correcting and saving cases")
        if slicer.util.mainWindow():
            editor = logic.openSegmentEditor(volumeNode, segmentation)
            self.assertEqual(editor.segmentationNode(), segmentation)
            self.assertEqual(editor.sourceVolumeNode(), volumeNode)
        first = segments.GetNthSegment(0)
        first.SetName(f"corrected {first.GetName()}")  # renamed: still mapped through its terminology
        export = labels_from_segmentation(slicer.mrmlScene, segmentation, volumeNode)
        self.assertEqual(len(export.reviewed_ids), len(names))
        self.assertTrue(export.labels.same_grid(volume_from_node(volumeNode)))
        caseIds = {logic.saveCorrectedCase(volumeNode, segmentation, export, note=f"self-test {i}") for i in range(3)}
        self.assertEqual(len(caseIds), 3)  # a new case every time, never an overwrite
        self.assertEqual(commands.count_stored_cases(logic.folders.cases), 3)

        self.delayDisplay("Fine-tuning for one epoch on CPU")
        job = logic.startFinetune(epochs=1, device="cpu")
        self.assertEqual(job.wait(timeout_s=3600), 0, job.log_tail(40))
        outcome = logic.finetuneSummary(job)
        self.assertIn(outcome["status"], ("promoted", "candidate"))
        remove_node(slicer.mrmlScene, segmentation)
        self.delayDisplay("Test passed")
