"""Cancel through a launcher: the real Python gets its grace period and cleans up (issue 13, defect 1).

In an installed Slicer the child process is ``PythonSlicer``, a CTK launcher that starts
``python-real`` and installs no signal handler, so SIGTERM ends the launcher at once. The
stand-in here is the same shape: a parent Python process that starts the real child
(``python -m SAFNetSpineLib finetune ...``) and either dies on SIGTERM (the CTK launcher)
or ignores it (a launcher with a handler). Either way the library's "finish the batch and
clean up" must run: the run reports "cancelled" and no ``.tmp-finetune-*`` folder is left.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from run_fixtures import tiny_case_store, tiny_weights
from SAFNetSpineJobs import commands
from SAFNetSpineJobs.jobs import ChildJob, ProgressUpdate, python_child_environment
from SAFNetSpineJobs.work_folders import WorkFolders

pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals and process groups")

REPO = Path(__file__).resolve().parents[2]

LAUNCHER = textwrap.dedent("""\
    import signal, subprocess, sys
    if sys.argv[1] == "ignores-term":
        signal.signal(signal.SIGTERM, lambda *_: None)  # a handler, not SIG_IGN: exec resets it for the child
    sys.exit(subprocess.call(sys.argv[2:]))  # same process group, output inherited, like ctkAppLauncher
""")


def _pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _python_children(pid: int) -> list[int]:
    """Child pids of ``pid`` (from /proc, no psutil)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("launcher_mode", ["dies-on-term", "ignores-term"])
def test_finetune_cancelled_through_a_launcher_cleans_up(tmp_path, launcher_mode):
    folders = WorkFolders(tmp_path / "work")
    tiny_case_store(folders.cases)
    folders.models.mkdir(parents=True)
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    real = commands.finetune_command(sys.executable, folders, 200, "cpu", from_weights=tiny_weights(tmp_path / "w"))
    env = python_child_environment(str(REPO))
    env["OMP_NUM_THREADS"] = "1"
    job = ChildJob([sys.executable, str(launcher), launcher_mode, *real], env=env)
    deadline = time.monotonic() + 240
    while not (job.last_progress and job.last_progress.stage == "train"):
        job.poll()
        assert not job.finished, job.log_tail(20)
        assert time.monotonic() < deadline, "fine-tuning never reached training"
        time.sleep(0.05)
    work = [p.name for p in folders.models.iterdir()]
    assert any(name.startswith(".tmp-finetune-") for name in work), work  # the run is really under way
    real_pids = _python_children(job.process.pid)
    assert real_pids, "the launcher has no child"

    job.cancel(grace_s=120.0)
    stages = []
    while not job.finished:
        stages += [i.stage for i in job.poll() if isinstance(i, ProgressUpdate)]
        assert time.monotonic() < deadline + 180, "cancel did not end the run"
        time.sleep(0.05)

    assert "cancelled" in stages, job.log_tail(20)  # the library's handler ran: not a SIGKILL
    assert "unchanged" in job.log_tail(20)
    assert list(folders.models.iterdir()) == []  # no .tmp-finetune-*, no half version, no active pointer
    assert not any(_pid_alive(pid) for pid in real_pids)
