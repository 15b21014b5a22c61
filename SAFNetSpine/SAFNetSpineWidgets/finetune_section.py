"""Fine-tune: start, cancel, progress and the outcome (promoted or kept as a candidate, and why)."""

import slicer
from SAFNetSpineJobs import commands
from slicer.i18n import tr as _


class FinetuneSection:
    """Args: panel (the module Widget: ui, logic, parameterNode, startJob, jobs, models, setupSection)."""

    def __init__(self, panel):
        self.panel, self.ui, self.logic = panel, panel.ui, panel.logic
        self.ui.startFinetuneButton.clicked.connect(self.onStartFinetune)
        self.ui.cancelFinetuneButton.clicked.connect(self.onCancelFinetune)

    def onStartFinetune(self):
        if not self.logic.ensureDependencies("finetune"):
            return self.panel.setupSection.updateLabel()
        self.logic.folders.models.mkdir(parents=True, exist_ok=True)
        args = commands.finetune_command(self.logic.pythonExecutable(), self.logic.folders, self.panel.parameterNode.epochs,
                                         self.ui.finetuneDeviceComboBox.currentData)
        self.ui.finetuneProgressBar.value = 0
        self.ui.finetuneOutcomeLabel.text = ""
        self.ui.finetuneStatusLabel.text = _("Starting ...")
        self.panel.startJob("finetune", args, self._finishFinetune, self.ui.finetuneProgressBar,
                       self.ui.finetuneStatusLabel)

    def onCancelFinetune(self):
        if self.panel.jobs.cancel("finetune", grace_s=30.0):  # lets the library finish its batch and clean up
            self.ui.finetuneStatusLabel.text = _("Cancelling (finishing the current batch) ...")

    def _finishFinetune(self, job, context):
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
        self.panel.models.refresh()

