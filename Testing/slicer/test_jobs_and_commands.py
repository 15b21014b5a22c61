"""Child-process jobs (progress lines, exit codes, cancelling the whole tree) and CLI command lines."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from SAFNetSpineJobs import commands
from SAFNetSpineJobs.jobs import ChildJob, ProgressUpdate, parse_progress_line, python_child_environment
from SAFNetSpineJobs.model_versions import ModelChoice, parse_models_list
from SAFNetSpineJobs.work_folders import WorkFolders

from SAFNetSpineLib.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_parse_progress_line_accepts_only_progress_records():
    update = parse_progress_line('{"stage": "inference", "fraction": 0.42, "message": "fold 1 of 2"}')
    assert update == ProgressUpdate("inference", 0.42, "fold 1 of 2", update.record)
    assert parse_progress_line('{"stage": "x", "fraction": 7}').fraction == 1.0
    for line in ("plain text", "{not json}", '{"stage": "x"}', '{"fraction": 0.5}', "[1, 2]", ""):
        assert parse_progress_line(line) is None


def test_job_hands_out_progress_and_log_in_order_and_exit_code(tmp_path):
    job = ChildJob(_script(tmp_path, """
        import json, sys
        print(json.dumps({"stage": "read", "fraction": 0.1, "message": "reading"}), flush=True)
        print("warning: something odd", file=sys.stderr, flush=True)
        print(json.dumps({"stage": "summary", "fraction": 1.0, "message": "done", "summary": {"dice_after": 0.9}}))
        sys.exit(3)
    """))
    items = []
    deadline = time.monotonic() + 30
    while not job.finished and time.monotonic() < deadline:
        items += job.poll()
        time.sleep(0.01)
    assert job.returncode == 3
    assert [i.stage if isinstance(i, ProgressUpdate) else i for i in items] == [
        "read", "warning: something odd", "summary"]
    assert job.last_progress.record["summary"] == {"dice_after": 0.9}
    assert job.log_tail() == "warning: something odd"


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
@pytest.mark.parametrize("grandchild_ignores_term", [False, True])
def test_cancel_ends_the_whole_process_tree(tmp_path, grandchild_ignores_term):
    pid_file = tmp_path / "grandchild.pid"
    grandchild = "import signal, time\n"
    if grandchild_ignores_term:
        grandchild += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    grandchild += "time.sleep(120)\n"
    job = ChildJob(_script(tmp_path, f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {grandchild!r}])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("ready", flush=True)
        time.sleep(120)
    """))
    deadline = time.monotonic() + 30
    while "ready" not in job.log and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.01)
    grandchild_pid = int(pid_file.read_text())
    started = time.monotonic()
    job.cancel(grace_s=0.5)
    assert job.wait(timeout_s=20) != 0
    assert job.cancel_requested
    # the grandchild (reparented to init once its parent died) must be gone too
    while time.monotonic() - started < 20:
        try:
            os.kill(grandchild_pid, 0)
        except ProcessLookupError:
            break
        if _is_zombie(grandchild_pid):
            break
        time.sleep(0.05)
    else:
        pytest.fail("grandchild process survived cancel")


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_command_lines_parse_with_the_library_cli(tmp_path):
    python = sys.executable
    folders = WorkFolders(tmp_path / "work")
    parser = build_parser()
    for command in (
        commands.segment_command(python, tmp_path / "in.nrrd", tmp_path / "out", tmp_path / "w", "cuda", tta=True),
        commands.segment_command(python, tmp_path / "in.nrrd", tmp_path / "out", None, "auto"),
        commands.finetune_command(python, folders, 1, "cpu", summary=tmp_path / "s.json"),
        commands.finetune_command(python, folders, 5, "auto", from_weights=tmp_path / "w"),
        commands.models_list_command(python, folders),
        commands.models_activate_command(python, folders, "safnet-v2"),
        commands.models_rollback_command(python, folders),
    ):
        assert command[:3] == [python, "-m", "SAFNetSpineLib"]
        args = parser.parse_args(command[3:])
        assert callable(args.func)
    segment = parser.parse_args(commands.segment_command(python, Path("a.nrrd"), Path("o"), Path("w"), "cpu", True)[3:])
    assert (segment.device, segment.tta, segment.progress, segment.weights) == ("cpu", True, "json", [Path("w")])
    assert segment.turns == "off"  # the library's default unless the panel asks
    turned = parser.parse_args(commands.segment_command(python, Path("a.nrrd"), Path("o"), None, "cpu", turns=True)[3:])
    assert turned.turns == "on" and not turned.tta
    finetune = parser.parse_args(commands.finetune_command(python, folders, 3, "cuda")[3:])
    assert (finetune.store, finetune.models, finetune.epochs) == (folders.cases, folders.models, 3)


