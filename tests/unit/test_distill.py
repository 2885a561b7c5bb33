import pytest
import torch

from cdemi.data.subsets import real_subset
from cdemi.distill import DistillSettings, SyntheticPool, distill_student
from cdemi.invert import DeepInversion

from ..conftest import interrupt_synthesis, tiny_model

FAST = DistillSettings(epochs=3, kd_steps=5, batch_size=32, lr=0.05, temperature=4.0, seed=1)


def _weights(m):
    return torch.cat([v.flatten().float() for v in m.state_dict().values()])


def test_pool_stores_uint8_and_caps_its_size():
    pool = SyntheticPool((1, 4, 4), max_images=5)
    pool.add(torch.full((3, 1, 4, 4), 0.5), torch.tensor([0, 1, 2]))
    pool.add(torch.ones(4, 1, 4, 4), torch.tensor([3, 4, 5, 6]))
    assert pool.images.dtype == torch.uint8 and len(pool) == 5 and pool.targets.tolist() == [2, 3, 4, 5, 6]
    x, y = pool.sample(7, torch.Generator().manual_seed(0))
    assert x.shape == (7, 1, 4, 4) and set((x * 255).round().unique().tolist()) <= {128.0, 255.0}
    with pytest.raises(ValueError, match="pool holds images of shape"):
        pool.add(torch.zeros(1, 3, 4, 4), torch.tensor([0]))


def test_plain_kd_on_a_real_subset_teaches_the_student(digits_teacher, digits_train, digits_test):
    student = tiny_model(width=0.125)
    transfer = real_subset(digits_train, 20, seed=0).images
    out = distill_student(digits_teacher, student, digits_test, DistillSettings(epochs=4, kd_steps=10, batch_size=64, lr=0.05,
                                                                          temperature=4.0), transfer=transfer,
                  progress=False)
    assert out["final_accuracy"] > 50 and out["images_synthesised"] == 0 and out["synthesis_seconds"] == 0


def test_inversion_and_two_term_kd_record_their_costs(digits_teacher, digits_train, digits_test):
    host = DeepInversion(digits_teacher, digits_train.spec, batch_size=16, iterations=3, seed=0)
    transfer = real_subset(digits_train, 1, seed=0).images
    out = distill_student(digits_teacher, tiny_model(width=0.125), digits_test, FAST, host=host, transfer=transfer,
                  progress=False)
    assert out["images_synthesised"] == 48 and out["pool_bytes"] == 48 * 256 + 48 * 8
    assert [r["epoch"] for r in out["curve"]] == [1, 2, 3] and out["synthesis_seconds"] > 0
    assert set(out["curve"][0]["synthesis_losses"]) == {"ce", "bn", "tv", "l2"}


def _kd_inputs(monkeypatch, digits_teacher, digits_test, transfer, settings):
    """Run a Fast-hosted distillation and :returns: the images of every KD term, in call order (the
    loop's crop + flip sees each term's batch once), and the pool's images at the end."""
    import cdemi.distill.loop as loop
    from cdemi.invert import Fast

    seen, real = [], loop.random_crop_flip
    monkeypatch.setattr(loop, "random_crop_flip", lambda x, *a: (seen.append(x.detach().cpu().clone()), real(x, *a))[1])
    host = Fast(digits_teacher, digits_test.spec, batch_size=16, g_steps=1, nz=8, ngf=4, warmup=0, seed=0)
    distill_student(digits_teacher, tiny_model(width=0.125), digits_test, settings, host=host, transfer=transfer,
                    progress=False)
    return seen


def _members(batch, of):
    """Which rows of ``batch`` (N, C, H, W) are rows of ``of``."""
    return (batch.flatten(1)[:, None] == of.flatten(1)[None]).all(2).any(1)


