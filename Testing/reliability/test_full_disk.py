"""A full disk never publishes a truncated output nor replaces a good earlier one.

ITK's NIfTI writer returns normally when the disk fills up, leaving a cut gzip
stream; the read-back before the atomic rename must catch it. Every writer is run on
a real small tmpfs (and, where mounting is not allowed, under a file-size limit).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from SAFNetSpineLib.atomic import save_tensors_atomic, write_json_atomic
from SAFNetSpineLib.errors import SpineInputError, SpineOutputError
from SAFNetSpineLib.io import read_volume, write_seg_nrrd, write_volume
from SAFNetSpineLib.stores import CaseStore
from SAFNetSpineLib.volume import Volume


def noise_volume(shape=(40, 40, 40), seed=0) -> Volume:
    """Random float32 voxels (they do not compress): ~250 KiB, more than the small disk holds."""
    array = np.random.default_rng(seed).normal(100.0, 20.0, shape).astype(np.float32)
    return Volume(array, (0.9, 1.1, 3.0), (5.0, -3.0, 2.0))


def label_volume(shape=(64, 64, 64), seed=0) -> Volume:
    array = np.random.default_rng(seed).integers(0, 20, shape).astype(np.uint8)
    return Volume(array, (1.0, 1.0, 1.0), is_label=True)


def one_line_naming(error: BaseException, path) -> str:
    message = str(error)
    assert "\n" not in message and str(path) in message, message
    assert "nothing was replaced" in message
    return message


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


WRITERS = {
    "x_seg.nii.gz": lambda path: write_volume(noise_volume(), path),
    "x.nii": lambda path: write_volume(noise_volume(), path),
    "x.nrrd": lambda path: write_volume(noise_volume(), path),
    "x.mha": lambda path: write_volume(noise_volume(), path),
    "x.seg.nrrd": lambda path: write_seg_nrrd(label_volume(), path),
    "x_seg.json": lambda path: write_json_atomic({"voxels": "v" * 200_000}, path),
    "model.safetensors": lambda path: save_tensors_atomic({"w": torch.randn(80_000)}, path),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_full_disk_keeps_the_earlier_result(small_disk, name):
    disk = small_disk(64)
    path = disk / name
    # A small, good earlier result of the same name (e.g. last week's label map).
    if name.endswith(".json"):
        write_json_atomic({"earlier": True}, path)
    elif name.endswith(".safetensors"):
        save_tensors_atomic({"w": torch.ones(4)}, path)
    elif name.endswith(".seg.nrrd"):
        write_seg_nrrd(label_volume((4, 4, 4)), path)
    else:
        write_volume(noise_volume((4, 4, 4)), path)
    before = path.read_bytes()
    with pytest.raises(SpineOutputError) as caught:
        WRITERS[name](path)
    one_line_naming(caught.value, path)
    assert path.read_bytes() == before, "the earlier result was replaced"
    assert leftovers(disk) == [], "a temporary file was left on the full disk"


def test_full_disk_without_earlier_result_leaves_nothing(small_disk):
    disk = small_disk(64)
    path = disk / "scan_seg.nii.gz"
    with pytest.raises(SpineInputError, match="the gzip stream ends early; the disk is full") as caught:
        write_volume(noise_volume(), path)
    one_line_naming(caught.value, path)
    assert sorted(os.listdir(disk)) == []


def test_the_same_writes_succeed_with_room(small_disk):
    disk = small_disk(2048)
    for name, write in WRITERS.items():
        write(disk / name)
    np.testing.assert_array_equal(read_volume(disk / "x.nii").array, noise_volume().array)
    np.testing.assert_array_equal(read_volume(disk / "x.seg.nrrd", is_label=True).array, label_volume().array)
    assert leftovers(disk) == []


def test_size_limited_file_is_caught_like_a_full_disk(tmp_path, file_size_limited):
    # EFBIG under RLIMIT_FSIZE: ITK's NIfTI writer ignores it just as it ignores ENOSPC.
    earlier = write_volume(noise_volume((4, 4, 4)), tmp_path / "scan_seg.nii.gz")
    before = earlier.read_bytes()
    result = file_size_limited(
        """
        import numpy as np
        from SAFNetSpineLib.errors import SpineInputError
        from SAFNetSpineLib.io import write_volume
        from SAFNetSpineLib.volume import Volume
        array = np.random.default_rng(0).normal(size=(40, 40, 40)).astype(np.float32)
        for name in ("scan_seg.nii.gz", "scan.nii"):
            try:
                write_volume(Volume(array, (1.0, 1.0, 1.0)), name)
                print("written", name)
            except SpineInputError as error:
                print("refused", error)
        """,
        limit_bytes=32 * 1024,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("refused ") for line in lines), result.stdout
    assert "scan_seg.nii.gz: could not write the file" in lines[0]
    assert "scan.nii: could not write the file" in lines[1] and "NIfTI header announces" in lines[1]
    assert earlier.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan_seg.nii.gz"]


def small_case(shape, seed=0) -> tuple[Volume, Volume]:
    image = noise_volume(shape, seed)
    labels = np.zeros(shape, np.uint8)
    labels[1:3, 1:3, 1:3] = 2
    return image, Volume(labels, image.spacing, image.origin, image.direction, is_label=True)


def test_case_store_add_on_a_full_disk_is_one_line_and_stores_nothing(small_disk):
    store = CaseStore(small_disk(160) / "store")
    store.add(*small_case((6, 6, 6)), [2], "safnet-default", case_id="kept")
    index_before = (store.folder / "dataset.json").read_bytes()
    with pytest.raises(SpineOutputError, match="could not store case big: .*nothing was added") as caught:
        store.add(*small_case((40, 40, 40), seed=1), [2], "safnet-default", case_id="big")
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in store.cases_folder.iterdir()) == ["kept"]
    assert (store.folder / "dataset.json").read_bytes() == index_before
    assert [c.case_id for c in store.list()] == ["kept"]
    # The id stays free: a case that fits is stored under it.
    assert store.add(*small_case((6, 6, 6), seed=2), [2], "safnet-default", case_id="big") == "big"
    index = json.loads((store.folder / "dataset.json").read_text())
    assert [entry["case"] for entry in index["cases"]] == ["kept", "big"]


def test_segment_on_a_full_disk_exits_2_and_keeps_the_earlier_result(small_disk, tmp_path, tiny_weights, capsys):
    # Issue 10: with a good earlier result in the folder, segment exited 0 and replaced it
    # with a 4 KB cut gzip file.
    from SAFNetSpineLib.cli import main
    from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom

    image, _ = make_phantom(5, PhantomOptions(slices=(6, 8), inplane_spacing_mm=(3.0, 3.5)))
    scan = write_volume(image, tmp_path / "scan.nii.gz")
    out = small_disk(1024)
    args = ["segment", str(scan), "-o", str(out), "--weights", str(tiny_weights), "--device", "cpu",
            "--progress", "none", "--format", "both"]
    assert main(args) == 0
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    filler = out / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk to the last byte
    try:
        for size in (65536, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "could not write the file" in err[0], err
    filler.unlink()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier
