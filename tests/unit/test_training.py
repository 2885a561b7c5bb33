import pytest
import torch

from cdemi.train import TrainSettings, evaluate, train_classifier

from ..conftest import tiny_model

FAST = TrainSettings(epochs=2, batch_size=128, lr=0.05, seed=3)


def _weights(m):
    return torch.cat([v.flatten().float() for v in m.state_dict().values()])


def test_training_learns_digits(digits_train, digits_test):
    m = tiny_model()
    before = evaluate(m, digits_test)
    res = train_classifier(m, digits_train, digits_test, TrainSettings(epochs=3, batch_size=64, lr=0.05), progress=False)
    assert res.test_accuracy > 80.0 > before + 30
    assert [r["epoch"] for r in res.curve] == [1, 2, 3]


def test_same_seed_same_weights_on_cpu(digits_train, digits_test):
    a, b = tiny_model(), tiny_model()
    ra = train_classifier(a, digits_train, digits_test, FAST, progress=False)
    rb = train_classifier(b, digits_train, digits_test, FAST, progress=False)
    assert torch.equal(_weights(a), _weights(b))
    assert ra.test_accuracy == rb.test_accuracy
    c = tiny_model()
    train_classifier(c, digits_train, digits_test, FAST.model_copy(update={"seed": 4}), progress=False)
    assert not torch.equal(_weights(a), _weights(c))


def test_resume_after_interruption_matches_uninterrupted_run(digits_train, digits_test, tmp_path):
    whole = tiny_model()
    ref = train_classifier(whole, digits_train, digits_test, FAST, progress=False)

    state = tmp_path / "run.state"
    # interrupt inside the second epoch, after the first epoch's state was written
    calls = {"n": 0}
    interrupted = tiny_model()
    orig_forward = interrupted.forward

    def dying_forward(*a, **k):
        calls["n"] += 1
        if calls["n"] == len(digits_train) // FAST.batch_size + 2:  # second step of epoch 2
            raise KeyboardInterrupt
        return orig_forward(*a, **k)

    interrupted.forward = dying_forward
    with pytest.raises(KeyboardInterrupt):
        train_classifier(interrupted, digits_train, digits_test, FAST, state_path=state, progress=False)
    assert state.exists()
    resumed = tiny_model()  # a fresh process would rebuild the model from the seed
    res = train_classifier(resumed, digits_train, digits_test, FAST, state_path=state, progress=False)
    assert res.resumed_from_epoch == 1
    assert torch.equal(_weights(resumed), _weights(whole))
    assert [r["test_accuracy"] for r in res.curve] == [r["test_accuracy"] for r in ref.curve]


def test_state_of_other_settings_is_set_aside_not_reused(digits_train, digits_test, tmp_path):
    state = tmp_path / "run.state"
    train_classifier(tiny_model(), digits_train, digits_test, TrainSettings(epochs=1, batch_size=128), state_path=state,
                     progress=False)
    res = train_classifier(tiny_model(), digits_train, digits_test, TrainSettings(epochs=1, batch_size=128, lr=0.01),
                           state_path=state, progress=False)
    assert res.resumed_from_epoch == 0 and state.with_suffix(".stale").exists()


def test_kd_from_a_teacher_transfers_its_knowledge(digits_train, digits_test):
    teacher = tiny_model()
    train_classifier(teacher, digits_train, digits_test, TrainSettings(epochs=3, batch_size=64, lr=0.05), progress=False)
    student = tiny_model(width=0.0625)
    res = train_classifier(student, digits_train, digits_test, TrainSettings(epochs=3, batch_size=64, lr=0.05),
                           teacher=teacher, progress=False)
    assert res.test_accuracy > 60.0
    # the KD loss does not read the labels: shuffled labels give the same student
    shuffled = type(digits_train)(digits_train.images, digits_train.labels[torch.randperm(len(digits_train))],
                                  digits_train.spec)
    twin = tiny_model(width=0.0625)
    train_classifier(twin, shuffled, digits_test, TrainSettings(epochs=3, batch_size=64, lr=0.05), teacher=teacher,
                     progress=False)
    assert torch.equal(_weights(twin), _weights(student))