def test_two_term_kd_steps_take_one_pool_batch_and_one_condensed_batch_of_equal_size(digits_teacher, digits_train,
                                                                                   digits_test, monkeypatch):
    transfer = real_subset(digits_train, 3, seed=0).images
    settings = DistillSettings(epochs=2, kd_steps=3, batch_size=8, lr=0.05, temperature=4.0, seed=0)
    naive = _kd_inputs(monkeypatch, digits_teacher, digits_test, transfer, settings)
    assert len(naive) == 2 * 2 * 3 and all(len(x) == 8 for x in naive)  # two terms per step, each batch_size
    pool_terms, condensed_terms = naive[0::2], naive[1::2]
    assert all(bool(_members(x, transfer).all()) for x in condensed_terms)  # the condensed term is present ...
    assert not any(bool(_members(x, transfer).any()) for x in pool_terms)  # ... and the pool holds no condensed image
    plain = _kd_inputs(monkeypatch, digits_teacher, digits_test, None, settings)
    assert len(plain) == 2 * 3 and not any(bool(_members(x, transfer).any()) for x in plain)


def test_synthesis_every_k_epochs_keeps_the_kd_steps_and_needs_a_host(digits_teacher, digits_train, digits_test):
    from cdemi import params

    host = DeepInversion(digits_teacher, digits_train.spec, batch_size=8, iterations=2, seed=0)
    settings = FAST.model_copy(update={"epochs": 4, "kd_steps": 2, "synthesis_every": 2})
    out = distill_student(digits_teacher, tiny_model(width=0.125), digits_test, settings, host=host, progress=False)
    assert [r["synthesised"] for r in out["curve"]] == [8, 0, 8, 0] and out["images_synthesised"] == 16
    assert all(r["kd_seconds"] > 0 for r in out["curve"])  # KD every epoch all the same
    assert settings.digest() != FAST.model_copy(update={"epochs": 4, "kd_steps": 2}).digest()
    from cdemi.resume import digest

    earlier = {k: v for k, v in FAST.loop_settings().items() if k not in ("synthesis_every", "curve_test_per_class")}
    assert FAST.digest() == digest(earlier)  # at its default the new field leaves earlier digests (and states) valid
    with pytest.raises(ValueError, match="synthesis_every is 2 but there is no host"):
        distill_student(digits_teacher, tiny_model(width=0.125), digits_test, settings,
                        transfer=real_subset(digits_train, 1, seed=0).images, progress=False)
    with pytest.raises(params.ParamsError, match="synthesis_every is 3 but the run has no host"):
        params.validate({"profile": "smoke", "data": {"dataset": "digits"},
                         "distill": {"r": {"teacher": "t.pt", "student": {"arch": "resnet18"}, "transfer": "c.pt",
                                           "synthesis_every": 3}}})


def test_resume_after_interruption_matches_an_uninterrupted_run(digits_teacher, digits_train, digits_test, tmp_path,
                                                                tally):
    def run(state=None, die_at=None):
        host = DeepInversion(digits_teacher, digits_train.spec, batch_size=8, iterations=2, seed=0)
        if die_at is not None:
            interrupt_synthesis(host, die_at)
        student = tiny_model(width=0.125)
        return distill_student(digits_teacher, student, digits_test, FAST, host=host, state_path=state, progress=False), student

    whole, s_whole = run()
    tally.fault("interruption mid-stage (SIGKILL, KeyboardInterrupt)")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "d.state", die_at=3)
    resumed, s_resumed = run(tmp_path / "d.state")
    assert torch.equal(_weights(s_whole), _weights(s_resumed))
    assert [r["test_accuracy"] for r in resumed["curve"]] == [r["test_accuracy"] for r in whole["curve"]]


def test_nothing_to_distil_on_is_refused(digits_teacher, digits_test, tally):
    tally.bad_input("run that contradicts its models, data or variant")
    with pytest.raises(ValueError, match="nothing to distil on"):
        distill_student(digits_teacher, tiny_model(), digits_test, FAST)


