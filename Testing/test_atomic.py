"""Atomic writes check what they wrote before publishing it; the lock serialises processes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from SAFNetSpineLib.atomic import exclusive_lock, save_tensors_atomic, write_file_atomic, write_json_atomic
from SAFNetSpineLib.errors import SpineInputError, SpineOutputError
from SAFNetSpineLib.io import write_seg_nrrd, write_volume
from SAFNetSpineLib.volume import Volume
from SAFNetSpineLib.written import incomplete_reason

REPO = Path(__file__).resolve().parents[1]


def volume() -> Volume:
    array = np.random.default_rng(0).normal(0, 1, (9, 8, 7)).astype(np.float32)
    return Volume(array, (1.0, 0.7, 3.0), (1.0, 2.0, 3.0))


def cut(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize("name", ["a.nii.gz", "a.nii", "a.nrrd", "a.seg.nrrd", "a.safetensors", "a.json", "a.png"])
def test_read_back_accepts_complete_and_refuses_cut_files(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".seg.nrrd"):
        labels = np.zeros((9, 8, 7), np.uint8)
        labels[2:5, 2:5, 2:5] = 3
        write_seg_nrrd(Volume(labels, (1.0, 1.0, 1.0), is_label=True), path)
    elif name.endswith((".nii.gz", ".nii", ".nrrd")):
        write_volume(volume(), path)
    elif name.endswith(".safetensors"):
        save_tensors_atomic({"w": torch.randn(300)}, path)
    elif name.endswith(".json"):
        write_json_atomic({"structures": list(range(50))}, path)
    else:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(1, 1))
        figure.savefig(path, format="png")
        plt.close(figure)
    assert incomplete_reason(path) is None
    assert incomplete_reason(cut(path, 0.8)) is not None
    path.write_bytes(b"")
    assert incomplete_reason(path) == "the file is empty"


def test_gzip_with_a_wrong_checksum_is_refused(tmp_path):
    data = bytearray(gzip.compress(b"x" * 10_000))
    data[-8] ^= 0xFF  # the CRC-32 in the gzip trailer
    path = tmp_path / "damaged.nii.gz"
    path.write_bytes(bytes(data))
    assert "corrupt gzip data" in incomplete_reason(path)


def test_a_write_whose_read_back_fails_publishes_nothing(tmp_path):
    path = tmp_path / "result_seg.nii.gz"
    write_volume(volume(), path)
    before = path.read_bytes()

    def short_write(temp: Path) -> None:  # what ITK does on a full disk: no error, a cut stream
        temp.write_bytes(before[: len(before) // 2])

    with pytest.raises(SpineOutputError, match=r"result_seg.nii.gz: could not write the file: the written "
                                               r"data is incomplete: the gzip stream ends early; nothing"):
        write_file_atomic(path, short_write, suffix=".nii.gz")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result_seg.nii.gz"]


def test_os_errors_become_one_line(tmp_path):
    with pytest.raises(SpineInputError, match="gone/x.json: could not write the file: No such file") as caught:
        write_json_atomic({}, tmp_path / "gone" / "x.json")
    assert "\n" not in str(caught.value)


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from SAFNetSpineLib.atomic import exclusive_lock
lock, log, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with exclusive_lock(lock):
    with open(log, "a") as f:
        f.write(f"{name} in {time.monotonic()}\\n")
    time.sleep(0.4)
    with open(log, "a") as f:
        f.write(f"{name} out {time.monotonic()}\\n")
"""


def test_lock_lets_one_process_in_at_a_time(tmp_path):
    lock, log = tmp_path / ".lock", tmp_path / "log.txt"
    children = [
        subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(lock), str(log), name], cwd=REPO)
        for name in ("a", "b", "c")
    ]
    assert [child.wait(timeout=60) for child in children] == [0, 0, 0]
    events = [line.split() for line in log.read_text().splitlines()]
    assert len(events) == 6
    # Never two "in" without an "out" between them: the blocks did not overlap.
    for first, second in zip(events[::2], events[1::2], strict=True):
        assert first[0] == second[0] and (first[1], second[1]) == ("in", "out")


def test_lock_gives_up_with_one_line_after_the_timeout(tmp_path):
    lock = tmp_path / ".lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER.replace("0.4", "5"), str(lock), str(tmp_path / "log"), "x"], cwd=REPO
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "log").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(SpineOutputError, match="another process has held this lock"):
            with exclusive_lock(lock, timeout_s=0.3):
                pass
    finally:
        holder.wait(timeout=60)
    with exclusive_lock(lock, timeout_s=1):  # free again once the holder exits
        pass


def test_json_read_back(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"a": 1})[:-1])
    assert "not valid JSON" in incomplete_reason(path)
