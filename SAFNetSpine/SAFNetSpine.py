"""SAFNetSpine: level-by-level spine MRI segmentation with SAFNet, correction and local fine-tuning.

Module, Widget, Logic and Test of the scripted module, and nothing else. Long work runs in
child processes (``PythonSlicer -m SAFNetSpineLib ...``, see ``SAFNetSpineJobs``); MRML
conversions live in ``SAFNetSpineMRML``; the network in ``SAFNetSpineLib``.

This file must load on an older Slicer far enough to say which Slicer it needs, so its
top level parses on Python 3.9 and imports the rest only after the version check.
"""

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from SAFNetSpineJobs.compatibility import slicer_problem
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

SLICER_PROBLEM = slicer_problem((slicer.app.majorVersion, slicer.app.minorVersion), sys.version_info,
                                slicer.vtkMRMLColorNode)
if SLICER_PROBLEM is None:
    from SAFNetSpineJobs import commands

    # From the source tree the library sits one folder up; installed, it sits beside this file.
    LIBRARY_ROOT = commands.make_library_importable(Path(__file__).resolve().parent)
    from SAFNetSpineJobs import requirements
    from SAFNetSpineJobs.board import JobBoard
    from SAFNetSpineJobs.choices import MAX_EPOCHS, KeptChoices
    from SAFNetSpineJobs.install import InstallRuns
    from SAFNetSpineJobs.jobs import ChildJob, ProgressUpdate, python_child_environment
    from SAFNetSpineJobs.model_versions import ModelChoice
    from SAFNetSpineJobs.work_folders import WorkFolders, count_stored_cases
    from SAFNetSpineMRML.measurement_nodes import show_measurements
    from SAFNetSpineMRML.segment_runs import (
        MODEL_VERSION_ATTRIBUTE,
        discard_run,
        finish_segmentation,
        prepare_segmentation,
    )
    from SAFNetSpineMRML.segmentation_nodes import labels_from_segmentation
    from SAFNetSpineMRML.self_check import check_label_round_trip
    from SAFNetSpineMRML.volume_nodes import input_volume_problem, volume_from_node
    from SAFNetSpineWidgets.finetune_section import FinetuneSection
    from SAFNetSpineWidgets.levels_section import LevelsSection
    from SAFNetSpineWidgets.measure_section import MeasureSection
    from SAFNetSpineWidgets.models_section import ModelsSection
    from SAFNetSpineWidgets.segment_section import SAMPLE_NAME, SegmentSection
    from SAFNetSpineWidgets.setup_section import SetupSection, slicerInstaller
    from SAFNetSpineWidgets.stores_section import WORK_FOLDER_KEY, StoresSection
else:
    logging.error(SLICER_PROBLEM)

