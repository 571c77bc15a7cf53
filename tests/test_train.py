"""Training: the loop learns, is reproducible, stops on NaN, and checkpoints round-trip safely."""
import subprocess
import sys
import time

import pytest
import torch

from retinanet_lite.data import ShapesDataset
from retinanet_lite.model import RetinaNet
from retinanet_lite.train import (InMemory, TrainConfig, checkpoint_lock, fit, hflip, load_checkpoint, load_or_train,
                                  lr_factor, pick_device, save_checkpoint, split_overrides, train, train_or_reuse)

SMALL = dict(num_train_images=8, num_val_images=8, batch_size=4, warmup_steps=5, eval_batch_size=8, progress=False)


def test_overfits_a_handful_of_images():
    images = InMemory(ShapesDataset(8, 128, seed=0))
    model, history = train(steps=80, lr=3e-3, hflip=0.0, device="cpu", train_set=images, val_set=images, **SMALL)
    first, last = sum(history["loss"][:5]) / 5, sum(history["loss"][-5:]) / 5
    assert last < 0.5 * first, f"loss fell only from {first:.3f} to {last:.3f}"
    assert history["eval"][-1]["map_50"] > 0.5, history["eval"][-1]  # it finds its training shapes again
    assert len(history["step"]) == 80 and not model.training


def test_same_seed_same_losses():
    _, a = train(steps=6, seed=3, device="cpu", **SMALL)
    _, b = train(steps=6, seed=3, device="cpu", **SMALL)
    _, c = train(steps=6, seed=4, device="cpu", **SMALL)
    assert a["loss"] == b["loss"]
    assert a["loss"] != c["loss"]


def test_non_finite_loss_stops_with_a_clear_message():
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train(steps=20, lr=1e6, weight_decay=0.0, grad_clip=1e9, device="cpu", **SMALL)


def test_images_without_objects_are_valid_training_data():
    empty = [(torch.rand(3, 64, 64), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)})] * 4
    model, history = train(steps=3, train_set=empty, val_set=empty, device="cpu", **SMALL)
    assert all(torch.isfinite(torch.tensor(history["loss"])))
    assert history["regression"] == [0.0, 0.0, 0.0]


def test_checkpoint_round_trip(tmp_path):
    model, history = train(steps=2, out=tmp_path, device="cpu", **SMALL)
    loaded = load_checkpoint(tmp_path / "model.pt", expected=model.config)
    image = [torch.rand(3, 128, 128)]
    with torch.no_grad():
        a, b = model(image)[0], loaded(image)[0]
    torch.testing.assert_close(a["boxes"], b["boxes"])
    torch.testing.assert_close(a["scores"], b["scores"])


def test_load_or_train_says_what_it_loaded(tmp_path, capsys):
    model, history = train("shapes-cpu", steps=3, device="cpu", **SMALL)
    path = save_checkpoint(tmp_path / "lesson.pt", model, history)
    loaded = load_or_train(path)
    assert f"loaded {path}: trained for 3 steps, AP@[.5:.95] {history['eval'][-1]['map']:.3f}" in capsys.readouterr().out
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def test_train_or_reuse_reuses_only_a_model_of_the_same_recipe(tmp_path, capsys):
    path = tmp_path / "lesson.pt"
    model, history = train_or_reuse(path, steps=3, device="cpu", **SMALL)
    assert f"saved {path}" in capsys.readouterr().out
    again, again_history = train_or_reuse(path, steps=3, device="cpu", **SMALL)
    assert f"reusing {path}, made by this same recipe: trained for 3 steps" in capsys.readouterr().out
    torch.testing.assert_close(again.state_dict(), model.state_dict())
    assert again_history["loss"] == history["loss"] and again_history["eval"][-1]["map"] == history["eval"][-1]["map"]
    assert not again.training
    # another seed, another TrainConfig field, another model config field, or retrain=True: trained anew
    for changed in (dict(seed=1), dict(lr=1e-3), dict(fpn_channels=32), dict(retrain=True)):
        train_or_reuse(path, **{"steps": 3, "device": "cpu", **SMALL, **changed})
        assert "reusing" not in capsys.readouterr().out, changed
    # a field added to TrainConfig after the file was saved counts with its default; a removed one does not match
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["recipe"]["train_config"]["max_seconds"]
    torch.save(checkpoint, path)
    train_or_reuse(path, steps=3, device="cpu", **SMALL)
    assert "reusing" in capsys.readouterr().out
    checkpoint["recipe"]["train_config"]["gone"] = 1
    torch.save(checkpoint, path)
    train_or_reuse(path, steps=3, device="cpu", **SMALL)
    assert "reusing" not in capsys.readouterr().out
    # a checkpoint that does not record its recipe (save_checkpoint, load_or_train) is not reused
    save_checkpoint(path, model, history)
    train_or_reuse(path, steps=3, device="cpu", **SMALL)
    assert "reusing" not in capsys.readouterr().out


def test_two_processes_needing_the_same_checkpoint_train_it_once(tmp_path):
    """Two processes call train_or_reuse for one file at once (two open lessons, two test workers): one
    trains it, the other waits for checkpoint_lock and then reuses the file. The test holds the lock until
    both have started, so that without the lock both would find no file and train."""
    path = tmp_path / "shared.pt"
    script = ("import sys\nfrom retinanet_lite.train import train_or_reuse\nprint('ready', flush=True)\n"
              f"train_or_reuse(sys.argv[1], steps=3, device='cpu', **{SMALL!r})\n")
    with checkpoint_lock(path):
        processes = [subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
                     for _ in range(2)]
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # both are now at the lock (or, without it, training)
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    assert sorted(output.split()[0] for output in outputs) == ["reusing", "saved"], outputs


def test_checkpoint_for_another_config_is_refused(tmp_path):
    model, _ = train(steps=1, out=tmp_path, device="cpu", **SMALL)
    with pytest.raises(ValueError, match="another config.*fpn_channels"):
        load_checkpoint(tmp_path / "model.pt", expected=model.config.replace(fpn_channels=32))


def test_checkpoint_is_loaded_without_unpickling_code(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    model, _ = train(steps=1, device="cpu", **SMALL)
    path = save_checkpoint(tmp_path / "m.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["history"] = Evil()
    torch.save(payload, path)
    with pytest.raises(ValueError, match="(?i)weights.only"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


def test_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100) == pytest.approx(0.01)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0, abs=1e-12)


def test_hflip_mirrors_boxes():
    image = torch.zeros(3, 10, 20)
    image[:, 2:4, 1:5] = 1
    target = {"boxes": torch.tensor([[1.0, 2, 5, 4]]), "labels": torch.tensor([0])}
    (flipped,), (t,) = hflip([image], [target], 1.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(t["boxes"], torch.tensor([[15.0, 2, 19, 4]]))
    assert flipped[:, 2:4, 15:19].eq(1).all() and flipped.sum() == image.sum()


def test_unknown_override_is_named():
    with pytest.raises(ValueError, match="learning_rate"):
        split_overrides({"learning_rate": 1.0})
    with pytest.raises(ValueError, match="unknown preset"):
        train(preset="nope")


def test_pick_device_falls_back_to_cpu_here():
    assert pick_device().type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert pick_device().type == "cpu"


def test_fit_stops_at_the_time_budget():
    data = InMemory(ShapesDataset(8, 64, seed=0))
    model = RetinaNet.from_preset("shapes-cpu")
    history = fit(model, data, None, TrainConfig(steps=10_000, batch_size=4, max_seconds=0.5), progress=False)
    assert len(history["step"]) < 10_000
