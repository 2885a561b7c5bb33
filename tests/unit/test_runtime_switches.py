"""The GPU-path switches of ``runtime`` (autocast, cuDNN autotuner, pinned copies, torch.compile, memory
layout): each resolves as documented for the device at hand, and the distillation loop honours it. Run on
the CPU: bf16 autocast exists there too, and compilation and pinning are observed through their calls."""
import pytest
import torch

from cdemi import params
from cdemi import runtime as rt
from cdemi.data.subsets import real_subset
from cdemi.distill import DistillSettings, distill_student
from cdemi.invert import Fast

from ..conftest import tiny_model

CPU = torch.device("cpu")
SHORT = DistillSettings(epochs=2, kd_steps=3, batch_size=16, lr=0.05, temperature=4.0, seed=0)


def _run(teacher, train, test, accel, host=True):
    torch.manual_seed(0)
    student = tiny_model(width=0.125)
    fast = Fast(teacher, train.spec, batch_size=16, g_steps=2, nz=16, ngf=8, warmup=0, seed=0) if host else None
    out = distill_student(teacher, student, test, SHORT, host=fast, transfer=real_subset(train, 2, seed=0).images,
                  accel=accel, progress=False)
    return out, student


def _spy_kd_kl(monkeypatch, module) -> list:
    """Replace ``module.kd_kl`` by a spy; :returns: the list it fills with (student logits, teacher
    logits, KL) dtypes, one tuple per call."""
    seen = []
    real_kd_kl = module.kd_kl

    def spy(student_logits, teacher_logits, temperature):
        out = real_kd_kl(student_logits, teacher_logits, temperature)
        seen.append((student_logits.dtype, teacher_logits.dtype, out.dtype))
        return out

    monkeypatch.setattr(module, "kd_kl", spy)
    return seen


def test_auto_switches_are_off_on_the_cpu_and_on_with_cuda():
    cpu = rt.accelerate(params.RuntimeParams(), CPU)
    assert (cpu.amp_dtype, cpu.pin_memory, cpu.cudnn_benchmark, cpu.compile, cpu.channels_last) == \
        (None, False, False, False, True)
    assert not torch.backends.cudnn.benchmark
    forced = rt.accelerate(params.RuntimeParams(amp="bf16", cudnn_benchmark=True, compile=True, channels_last=False), CPU)
    try:
        assert forced.amp_dtype == torch.bfloat16 and forced.compile and not forced.channels_last
        assert torch.backends.cudnn.benchmark  # applied by accelerate
    finally:
        torch.backends.cudnn.benchmark = False


def test_pinned_memory_without_cuda_is_refused_with_the_key_and_the_fix():
    with pytest.raises(ValueError, match=r"runtime.pin_memory is true but the device is cpu.*'auto' or false"):
        rt.accelerate(params.RuntimeParams(pin_memory=True), CPU)
    with pytest.raises(params.ParamsError, match=r"runtime.amp: Input should be 'auto', 'bf16', 'teacher' or 'off'"):
        params.validate({"runtime": {"amp": "fp16"}})


def test_autocast_runs_forward_passes_in_bf16_and_keeps_the_kl_in_float32(digits_teacher, digits_train, digits_test,
                                                                             monkeypatch):
    import cdemi.distill.loop as loop

    seen = _spy_kd_kl(monkeypatch, loop)
    _, student = _run(digits_teacher, digits_train, digits_test, rt.Acceleration(CPU, amp_dtype=torch.bfloat16))
    assert seen and all(s == torch.bfloat16 and t == torch.bfloat16 and o == torch.float32 for s, t, o in seen)
    assert all(p.dtype == torch.float32 for p in student.parameters())  # autocast leaves the weights in float32
    seen.clear()
    _, plain = _run(digits_teacher, digits_train, digits_test, rt.Acceleration(CPU))
    assert seen and all(s == torch.float32 and t == torch.float32 for s, t, _ in seen)
    # the switch changed the arithmetic, not only a flag
    assert not all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), plain.state_dict().values()))


def test_the_synthesis_stays_float32_under_bf16_autocast(digits_teacher, digits_train, digits_test, monkeypatch):
    """bf16 synthesis misses the BN statistics (see ``Acceleration``): the loop never autocasts a host."""
    inside = []
    real = Fast.synthesize

    def spy(self, *args, **kwargs):
        inside.append(torch.is_autocast_enabled("cpu"))
        batch = real(self, *args, **kwargs)
        assert batch.images.dtype == torch.float32
        return batch

    monkeypatch.setattr(Fast, "synthesize", spy)
    _run(digits_teacher, digits_train, digits_test, rt.Acceleration(CPU, amp_dtype=torch.bfloat16))
    assert inside == [False, False]  # one synthesis per epoch, none under autocast