class SAFNetSpine(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SAFNet Spine")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []  # the PyTorch extension is checked when first needed
        self.parent.contributors = ["SAFNetSpine contributors"]
        self.parent.helpText = SLICER_PROBLEM or _(
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
        if SLICER_PROBLEM is None:
            slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Offer the bundled phantom volume in the Sample Data module."""
    import SampleData

    path = commands.sample_volume_path(LIBRARY_ROOT)
    if not path.is_file():
        logging.warning(f"SAFNetSpine sample volume not found: {path}")
        return
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="SAFNetSpine", sampleName=SAMPLE_NAME,
        thumbnailFileName=str(Path(__file__).resolve().parent / "Resources" / "Icons" / "SAFNetSpine.png"),
        uris=path.as_uri(), fileNames=path.name, nodeNames=SAMPLE_NAME,
        # The checksum makes Sample Data refresh its cached copy when the bundled file changes.
        checksums=f"SHA256:{slicer.util.computeChecksum('SHA256', str(path))}", loadFileTypes="VolumeFile",
    )


@parameterNodeWrapper
class SAFNetSpineParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode  # None: Segment creates a new node
    useTestTimeAugmentation: bool = False
    useUprightPasses: bool = False  # segment --turns on
    showResultIn3D: bool = False
    epochs: Annotated[int, WithinRange(0, MAX_EPOCHS)] = 0  # 0: the library scales the schedule to the store


class SAFNetSpineWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self._parameterNode = self._parameterNodeGuiTag = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if SLICER_PROBLEM:
            self.layout.addWidget(qt.QLabel(SLICER_PROBLEM))
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SAFNetSpine.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SAFNetSpineLogic()
        self.logic.installs.on_change = self.updateButtons  # greys out Segment, Fine-tune, Install while pip runs
        self.choices = KeptChoices(slicer.util.settingsValue, lambda key, value: qt.QSettings().setValue(key, value))
        self.jobs = JobBoard(self.logic.startJob)
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.pollJobs)
        self.models = ModelsSection(self.ui, self.logic, self.startJob, self.log)
        self.stores = StoresSection(self.ui, self.logic, self.onStoresChanged, self.log)
        self.setupSection = SetupSection(self.ui, self.logic, self.startJob, self.log)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.segmentSection = SegmentSection(self, registerSampleData)
        self.finetuneSection = FinetuneSection(self)
        self.measureSection = MeasureSection(self)
        self.levelsSection = LevelsSection(self)
        self.initializeParameterNode()
        self.setupSection.updateLabel()
        self.setupSection.detectDevices()
        self.onStoresChanged()

    def cleanup(self):
        if SLICER_PROBLEM is None and self.logic is not None:
            self._timer.stop()  # after Reload the old widget must not poll on
            self.jobs.stop_all(grace_s=2.0)  # Slicer may be exiting: no process, no patient image left behind
            self.levelsSection.stopPlacing()
        self.removeObservers()

    def enter(self):
        if SLICER_PROBLEM is None:
            self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, _caller, _event):
        # Their results belong to nodes about to go; the finish step also refuses nodes no longer in the scene.
        for role in ("segment", "measure"):
            self.jobs.cancel(role)
        self.setParameterNode(None)

    def onSceneEndClose(self, _caller, _event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self.choices.restored:  # choices kept between sessions
            self.choices.restore(self._parameterNode)
            self.updateButtons()
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

    def updateButtons(self, _caller=None, _event=None):
        node = self._parameterNode
        volume = node.inputVolume if node else None
        segmentation = node.outputSegmentation if node else None
        problem = input_volume_problem(volume)
        segmenting, finetuning = self.jobs.busy("segment"), self.jobs.busy("finetune")
        installing = self.logic.installs.running
        self.ui.inputProblemLabel.text = problem if volume is not None and problem else ""
        self.ui.inputProblemLabel.visible = bool(volume is not None and problem)
        self.ui.segmentButton.enabled = problem is None and not segmenting and not installing
        self.ui.segmentButton.toolTip = problem or _("Run SAFNet in a separate process; Slicer stays usable.")
        self.ui.cancelSegmentButton.enabled = segmenting
        ready = segmentation is not None and problem is None and not segmenting
        for button in (self.ui.openSegmentEditorButton, self.ui.saveCaseButton):
            button.enabled = ready
        self.ui.renameLevelsButton.enabled = ready
        self.ui.measureButton.enabled = ready and not self.jobs.busy("measure")
        self.ui.cancelMeasureButton.enabled = self.jobs.busy("measure")
        self.ui.show3DButton.setSegmentationNode(segmentation)
        self.ui.startFinetuneButton.enabled = not finetuning and not installing and self.stores.caseCount > 0
        self.setupSection.updateButtons(installing)
        self.ui.cancelFinetuneButton.enabled = finetuning
        idle = not finetuning and not self.jobs.busy("models")
        self.models.updateButtons(idle)
        self.stores.updateButtons(finetuning, idle)
        if node:
            self.choices.save(node)

    @property
    def parameterNode(self):
        """The panel's parameter node; after Close Scene outside the module, the new scene's one."""
        return self._parameterNode or self.logic.getParameterNode()

    def onStoresChanged(self):
        self.stores.updateCount(self.jobs.busy("finetune"))
        self.updateButtons()
        self.models.refresh()

    def log(self, line):
        self.ui.logTextEdit.appendPlainText(line)

    # --- child processes

    def startJob(self, role, args, done, bar=None, label=None, context=None, queue=False, cleanup=None):
        def show(job, item):
            if isinstance(item, ProgressUpdate) and bar is not None:
                bar.value, label.text = commands.progress_text(item, job.elapsed_s)
            elif not isinstance(item, ProgressUpdate):
                self.log(item)
        try:
            job = self.jobs.start(role, args, done, show, context, queue, cleanup)
        except OSError as error:
            slicer.util.errorDisplay(_("Could not start {role}: {error}").format(role=role, error=error))
            return None
        self._timer.start()
        self.updateButtons()
        return job

    def pollJobs(self):
        running = self.jobs.roles
        if not self.jobs.poll():
            self._timer.stop()
        if self.jobs.roles != running:
            self.updateButtons()


class SAFNetSpineLogic(ScriptedLoadableModuleLogic):
    """Prepares the library's commands and turns their results into MRML nodes and stored cases."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        default = os.path.join(qt.QStandardPaths.writableLocation(qt.QStandardPaths.AppDataLocation), "SAFNetSpine")
        self.workFolder = slicer.util.settingsValue(WORK_FOLDER_KEY, default)
        self.installs = InstallRuns()

    def getParameterNode(self):
        return SAFNetSpineParameterNode(super().getParameterNode())

    @property
    def folders(self):
        return WorkFolders(Path(self.workFolder))

    def pythonExecutable(self):
        """Slicer's own Python launcher, which Slicer puts on PATH (starting a missing one fails with OSError)."""
        import shutil

        return shutil.which("PythonSlicer") or "PythonSlicer"

    def startJob(self, args):
        return ChildJob(args, env=python_child_environment(str(LIBRARY_ROOT)))

    def bundledModels(self):
        folder = LIBRARY_ROOT / "Resources" / "Models" / "safnet-default"
        return [ModelChoice("safnet-default", folder, "bundled", True)] if folder.is_dir() else []

    def levelNames(self):
        from SAFNetSpineLib.labels import STRUCTURES, SUPERIOR_TO_INFERIOR_IDS

        return [STRUCTURES[i].short_name for i in SUPERIOR_TO_INFERIOR_IDS]

    def prepareSegmentation(self, volumeNode, weights, device, tta=False, targetNode=None, turns=False):
        """Write the volume for the child; returns (``segment`` command line, run)."""
        return prepare_segmentation(volumeNode, self.pythonExecutable(), Path(weights) if weights else None, device,
                                    tta, targetNode, slicer.app.temporaryPath, turns)

    def finishSegmentation(self, run):
        """The segmentation node filled from a finished run (the chosen node, or a new one) and its summary."""
        return finish_segmentation(slicer.mrmlScene, run)

    def discardRun(self, run):
        discard_run(run)

    def openSegmentEditor(self, volumeNode, segmentationNode):
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.util.getModuleWidget("SegmentEditor").editor
        editor.setSegmentationNode(segmentationNode)
        editor.setSourceVolumeNode(volumeNode)
        return editor

    def saveCorrectedCase(self, volumeNode, segmentationNode, export, note=""):
        """Add the volume and the exported labels to the case store as a new case; returns its id."""
        from SAFNetSpineLib.stores.case_store import CaseStore  # numpy + SimpleITK only
        from SAFNetSpineLib.stores.patients import pseudonym

        source = segmentationNode.GetAttribute(MODEL_VERSION_ATTRIBUTE) or "manual"
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()  # the patient keeps sibling series in one fold
        item = shNode.GetItemAncestorAtLevel(shNode.GetItemByDataNode(volumeNode), "Patient")
        dicomId = shNode.GetItemAttribute(item, "DICOM.PatientID") if item else ""
        patient = pseudonym(dicomId) if dicomId else (shNode.GetItemName(item) if item else None)
        return CaseStore(self.folders.cases).add(volume_from_node(volumeNode), export.labels, export.reviewed_ids,
                                                 source, note=note, patient_id=patient, patient_source="slicer")

    def showMeasurementNodes(self, measurements, segmentationNode):
        """Table node, height lines and lordosis angle of a measurement (replacing the last ones)."""
        return show_measurements(slicer.mrmlScene, measurements, segmentationNode.GetName())

    def finetuneSummary(self, job):
        if job.last_progress is not None and job.last_progress.stage == "summary":
            return job.last_progress.record.get("summary", {})
        raise ValueError(_("fine-tuning ended without a summary"))

    def dependencyStatus(self):
        return requirements.dependency_status(Path(__file__).resolve().parent / "Resources" / "requirements.txt")

    def ensureDependencies(self, action, askConfirmation=True):
        """True when what ``action`` needs is installed, else install it after asking once."""
        statuses = self.dependencyStatus()
        if not requirements.unmet(statuses, action):
            return True
        if self.installs.declined:
            names = ", ".join(s.text for s in requirements.unmet(statuses, action))
            slicer.util.warningDisplay(_("Not ready: {names}. Use 'Install or update' in the Advanced section "
                                         "when you are ready.").format(names=names))
            return False
        return self.installDependencies(statuses, askConfirmation=askConfirmation)

    def installDependencies(self, statuses, upgradeAll=False, askConfirmation=True):
        """Install missing and update too-old packages (or upgrade all); False (message shown) if not done."""
        return self.installs.install(statuses, slicerInstaller(self.pythonExecutable()), upgradeAll, askConfirmation)


class SAFNetSpineTest(ScriptedLoadableModuleTest):
    """Fast checks always (no install, no network: the extensions dashboard runs these); the full
    segment -> correct -> fine-tune run when PyTorch and MONAI are installed, or with
    ``SAFNETSPINE_FULL_TEST=1`` (installs them first: a local check).

    ``slicer.testing.runUnitTest`` (the ctest) runs every ``test_*`` method and never ``runTest``,
    so each method skips itself when it cannot run; Reload and Test calls ``runTest``.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def _skipReason(self, full=False):
        """Why a test cannot run here (None: it can)."""
        if SLICER_PROBLEM:
            return SLICER_PROBLEM
        if full and not self._fullRequested() and requirements.unmet(SAFNetSpineLogic().dependencyStatus()):
            return "PyTorch/MONAI not installed: full run skipped (set SAFNETSPINE_FULL_TEST=1 to run it)"
        return None

    @staticmethod
    def _fullRequested():
        return os.environ.get("SAFNETSPINE_FULL_TEST") == "1"

    def runTest(self):
        for full, test in ((False, self.test_LabelTableRoundTrip), (True, self.test_SegmentCorrectFinetune)):
            reason = self._skipReason(full)
            if reason:
                self.delayDisplay(reason)
                continue
            self.setUp()
            test()

    def _loadSample(self):
        import SampleData

        registerSampleData()
        volumeNode = SampleData.SampleDataLogic().downloadSample(SAMPLE_NAME)  # a local file: no download
        self.assertIsNotNone(volumeNode)
        return volumeNode

    def test_LabelTableRoundTrip(self):
        if reason := self._skipReason():
            self.skipTest(reason)
        self.delayDisplay("Label table <-> segmentation round trip (no installs)")
        volumeNode = self._loadSample()
        self.assertEqual(check_label_round_trip(slicer.mrmlScene, volumeNode), [])
        statuses = SAFNetSpineLogic().dependencyStatus()
        self.assertEqual(requirements.unmet(statuses, "save_case"), [])  # numpy + SimpleITK come with Slicer
        self.assertEqual(statuses[0].name, "torch")

    def test_SegmentCorrectFinetune(self):
        if reason := self._skipReason(full=True):
            self.skipTest(reason)
        volumeNode = self._loadSample()
        logic = SAFNetSpineLogic()
        logic.workFolder = tempfile.mkdtemp(prefix="SAFNetSpineTest-", dir=slicer.app.temporaryPath)
        if self._fullRequested():
            self.assertTrue(logic.installDependencies(logic.dependencyStatus(), askConfirmation=False))
        self.delayDisplay("Segmenting on CPU (child process)")
        args, run = logic.prepareSegmentation(volumeNode, None, "cpu")
        try:
            job = logic.startJob(args)
            self.assertEqual(job.wait(timeout_s=300), 0, job.log_tail(40))
            segmentation, summary = logic.finishSegmentation(run)
        finally:
            logic.discardRun(run)
        segments = segmentation.GetSegmentation()
        names = [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())]
        self.assertEqual(sorted(names), sorted(s["name"] for s in summary["structures"]))
        self.delayDisplay("Saving corrected cases and fine-tuning one epoch on CPU")
        export = labels_from_segmentation(slicer.mrmlScene, segmentation, volumeNode)
        caseIds = {logic.saveCorrectedCase(volumeNode, segmentation, export, note=f"self-test {i}") for i in range(3)}
        self.assertEqual(len(caseIds), 3)  # a new case every time, never an overwrite
        self.assertEqual(count_stored_cases(logic.folders.cases), 3)
        logic.folders.models.mkdir(parents=True, exist_ok=True)
        job = logic.startJob(commands.finetune_command(logic.pythonExecutable(), logic.folders, 1, "cpu"))
        self.assertEqual(job.wait(timeout_s=480), 0, job.log_tail(40))
        self.assertIn(logic.finetuneSummary(job)["status"], ("promoted", "candidate"))
        self.delayDisplay("Test passed")