def test_a_student_or_teacher_of_another_class_count_is_refused(digits_teacher, digits_test, tally):
    from cdemi import models

    tally.bad_input("run that contradicts its models, data or variant", 2)

    wrong = models.build("resnet18", num_classes=7, in_channels=1, width=0.0625)
    with pytest.raises(ValueError, match="the student predicts 7 classes but digits has 10: build the student with num_classes=10"):
        distill_student(digits_teacher, wrong, digits_test, FAST, transfer=torch.zeros(4, 1, 8, 8))
    with pytest.raises(ValueError, match="the teacher predicts 7 classes"):
        distill_student(wrong, tiny_model(), digits_test, FAST, transfer=torch.zeros(4, 1, 8, 8))


def _entry(tmp_path, digits_teacher, **overrides):
    from cdemi import params
    from cdemi.models.checkpoint import save_classifier

    save_classifier(tmp_path / "teacher.pt", digits_teacher, "resnet18", {"num_classes": 10, "in_channels": 1, "width": 0.25},
                    "digits", test_accuracy=96.0)
    run = {"teacher": str(tmp_path / "teacher.pt"), "teacher_arch": "resnet18",
           "student": {"arch": "resnet18", "width": 0.0625}, "host": "fast",
           "host_params": {"batch_size": 16, "g_steps": 1, "nz": 8, "ngf": 4, "warmup": 0},
           "epochs": 2, "kd_steps": 2, "batch_size": 16, "temperature": 4.0, **overrides}
    prof = params.validate({"profile": "smoke", "data": {"dataset": "digits"}, "distill": {"r": run}})
    return prof.distill["r"], prof


def test_distill_entry_writes_a_complete_run_record(digits_teacher, digits_train, tmp_path):
    import json

    from cdemi.data.condensed import save_condensed
    from cdemi.distill import distill_entry

    cs_rec = save_condensed(tmp_path / "cs.pt", real_subset(digits_train, 2, seed=0))
    run, prof = _entry(tmp_path, digits_teacher, transfer=str(tmp_path / "cs.pt"), variant="naive")
    rec = distill_entry("r", run, prof.data, prof.runtime, tmp_path / "r.json", progress=False)
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(rec))
    assert rec["format"] == "cdemi-run-v1" and rec["host"] == "fast" and rec["variant"] == "naive"
    assert rec["transfer"] == {"sha256": cs_rec["sha256"], "method": "random_real", "ipc": 2}
    assert len(rec["teacher_sha256"]) == 64 and len(rec["config_hash"]) == 16 and rec["teacher_accuracy"] == 96.0
    assert [r["epoch"] for r in rec["curve"]] == [1, 2] and rec["images_synthesised"] == 32
    assert rec["best_accuracy"] >= rec["final_accuracy"] and rec["peak_memory_mb"] > 0


def test_distill_entry_refuses_a_teacher_of_another_architecture_before_any_work(digits_teacher, tmp_path, tally):
    tally.bad_input("checkpoint of another architecture, dataset or class count")
    from cdemi.artifacts import ArtifactError
    from cdemi.distill import distill_entry

    run, prof = _entry(tmp_path, digits_teacher, teacher_arch="resnet34")
    with pytest.raises(ArtifactError, match="has architecture 'resnet18', expected 'resnet34'"):
        distill_entry("r", run, prof.data, prof.runtime, tmp_path / "r.json", progress=False)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.state").exists()


