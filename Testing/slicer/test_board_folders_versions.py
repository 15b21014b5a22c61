"""The panel's job board, the work folder's stores, and the model table's rows (no Qt, no Slicer)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from SAFNetSpineJobs import commands
from SAFNetSpineJobs.board import JobBoard
from SAFNetSpineJobs.jobs import ChildJob, ProgressUpdate, python_child_environment
from SAFNetSpineJobs.model_versions import TABLE_COLUMNS, ModelChoice, parse_models_list
from SAFNetSpineJobs.work_folders import WorkFolders, clear_store, count_model_versions, count_stored_cases

REPO = Path(__file__).resolve().parents[2]


def _script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def _drain(board: JobBoard, seconds: float = 60) -> None:
    import time

    deadline = time.monotonic() + seconds
    while board.poll():
        assert time.monotonic() < deadline, "jobs did not end"
        time.sleep(0.02)


def test_board_runs_one_job_per_role_and_queues_the_newest(tmp_path):
    board = JobBoard(lambda args: ChildJob(args))
    events = []
    slow = _script(tmp_path, "slow", """
        import json, time
        print(json.dumps({"stage": "read", "fraction": 0.5, "message": "half"}), flush=True)
        time.sleep(0.5)
        print("slow done", flush=True)
    """)
    quick = _script(tmp_path, "quick", 'print("quick done")')
    items = []
    first = board.start("models", slow, lambda job, ctx: events.append((ctx, job.returncode)),
                        on_item=lambda job, item: items.append(item), context="first")
    assert first is not None and board.busy("models") and board.roles == ("models",)
    assert board.start("models", quick, lambda job, ctx: events.append((ctx, 0))) is None  # busy: refused
    board.start("models", quick, lambda job, ctx: events.append((ctx, job.log_tail(1))), context="older", queue=True)
    board.start("models", quick, lambda job, ctx: events.append((ctx, job.log_tail(1))), context="newest", queue=True)
    other = board.start("devices", quick, lambda job, ctx: events.append((ctx, job.returncode)), context="devices")
    assert other is not None  # another role runs beside it
    _drain(board)
    assert ("first", 0) in events and ("devices", 0) in events and ("newest", "quick done") in events
    assert all(ctx != "older" for ctx, _ in events)  # only the newest queued start runs
    assert events.index(("first", 0)) < events.index(("newest", "quick done"))
    assert isinstance(items[0], ProgressUpdate) and items[-1] == "slow done"
    assert not board.active and board.roles == ()


def test_board_cancel_drops_the_queued_start(tmp_path):
    board = JobBoard(lambda args: ChildJob(args))
    done = []
    sleeper = _script(tmp_path, "sleeper", "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    board.start("segment", sleeper, lambda job, ctx: done.append(job.cancel_requested))
    board.start("segment", sleeper, lambda job, ctx: done.append("queued ran"), queue=True)
    assert board.cancel("segment", grace_s=0.5) and not board.cancel("finetune")
    _drain(board)
    assert done == [True]


def test_store_counts_and_clearing_only_a_store_of_this_work_folder(tmp_path):
    folders = WorkFolders(tmp_path / "work")
    assert clear_store(folders, "cases") == 0  # nothing there yet
    for name in ("a", "b"):
        (folders.cases / "cases" / name).mkdir(parents=True)
        (folders.cases / "cases" / name / "case.json").write_text("{}")
    (folders.cases / "cases" / ".tmp-add-x").mkdir()
    (folders.models / "safnet-v1").mkdir(parents=True)
    (folders.models / "safnet-v1" / "model.json").write_text("{}")
    (folders.models / ".tmp-finetune-1").mkdir()
    assert count_stored_cases(folders.cases) == 2 and count_model_versions(folders.models) == 1
    assert clear_store(folders, "cases") == 2 and not folders.cases.exists() and folders.models.exists()
    assert clear_store(folders, "models") == 1 and not folders.models.exists()
    with pytest.raises(ValueError):
        clear_store(folders, "root")
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    folders.root.mkdir(exist_ok=True)
    folders.cases.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError):
        clear_store(folders, "cases")  # a link to another folder is never followed
    assert (elsewhere / "keep.txt").read_text() == "keep"


def test_model_rows_show_what_the_library_recorded(tmp_path):
    job = ChildJob(commands.models_list_command(sys.executable, WorkFolders(tmp_path / "work")),
                   env=python_child_environment(str(REPO)))
    assert job.wait(timeout_s=120) == 0, job.log_tail()
    _active, versions = parse_models_list("\n".join(job.log))
    bundled = next(v for v in versions if v.status == "bundled")
    row = dict(zip(TABLE_COLUMNS, bundled.table_row(), strict=True))
    recorded = bundled.metrics
    assert row["Created"] == bundled.created[:10] and len(row["Created"]) == 10
    assert row["Val. Dice"] == f"{recorded['val_dice']:.3f}"
    assert row["Trained on"] == f"dev. set ({len(recorded['val_cases'])} val.)"
    assert row["Active"] == ("yes" if bundled.active else "")
    # A fine-tuned version as `models list --json` reports it (metrics from finetune.py's manifest).
    tuned = ModelChoice("safnet-v2", Path("m/safnet-v2"), "candidate", False, 0.812, 0.8, "2026-12-01T10:00:00+00:00",
                        "safnet-default", {"train_cases": 12, "val_cases": 3}, "validation Dice fell by 0.012")
    assert tuned.table_row() == ("safnet-v2", "candidate", "2026-12-01", "12 corrected (3 val.)",
                                 "0.812 -> 0.800", "")
    assert "Fine-tuned from safnet-default" in tuned.tooltip and "fell by" in tuned.tooltip


def test_device_probe_runs_in_a_child_and_names_the_device():
    pytest.importorskip("torch")
    job = ChildJob(commands.device_probe_command(sys.executable), env=python_child_environment(str(REPO)))
    assert job.wait(timeout_s=120) == 0, job.log_tail()
    record = commands.parse_device_probe("\n".join(job.log))
    assert record["auto"] in ("cpu", "cuda", "mps")
    assert (record["gpu_name"] is None) == (record["auto"] != "cuda")
    assert commands.gpu_label(record) == (record["gpu_name"] if record["auto"] == "cuda" else None)
    assert commands.gpu_label({"auto": "mps", "gpu_name": None}) == "Apple GPU (MPS)"
    with pytest.raises(ValueError):
        commands.parse_device_probe("Traceback ...\nModuleNotFoundError: No module named 'torch'")


def test_the_done_line_carries_the_field_of_view_warning():
    summary = {"device": "cpu", "model_version": "safnet-default"}
    assert commands.segment_done_text(summary, 12, 9.6) == "Done: 12 structures in 10 s on cpu with safnet-default."
    quiet = {**summary, "field_of_view": {"in_plane_mm": [224.0, 224.0], "trained_mm": [221.0, 390.6],
                                          "warning": None}}
    assert commands.segment_done_text(quiet, 12, 9.6) == commands.segment_done_text(summary, 12, 9.6)
    far = {**summary, "field_of_view": {**quiet["field_of_view"], "warning": "the in-plane field of view is far"}}
    assert commands.segment_done_text(far, 12, 9.6).endswith(" Warning: the in-plane field of view is far.")
    small = {**summary, "field_of_view": {**quiet["field_of_view"], "in_plane_mm": [150.0, 150.0],
                                          "widened_to_mm": 221.0}}
    assert commands.segment_done_text(small, 12, 9.6).endswith(" widened to 221 mm, the training scans' smallest.")
    large = {**summary, "field_of_view": {**quiet["field_of_view"], "in_plane_mm": [740.0, 560.0],
                                          "window_mm": [391.0, 391.0]}}
    assert commands.segment_done_text(large, 12, 9.6).endswith(" segmented in its 391 mm window holding the sacrum.")
    assert commands.segment_done_text({**quiet, "field_of_view": {**quiet["field_of_view"], "widened_to_mm": None}},
                                      12, 9.6) == commands.segment_done_text(summary, 12, 9.6)


def test_naming_status_line():
    assert commands.naming_text({}) == ("", False)
    text, ask = commands.naming_text({"naming": {"status": "uncertain", "anchor": "none", "reason": "no sacrum"}})
    assert ask and "uncertain: no sacrum" in text and "Rename levels" in text
    text, ask = commands.naming_text({"naming": {"status": "confident", "anchor": "sacrum", "reason": "from S"}})
    assert not ask and text == "Level names: confident (from S)."
