import dataclasses

import pytest
import torch

from cdemi import models
from cdemi.condense import CONDENSERS, condense_dm, condense_dsa, condense_mtt, train_experts, train_on_condensed
from cdemi.condense import dm as dm_module
from cdemi.condense.dsa import gradient_distance
from cdemi.data import ImageSet
from cdemi.data.subsets import real_subset


def _dm_objective(cs, data, nets):
    """DM's loss without augmentation under fixed random networks."""
    spec = data.spec
    real = spec.normalise(data.float_images())
    syn = cs.normalised()
    total = 0.0
    with torch.no_grad():
        for net in nets:
            for c in range(spec.num_classes):
                total += (net.embed(real[data.labels == c]).mean(0) - net.embed(syn[cs.labels == c]).mean(0)).square().sum().item()
    return total


def _nets(spec, n=3):
    torch.manual_seed(123)
    return [models.build("convnet", num_classes=10, in_channels=1, width=0.25, image_size=spec.image_size) for _ in range(n)]


def test_dm_moves_class_means_towards_the_real_ones(digits_train):
    start = condense_dm(digits_train, 1, iterations=0, width=0.25, progress=False)
    end = condense_dm(digits_train, 1, iterations=40, batch_real=64, width=0.25, augment=False, progress=False)
    nets = _nets(digits_train.spec)
    assert _dm_objective(end, digits_train, nets) < 0.5 * _dm_objective(start, digits_train, nets)
    assert end.meta["params"]["iterations"] == 40 and end.meta["wall_seconds"] > 0


def test_dm_resume_after_interruption_gives_the_same_set(digits_train, tmp_path, monkeypatch):
    kw = dict(iterations=6, batch_real=16, width=0.125, progress=False, seed=2)
    whole = condense_dm(digits_train, 1, **kw)
    calls = {"n": 0}
    real_dsa = dm_module.diffaug.dsa

    def dying(x, g):
        calls["n"] += 1
        if calls["n"] == 2 * 10 * 4 + 1:  # first augmentation of iteration 5 (two per class)
            raise KeyboardInterrupt
        return real_dsa(x, g)

    monkeypatch.setattr(dm_module.diffaug, "dsa", dying)
    with pytest.raises(KeyboardInterrupt):
        condense_dm(digits_train, 1, state_path=tmp_path / "dm.state", save_every=2, **kw)
    monkeypatch.setattr(dm_module.diffaug, "dsa", real_dsa)
    resumed = condense_dm(digits_train, 1, state_path=tmp_path / "dm.state", save_every=2, **kw)
    assert torch.equal(resumed.images, whole.images)


def test_gradient_distance_golden_values():
    g = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([5.0, 5.0])]  # the bias is ignored
    assert gradient_distance(g, g).item() == pytest.approx(0.0, abs=1e-5)
    assert gradient_distance(g, [-g[0], g[1]]).item() == pytest.approx(4.0, abs=1e-5)
    ortho = [torch.tensor([[0.0, 1.0], [1.0, 0.0]]), g[1]]
    assert gradient_distance(g, ortho).item() == pytest.approx(2.0, abs=1e-5)


def test_dsa_is_seeded_and_changes_the_images(digits_train):
    kw = dict(iterations=1, outer_loop=2, inner_loop=1, batch_real=16, width=0.125, progress=False)
    a, b = condense_dsa(digits_train, 1, **kw), condense_dsa(digits_train, 1, **kw)
    start = condense_dsa(digits_train, 1, **{**kw, "iterations": 0})
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, start.images)
    assert a.meta["params"]["outer_loop"] == 2


def test_mtt_matches_trajectories_and_learns_its_lr(digits_train, tmp_path):
    traj = train_experts(digits_train, num_experts=2, epochs=3, width=0.125, progress=False, path=tmp_path / "experts.pt")
    assert traj.shape[:2] == (2, 4)
    again = train_experts(digits_train, num_experts=2, epochs=3, width=0.125, progress=False, path=tmp_path / "experts.pt")
    assert torch.equal(traj, again)  # read back, not retrained
    other = ImageSet(digits_train.images, digits_train.labels, dataclasses.replace(digits_train.spec, name="other"))
    train_experts(other, num_experts=2, epochs=3, width=0.125, progress=False, path=tmp_path / "experts.pt")
    assert torch.load(tmp_path / "experts.pt", weights_only=True)["settings"][-1] == "other"  # same size, not reused
    cs = condense_mtt(digits_train, 1, traj, iterations=4, syn_steps=3, max_start_epoch=1, width=0.125, progress=False)
    assert cs.method == "mtt" and cs.meta["learned_lr"] > 0 and cs.meta["final_loss"] > 0
    with pytest.raises(ValueError, match="train the experts with the same width"):
        condense_mtt(digits_train, 1, traj, iterations=1, width=0.25, progress=False)
    with pytest.raises(ValueError, match="exceeds the 3 recorded epochs"):
        condense_mtt(digits_train, 1, traj, iterations=1, max_start_epoch=2, width=0.125, progress=False)


def test_convnet_trained_on_real_subset_beats_chance_by_far(digits_train, digits_test):
    cs = real_subset(digits_train, 10, seed=0)
    acc = train_on_condensed(cs, digits_test, epochs=30, width=0.25, batch_size=64)
    assert acc > 60.0


def test_registry_names_every_method():
    assert CONDENSERS.names() == ["dm", "dsa", "import", "kshot", "mtt", "random_real"]
    with pytest.raises(KeyError, match="unknown condensation method 'kip'"):
        CONDENSERS.get("kip")


def test_a_finished_run_extended_to_more_iterations_resumes_and_matches_a_longer_run(digits_train, tmp_path):
    kw = dict(batch_real=16, width=0.125, progress=False, seed=4, state_path=tmp_path / "dm.state", save_every=2)
    condense_dm(digits_train, 1, iterations=4, **kw)
    extended = condense_dm(digits_train, 1, iterations=6, **kw)
    direct = condense_dm(digits_train, 1, iterations=6, batch_real=16, width=0.125, progress=False, seed=4)
    assert torch.equal(extended.images, direct.images)
    # a shorter run does not pick up a state that is already past its end
    shorter = condense_dm(digits_train, 1, iterations=2, **kw)
    assert torch.equal(shorter.images, condense_dm(digits_train, 1, iterations=2, batch_real=16, width=0.125,
                                                   progress=False, seed=4).images)
    assert (tmp_path / "dm.stale").exists()