def test_variants_are_derived_from_the_run_and_checked(digits_teacher, tmp_path, tally):
    from cdemi import params

    cs = str(tmp_path / "cs.pt")
    assert _entry(tmp_path, digits_teacher)[0].variant == "plain"
    assert _entry(tmp_path, digits_teacher, transfer=cs)[0].variant == "naive"
    guided = _entry(tmp_path, digits_teacher, transfer=cs, variant="guided")[0]
    assert guided.guidance.conditional and guided.guidance.weight == 1.0 and guided.guidance.layer == "penultimate"
    uncond = _entry(tmp_path, digits_teacher, transfer=cs, variant="guided-uncond")[0]
    assert not uncond.guidance.conditional
    ablation = _entry(tmp_path, digits_teacher, transfer=cs, guidance={"weight": 0.5, "augment": False, "layer": "layer3"})[0]
    assert ablation.variant == "guided" and ablation.guidance.weight == 0.5
    assert _entry(tmp_path, digits_teacher, transfer=cs, host=None, host_params={})[0].variant == "kd-only"
    for overrides, message in (
            ({"transfer": cs, "variant": "plain"}, "variant 'plain' contradicts the run, which is 'naive'"),
            ({"variant": "guided"}, "guidance needs the condensed .* set it aligns to: set transfer"),
            ({"transfer": cs, "variant": "guided", "guidance": {"conditional": False}},
             "variant 'guided' contradicts the run, which is 'guided-uncond'"),
            ({"transfer": cs, "host": None, "host_params": {}, "guidance": {}}, "guidance steers an inversion host"),
            ({"transfer": cs, "guidance": {"loss": "wgan"}}, "distill.r.guidance.loss"),
            ({"transfer": cs, "variant": "fancy"}, "distill.r.variant")):
        tally.bad_input("run that contradicts its models, data or variant")
        with pytest.raises(params.ParamsError, match=message):
            _entry(tmp_path, digits_teacher, **overrides)


def test_a_guided_few_shot_entry_records_guidance_and_diagnostics(digits_teacher, digits_train, tmp_path):
    """Few-shot: k real images per class (a k-shot set) stand where the condensed set stood."""
    from cdemi.data.condensed import save_condensed
    from cdemi.distill import distill_entry

    save_condensed(tmp_path / "cs.pt", real_subset(digits_train, 2, seed=0, method="kshot"))
    run, prof = _entry(tmp_path, digits_teacher, transfer=str(tmp_path / "cs.pt"), variant="guided",
                       real_reference_per_class=5)
    rec = distill_entry("r", run, prof.data, prof.runtime, tmp_path / "r.json", progress=False)
    assert rec["variant"] == "guided" and rec["config"]["guidance"]["conditional"] is True
    assert rec["transfer"]["method"] == "kshot" and rec["transfer"]["ipc"] == 2
    assert set(rec["diagnostics_mean"]) == {"d_loss", "d_acc_real", "d_acc_fake", "l_fa", "teacher_accuracy",
                                            "distance_condensed", "distance_real"}
    assert rec["reference_distances"]["condensed_to_real"] > 0 and rec["diagnostics_reference"] == rec["transfer"]
    assert all(0 <= r["guidance"]["d_acc_real"] <= 1 for r in rec["curve"])


def test_a_guided_entry_refuses_a_condensed_set_of_another_resolution(digits_teacher, tmp_path, tally):
    tally.bad_input("condensed set of another dataset, IPC or resolution")
    from cdemi.data.condensed import CondensedSet, save_condensed
    from cdemi.distill import distill_entry

    wrong = CondensedSet(torch.rand(10, 1, 28, 28), torch.arange(10), "fashion_mnist", "dm", 1)
    save_condensed(tmp_path / "fm.pt", wrong)
    run, prof = _entry(tmp_path, digits_teacher, transfer=str(tmp_path / "fm.pt"), variant="guided")
    with pytest.raises(Exception, match="fashion_mnist"):
        distill_entry("r", run, prof.data, prof.runtime, tmp_path / "r.json", progress=False)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.state").exists()


def test_a_saved_state_of_another_run_configuration_is_set_aside(digits_teacher, digits_train, digits_test, tmp_path):
    def run(digest):
        host = DeepInversion(digits_teacher, digits_train.spec, batch_size=8, iterations=2, seed=0)
        return distill_student(digits_teacher, tiny_model(width=0.125), digits_test, FAST, host=host,
                       state_path=tmp_path / "d.state", run_digest=digest, progress=False)

    first = run("host-params-a")
    again = run("host-params-b")  # same loop settings, other host parameters: must not resume
    assert (tmp_path / "d.stale").exists()
    assert again["synthesis_seconds"] > 0 and [r["test_accuracy"] for r in again["curve"]] == \
        [r["test_accuracy"] for r in first["curve"]]