def test_result_paths_follow_the_segment_command_naming(tmp_path):
    label, summary = commands.result_paths(tmp_path, tmp_path / "Patient 7.nrrd")
    assert label == tmp_path / "Patient 7_seg.nii.gz" and summary == tmp_path / "Patient 7_seg.json"


def test_models_list_runs_as_a_child_and_parses(tmp_path):
    folders = WorkFolders(tmp_path / "work")
    job = ChildJob(commands.models_list_command(sys.executable, folders), env=python_child_environment(str(REPO)))
    assert job.wait(timeout_s=120) == 0, job.log_tail()
    active, versions = parse_models_list("\n".join(job.log))
    # a fresh models folder: only the bundled default, and it is the active one
    assert all(v.status == "bundled" for v in versions)
    assert [v.name for v in versions if v.active] == ([active] if versions else [])
    with pytest.raises(ValueError):
        parse_models_list("error: no such folder")
    noisy = "UserWarning: something\n" + '{"active": "m-v1", "versions": [{"name": "m-v1", "path": "x", ' \
        '"status": "promoted", "active": true}]}\nanother warning'
    assert parse_models_list(noisy)[0] == "m-v1"


def test_model_choice_label_marks_active_and_dice():
    choice = ModelChoice("safnet-v2", Path("m"), "promoted", True, 0.8, 0.8123)
    assert choice.label == "safnet-v2 (promoted, Dice 0.812) - active"
    assert ModelChoice("safnet-default", Path("d"), "bundled", False).label == "safnet-default (bundled)"


def test_library_root_in_source_and_installed_layouts(tmp_path):
    assert commands.library_root(REPO / "SAFNetSpine") == REPO
    installed = tmp_path / "lib" / "Slicer-5.12" / "qt-scripted-modules"
    (installed / "SAFNetSpineLib").mkdir(parents=True)
    (installed / "SAFNetSpineLib" / "__init__.py").write_text("")
    assert commands.library_root(installed) == installed
    with pytest.raises(FileNotFoundError):
        commands.library_root(tmp_path / "elsewhere")


def test_finetune_outcome_text_says_what_happened_and_why():
    text = commands.finetune_outcome_text({
        "version": "safnet-v3", "status": "candidate", "dice_before": 0.80, "dice_after": 0.78,
        "reason": "validation Dice dropped by 0.020", "train_cases": ["a", "b"], "val_cases": ["c"],
    })
    assert text.startswith("safnet-v3: kept as a candidate")
    assert "0.800 -> 0.780 (-0.020)" in text and "dropped" in text and "2 case(s)" in text
    assert "promoted to the active model" in commands.finetune_outcome_text({"status": "promoted"})


def test_finetune_summary_line_round_trips_into_the_outcome_text():
    """The exact record `finetune --progress json` prints last, parsed and worded as the panel does."""
    import io
    from pathlib import Path as P

    from SAFNetSpineLib.finetune import FinetuneResult
    from SAFNetSpineLib.progress import Progress

    result = FinetuneResult(
        version="safnet-v2", folder=P("models/safnet-v2"), promoted=False, status="candidate",
        reason="validation Dice fell by 0.012 (0.812 -> 0.800); kept as a candidate",
        dice_before=0.812, dice_after=0.8, dice_per_structure_before={3: 0.9}, dice_per_structure_after={3: 0.88},
        parent="safnet-default", parent_folder=P("Resources/Models/safnet-default"),
        train_cases=["a", "b", "c"], val_cases=["d"], epochs_run=1, seconds=12.5,
    )
    stream = io.StringIO()
    Progress("json", stream=stream)("summary", 1.0, result.reason, summary=result.to_dict())
    update = parse_progress_line(stream.getvalue().splitlines()[-1])
    assert update is not None and update.stage == "summary"
    text = commands.finetune_outcome_text(update.record["summary"])
    assert text.startswith("safnet-v2: kept as a candidate (not active).")
    assert "0.812 -> 0.800 (-0.012)" in text and "3 case(s), validated on 1" in text and "fell by" in text