def test_teacher_autocast_runs_the_kd_teacher_alone_in_bf16_and_records_name_it(digits_teacher, digits_train,
                                                                                digits_test, monkeypatch):
    """``runtime.amp: teacher``: the teacher's KD forward in bf16, the student's in float32, the KL in
    float32; the switch is named for the run record and changes the numbers."""
    import cdemi.distill.loop as loop

    seen = _spy_kd_kl(monkeypatch, loop)
    accel = rt.accelerate(params.RuntimeParams(amp="teacher"), CPU)
    assert (accel.amp_dtype, accel.teacher_amp_dtype) == (None, torch.bfloat16)
    assert accel.switches() == {"teacher_autocast": "torch.bfloat16"} and rt.accelerate(params.RuntimeParams(), CPU).switches() == {}
    _, with_switch = _run(digits_teacher, digits_train, digits_test, accel, host=False)
    assert seen and all(s == torch.float32 and t == torch.bfloat16 and o == torch.float32 for s, t, o in seen)
    _, plain = _run(digits_teacher, digits_train, digits_test, rt.Acceleration(CPU, channels_last=True), host=False)
    assert not all(torch.equal(a, b) for a, b in zip(with_switch.state_dict().values(), plain.state_dict().values()))


def test_the_default_acceleration_is_the_plain_float32_path(digits_teacher, digits_train, digits_test):
    """``accel`` left out and the CPU's resolved defaults (NCHW here) give bitwise the same student."""
    plain, s_plain = _run(digits_teacher, digits_train, digits_test, None)
    resolved, s_resolved = _run(digits_teacher, digits_train, digits_test,
                                rt.accelerate(params.RuntimeParams(channels_last=False), CPU))
    assert all(torch.equal(a, b) for a, b in zip(s_plain.state_dict().values(), s_resolved.state_dict().values()))
    assert [r["test_accuracy"] for r in plain["curve"]] == [r["test_accuracy"] for r in resolved["curve"]]


def test_compile_switch_sends_the_student_through_torch_compile(digits_teacher, digits_train, digits_test, monkeypatch):
    compiled = []

    def fake_compile(model, **kwargs):  # the real one costs 35-60 s here; the call is what is checked
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    _, student = _run(digits_teacher, digits_train, digits_test, rt.Acceleration(CPU, compile=True), host=False)
    assert compiled == [student]
    compiled.clear()
    _run(digits_teacher, digits_train, digits_test, rt.Acceleration(CPU), host=False)
    assert compiled == []


def test_pinned_copies_are_made_when_the_switch_is_on(monkeypatch):
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(self.shape) or self)
    x = torch.rand(2, 1, 4, 4)
    assert torch.equal(rt.Acceleration(CPU, pin_memory=True).to_device(x), x) and pinned == [x.shape]
    pinned.clear()
    rt.Acceleration(CPU).to_device(x)
    assert pinned == []


def test_narrow_resnets_stay_nchw_on_the_cpu_and_the_default_profiles_nets_do_not():
    """oneDNN's NHWC backward of a 1x1 stride-2 convolution with < 16 input channels fails on the CPU
    (heap corruption on AVX-512, an endless loop on AVX2): such nets keep the NCHW layout."""
    from cdemi import models

    narrow = models.build("resnet18", num_classes=10, in_channels=1, width=0.0625)
    assert not rt.channels_last_safe(narrow)
    for arch in ("resnet18", "resnet34", "mobilenetv2"):  # the default profile's teacher and students
        assert rt.channels_last_safe(models.build(arch, num_classes=10, in_channels=1, width=0.25))
    assert not rt.channels_last_safe(models.build("resnet34", num_classes=10, in_channels=1, width=0.25), narrow)


def test_teacher_autocast_reaches_kd_on_the_training_set(digits_teacher, digits_train, digits_test, monkeypatch):
    """``runtime.amp: teacher`` also holds for KD on the whole training set (``kd_full``): teacher logits
    bf16, student logits float32."""
    import cdemi.train.loop as train_loop
    from cdemi.train import TrainSettings, train_classifier

    seen = _spy_kd_kl(monkeypatch, train_loop)
    small = digits_train.subset(torch.arange(64))
    train_classifier(tiny_model(width=0.125), small, digits_test, TrainSettings(epochs=1, batch_size=32, lr=0.05),
                     teacher=digits_teacher, accel=rt.accelerate(params.RuntimeParams(amp="teacher"), CPU),
                     progress=False)
    assert seen and all(s == torch.float32 and t == torch.bfloat16 and o == torch.float32 for s, t, o in seen)


def test_the_cpu_kind_names_the_model_and_the_flags(tmp_path, monkeypatch):
    """Two virtual CPUs that share a generic name but not their model or flags are two kinds."""
    from pathlib import Path

    block = "processor\t: {i}\nmodel name\t: Intel(R) Xeon(R) Processor\ncpu family\t: 6\nmodel\t\t: {model}\n" \
            "stepping\t: 1\nflags\t\t: {flags}\n\n"
    cpuinfo = tmp_path / "cpuinfo"
    real_read = Path.read_text

    def kind(model, flags):
        cpuinfo.write_text("".join(block.format(i=i, model=model, flags=flags) for i in range(2)))
        monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: real_read(cpuinfo if str(self) == "/proc/cpuinfo"
                                                                                  else self, *a, **k))
        return rt.machine()

    a = kind(143, "fpu sse avx512f amx_tile")
    assert a["cpu"] == "Intel(R) Xeon(R) Processor" and a["cpu_model"] == "family 6 model 143 stepping 1"
    assert a == kind(143, "amx_tile avx512f fpu sse")  # the order of the flags does not matter
    assert a != kind(106, "fpu sse avx512f amx_tile") and a != kind(143, "fpu sse avx512f")
