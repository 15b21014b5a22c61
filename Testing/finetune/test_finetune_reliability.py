"""Fine-tuning under concurrency and store damage.

Two runs at once: promotion re-checks the active model under the models folder's lock.

Issue 10: both runs compared against the parent they started from, and the second
activated a worse model over the first. Now the run that promotes second finds the
active model changed and finishes as a candidate, saying why.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from block_cases import block_case

from SAFNetSpineLib.finetune import finetune
from SAFNetSpineLib.models import build_model
from SAFNetSpineLib.preprocessing import PreprocessConfig
from SAFNetSpineLib.stores import CaseStore, ModelStore
from SAFNetSpineLib.weights import ModelManifest, save_weights

REPO = Path(__file__).resolve().parents[2]
TINY = {"width": 8, "in_channels": 1, "num_classes": 20}
#: Settings under which a width-8 SAFNet learns the two blocks and is promoted (see test_finetune.py).
#: One training: a holdout of half the patients (good-0, -2, -4 judge; 3 patients, enough to promote).
#: anchor_weight 0: the tiny random parent knows nothing worth keeping (L2-SP would hold the blocks back).
RUN = {"epochs": 5, "lr": 2e-2, "device": "cpu", "batch_size": 1, "augment": False, "promotion": "holdout",
       "val_fraction": 0.5, "anchor_weight": 0.0}


def setup(tmp_path: Path) -> tuple[Path, Path, ModelStore]:
    torch.manual_seed(0)
    base = tmp_path / "bundled" / "base"
    save_weights(build_model("safnet", **TINY), base,
                 ModelManifest("safnet", TINY, PreprocessConfig(target_shape=(8, 32, 16)).to_dict(), version="base"))
    store = CaseStore(tmp_path / "store")
    for seed in range(6):
        store.add(*block_case(seed), [3, 12], "base", case_id=f"good-{seed}", patient_id=f"good-{seed}")
    return store.folder, base, ModelStore(tmp_path / "models", bundled_dir=base)


def test_active_model_changed_during_the_run_keeps_the_result_a_candidate(tmp_path):
    store, base, models = setup(tmp_path)

    def progress(stage, fraction, message="", **extra):
        if stage == "finetune" and message == "writing the new version":
            # Another run (another process, in real life) promotes its own version now.
            with models.publishing("other", activate_if_active="base") as other:
                torch.manual_seed(5)
                save_weights(build_model("safnet", **TINY), other.folder, ModelManifest(
                    "safnet", TINY, PreprocessConfig(target_shape=(8, 32, 16)).to_dict(), version=other.name))

    result = finetune(store, None, models.models_dir, bundled_dir=base, progress=progress, **RUN)
    assert result.dice_after > result.dice_before + 0.1  # on its own it would have been promoted
    assert not result.promoted and result.status == "candidate"
    assert "but the active model is now other-v1, activated while this run trained from base" in result.reason
    assert result.reason.endswith("kept as candidate")
    assert models.active_name() == "other-v1"
    summary = json.loads((result.folder / "finetune.json").read_text())
    assert summary["status"] == "candidate" and summary["reason"] == result.reason
    assert {v.name: v.status for v in models.versions()}[result.version] == "candidate"


RUNNER = """
import json, sys, time
from pathlib import Path
from SAFNetSpineLib.finetune import finetune
store, models, base, go = sys.argv[1:5]
settings = json.loads(sys.argv[5])
while not Path(go).exists():
    time.sleep(0.01)
result = finetune(store, None, models, bundled_dir=base, **settings)
print(json.dumps({"version": result.version, "promoted": result.promoted, "reason": result.reason}))
"""


@pytest.mark.slow
def test_two_real_finetune_runs_at_once_promote_one_and_keep_the_other_a_candidate(tmp_path):
    store, base, models = setup(tmp_path)
    go = tmp_path / "go"
    children = [
        subprocess.Popen([sys.executable, "-c", RUNNER, str(store), str(models.models_dir), str(base), str(go),
                          json.dumps({**RUN, "seed": seed})], cwd=REPO, stdout=subprocess.PIPE, text=True)
        for seed in (0, 1)
    ]
    time.sleep(0.5)
    go.touch()  # both start from the same active model at the same time
    outcomes = [json.loads(child.communicate(timeout=600)[0]) for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert sorted(o["version"] for o in outcomes) == ["safnet-v1", "safnet-v2"]
    winners = [o for o in outcomes if o["promoted"]]
    losers = [o for o in outcomes if not o["promoted"]]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert models.active_name() == winners[0]["version"]
    assert f"but the active model is now {winners[0]['version']}" in losers[0]["reason"]
    pointer = json.loads((models.models_dir / "active.json").read_text())
    assert pointer["history"] == [None]  # activated once, from the bundled default


def test_stray_empty_folder_in_cases_does_not_block_finetuning(tmp_path):
    store, base, models = setup(tmp_path)
    (store / "cases" / "untitled folder").mkdir()  # e.g. made by a file manager
    result = finetune(store, None, models.models_dir, bundled_dir=base, **{**RUN, "epochs": 1})
    assert result.version == "safnet-v1" and len(result.train_cases) + len(result.val_cases) == 6
