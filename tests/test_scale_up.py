"""Beyond one laptop: own COCO data from the command line, resume, pretrained backbones, torchrun/DDP."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18, resnet34

from retinanet_lite.__main__ import main
from retinanet_lite.data import CLASS_NAMES, ShapesDataset, write_coco
from retinanet_lite.model import RetinaNet
from retinanet_lite.train import InMemory, endless_batches, read_checkpoint, train

ROOT = Path(__file__).resolve().parent.parent
TINY = ["num_train_images=16", "num_val_images=8", "batch_size=4", "warmup_steps=2", "eval_batch_size=8"]


def own_dataset(folder: Path, num_images: int, seed: int, category_ids=(5, 9, 12)) -> Path:
    """Shapes images written as a COCO dataset whose category ids are not 1..K."""
    path = write_coco(ShapesDataset(num_images, 64, seed=seed), folder, CLASS_NAMES)
    coco = json.loads(path.read_text())
    for category in coco["categories"]:
        category["id"] = category_ids[category["id"] - 1]
    for annotation in coco["annotations"]:
        annotation["category_id"] = category_ids[annotation["category_id"] - 1]
    coco["images"] = [{**image, "id": image["id"] + 100} for image in coco["images"]]
    coco["annotations"] = [{**a, "image_id": a["image_id"] + 100} for a in coco["annotations"]]
    path.write_text(json.dumps(coco))
    return path


def test_train_evaluate_predict_on_own_coco_data(tmp_path, capsys):
    train_json, val_json = own_dataset(tmp_path / "train", 8, 0), own_dataset(tmp_path / "val", 4, 1)
    main(["train", "--data", str(train_json), "--val-data", str(val_json), "--steps", "3", "--out", str(tmp_path),
          "--set", "batch_size=4", "warmup_steps=1"])
    assert "map_50" in capsys.readouterr().out
    checkpoint = read_checkpoint(tmp_path / "model.pt")
    assert checkpoint["classes"] == {"names": list(CLASS_NAMES), "category_ids": [5, 9, 12]}
    results = tmp_path / "results.json"
    main(["evaluate", "--checkpoint", str(tmp_path / "model.pt"), "--data", str(val_json), "--results", str(results)])
    detections = json.loads(results.read_text())
    assert detections, "an untrained model still scores every anchor above the threshold somewhere"
    assert {d["category_id"] for d in detections} <= {5, 9, 12}  # labels mapped back to the file's ids
    assert {d["image_id"] for d in detections} <= {101, 102, 103, 104}
    main(["detect", str(tmp_path / "val" / "images"), "--checkpoint", str(tmp_path / "model.pt"),
          "--out", str(tmp_path / "drawn"), "--min-score", "0"])
    assert len(list((tmp_path / "drawn").glob("*.detections.png"))) == 4


def test_bad_own_data_is_reported_by_annotation(tmp_path):
    path = own_dataset(tmp_path, 2, 0)
    coco = json.loads(path.read_text())
    coco["annotations"][0]["bbox"][2] = 0
    path.write_text(json.dumps(coco))
    with pytest.raises(SystemExit) as exit_info:  # a message and a non-zero exit status, not a traceback
        main(["train", "--data", str(path), "--steps", "1"])
    message = str(exit_info.value.code)
    assert f"annotation {coco['annotations'][0]['id']}" in message and "zero width" in message


class CrashAfter(torch.utils.data.Dataset):
    """A dataset that fails once ``limit`` items have been read: a run that dies part-way through."""

    def __init__(self, dataset, limit: int):
        self.dataset, self.limit, self.reads = dataset, limit, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.reads += 1
        if self.reads > self.limit:
            raise RuntimeError("simulated crash")
        return self.dataset[index]


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    data = InMemory(ShapesDataset(8, 64, seed=0))
    settings = dict(steps=6, batch_size=4, warmup_steps=2, device="cpu", val_set=None, progress=False)
    _, straight = train(train_set=data, **settings)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(train_set=CrashAfter(data, limit=4 * 4), out=tmp_path, checkpoint_every=3, **settings)
    assert len(read_checkpoint(tmp_path / "model.pt")["history"]["step"]) == 3
    _, resumed = train(train_set=data, resume=tmp_path / "model.pt", **settings)
    assert resumed["step"] == list(range(6))
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-5)


def test_each_process_sees_its_own_share_of_every_epoch():
    data = [(torch.zeros(3, 4, 4), {"boxes": torch.zeros(0, 4), "labels": torch.tensor([i])}) for i in range(12)]
    seen = []
    for rank in range(2):
        batches = endless_batches(data, batch_size=3, seed=0, rank=rank, world_size=2)
        epoch = [int(t["labels"]) for _ in range(2) for t in next(batches)[1]]  # 2 batches of 3 = 6 per rank
        seen.append(epoch)
    assert sorted(seen[0] + seen[1]) == list(range(12))
    again = [int(t["labels"]) for _ in range(2) for t in next(endless_batches(data, 3, 0, 0, 0, 2))[1]][:3]
    assert again == seen[0][:3]  # the order depends only on the seed
    resumed = endless_batches(data, 3, seed=0, start_step=1, rank=0, world_size=2)
    assert [int(t["labels"]) for t in next(resumed)[1]] == seen[0][3:]


def test_pretrained_backbone_is_loaded_from_a_local_file(tmp_path):
    weights = resnet18(weights=None).state_dict()
    torch.save(weights, tmp_path / "r18.pt")
    model = RetinaNet.from_preset("resnet18-512")
    model.backbone.load_pretrained(tmp_path / "r18.pt")
    torch.testing.assert_close(model.backbone.stem[0].weight, weights["conv1.weight"])
    torch.testing.assert_close(model.backbone.layer4[1].bn2.running_var, weights["layer4.1.bn2.running_var"])
    torch.save(resnet34(weights=None).state_dict(), tmp_path / "r34.pt")
    with pytest.raises(ValueError, match="does not fit this backbone"):
        model.backbone.load_pretrained(tmp_path / "r34.pt")
    with pytest.raises(ValueError, match="does not fit this backbone"):  # same key names, other shapes
        RetinaNet.from_preset("paper").backbone.load_pretrained(tmp_path / "r18.pt")


def test_gpu_presets_build_and_run_a_step_on_cpu(tmp_path):
    torch.save(resnet18(weights=None).state_dict(), tmp_path / "r18.pt")
    model, history = train("resnet18-512", steps=1, device="cpu", pretrained_backbone=tmp_path / "r18.pt",
                           min_size=64, max_size=64, progress=False, num_workers=0, num_train_images=4,
                           num_val_images=2, batch_size=2, eval_batch_size=2)
    assert torch.isfinite(torch.tensor(history["loss"])).all()  # amp=True is ignored without CUDA


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "retinanet_lite", "train", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.training  # torchrun: twice three Python processes that start PyTorch (about 25 s of CPU)
def test_torchrun_two_processes_train_save_once_and_resume(tmp_path):
    first = torchrun("--steps", "4", "--out", str(tmp_path), "--set", *TINY, "checkpoint_every=2", cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("saved checkpoint") + first.stderr.count("saved checkpoint") == 3  # steps 2, 4, end
    history = read_checkpoint(tmp_path / "model.pt")["history"]
    assert history["step"] == [0, 1, 2, 3] and all(map(torch.isfinite, torch.tensor(history["loss"])))
    second = torchrun("--steps", "6", "--resume", str(tmp_path / "model.pt"), "--out", str(tmp_path), cwd=ROOT)
    assert second.returncode == 0, second.stderr[-3000:]
    assert read_checkpoint(tmp_path / "model.pt")["history"]["step"] == list(range(6))


# Rank 1's clock runs 1000 s per reading: on its own it would stop after its first step and leave
# rank 0 waiting for it in the next gradient all-reduce. Rank 0's decision must hold for both.
FAST_CLOCK_ON_RANK_1 = '''
import itertools, json, os, sys
import torch.distributed as dist
import retinanet_lite.train as training
from retinanet_lite.data import ShapesDataset
from retinanet_lite.train import InMemory, train

if os.environ["RANK"] == "1":
    ticks = itertools.count()
    training.time.perf_counter = lambda: 1000.0 * next(ticks)
_, history = train(train_set=InMemory(ShapesDataset(16, 64, seed=0)), val_set=None, steps=5, batch_size=4,
                   warmup_steps=1, max_seconds=600, device="cpu", progress=False)
with open(os.path.join(sys.argv[1], "rank" + os.environ["RANK"] + ".json"), "w") as report:  # one file per process
    json.dump({"rank": os.environ["RANK"], "steps": len(history["step"])}, report)
'''


@pytest.mark.training  # torchrun: three Python processes that start PyTorch
def test_torchrun_processes_agree_when_to_stop_on_max_seconds(tmp_path):
    script = tmp_path / "clocks.py"
    script.write_text(FAST_CLOCK_ON_RANK_1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script), str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("rank*.json"))]
    assert sorted(r["rank"] for r in reports) == ["0", "1"]
    assert [r["steps"] for r in reports] == [5, 5], "both processes follow rank 0's clock"
