"""The parameter schema of a profile file (``params.yaml``), checked before any work.

``load("params.yaml")`` returns a validated :class:`Profile`; any unknown key, wrong
type or out-of-range value raises :class:`ParamsError` naming every offending key
and what it allows.  The same section classes build a run from keyword arguments,
so a notebook and a Python caller share one set of defaults.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Annotated, ClassVar, Literal, Optional, Union

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError,
                      model_serializer, model_validator)

from .data import DATASETS
from .models import ARCHITECTURES
from .resume import digest


class ParamsError(ValueError):
    """A profile file or parameter section is invalid; the message lists each problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    # fields added after runs were recorded: left out of dumps (records' configs, hashes) while at the
    # value they had before they existed, so that those records still match their entries
    _OMITTED_AT: ClassVar[dict[str, object]] = {}

    @model_serializer(mode="wrap")
    def _omit_unchanged_new_fields(self, handler):
        data = handler(self)
        for name, unset in self._OMITTED_AT.items():
            if name in data and data[name] == unset:
                del data[name]
        return data


def _registered(registry, what: str):
    """A validator: the value is a name of ``registry`` (the error lists the allowed ones)."""
    def check(v: str) -> str:
        if v not in registry:
            raise ValueError(f"unknown {what} {v!r}; allowed: {', '.join(registry.names())}")
        return v
    return check


DatasetName = Annotated[str, AfterValidator(_registered(DATASETS, "dataset"))]
ArchName = Annotated[str, AfterValidator(_registered(ARCHITECTURES, "architecture"))]


class DataParams(_Section):
    """:param dataset: a registered dataset; :param root: data folder (None: ``$CDEMI_DATA``, then Debian's)."""

    dataset: DatasetName = "fashion_mnist"
    root: Optional[str] = None


class RuntimeParams(_Section):
    """:param threads: CPU threads (results on the CPU depend on it; 0 = torch's default).
    :param device: ``auto`` (CUDA if present), ``cpu`` or ``cuda[:i]``.
    :param channels_last: NHWC memory layout (faster ResNets on CPU and GPU).
    :param amp: bf16 autocast of forward passes: ``auto`` (``bf16`` on a CUDA device that has it,
        off on the CPU), ``bf16`` (KD, evaluation and training; the synthesis stays float32, see
        :class:`cdemi.runtime.Acceleration`), ``teacher`` (the teacher's KD forward alone) or
        ``off``; the KL and cross-entropy stay float32.  ``bf16`` and ``teacher`` change the
        numbers; on a CPU with AMX they make KD 1.12x / 1.18x faster with a MobileNetV2 w0.25
        student and 2.0x / 1.17x with a ResNet-18 w0.25 one (``benchmarks/kd_paths.py``).
    :param cudnn_benchmark: cuDNN autotuner: ``auto`` (on with CUDA), true or false.
    :param pin_memory: pinned host batches with non-blocking copies: ``auto`` (on with CUDA),
        true (CUDA only) or false.
    :param compile: ``torch.compile`` the student (pays off on long GPU runs; 35-60 s of
        compilation on this CPU).
    See :func:`cdemi.runtime.accelerate`."""

    threads: int = Field(2, ge=0, le=256)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    channels_last: bool = True
    amp: Literal["auto", "bf16", "teacher", "off"] = "auto"
    cudnn_benchmark: Union[Literal["auto"], bool] = "auto"
    pin_memory: Union[Literal["auto"], bool] = "auto"
    compile: bool = False


class TrainSettings(_Section):
    """The settings :func:`cdemi.train.train_classifier` receives (declared once: a profile's
    ``train`` and ``kd_full`` entries are :class:`TrainRun`, which extends this).

    :param epochs: passes over the training set.
    :param batch_size: images per step (split among the processes under ``torchrun``).
    :param lr: peak learning rate of the one-cycle schedule (SGD, Nesterov momentum).
    :param momentum: SGD momentum.
    :param weight_decay: L2 penalty.
    :param seed: seeds the weights' initialisation (by the caller) and the data order.
    :param augment: random crop (padding = image side / 8) and horizontal flip.
    :param warmup: fraction of the steps spent rising to ``lr``.
    :param temperature: KD temperature; used only when a teacher is given.
    """

    epochs: int = Field(15, ge=1, le=10000)
    batch_size: int = Field(256, ge=1, le=65536)
    lr: float = Field(0.1, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    augment: bool = True
    warmup: float = Field(0.15, ge=0, lt=1)
    temperature: float = Field(4.0, gt=0, le=100)

    def loop_settings(self) -> dict:
        """The fields of :class:`TrainSettings` alone (a :class:`TrainRun` has more)."""
        return self.model_dump(include=set(TrainSettings.model_fields))

    def digest(self) -> str:
        """Identity of the loop settings (the training resume key)."""
        return digest(self.loop_settings())


class TrainRun(TrainSettings):
    """One classifier training run (teacher, student from scratch, or KD on full data).

    :param arch: registered architecture; :param width: channel multiplier.
    :param dataset: registered dataset (None: the profile's ``data.dataset``).
    :param teacher: path of a teacher checkpoint for KD on the full training set;
        None trains from labels.
    The loop's fields are those of :class:`TrainSettings`.
    """

    arch: ArchName
    dataset: Optional[DatasetName] = None
    width: float = Field(1.0, gt=0, le=8)
    teacher: Optional[str] = None



class _CondenseBase(_Section):
    """Shared fields of a ``condense`` entry: method, images per class, seed, dataset."""

    ipc: int = Field(ge=1, le=1000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    dataset: Optional[DatasetName] = None



class _Optimised(_CondenseBase):
    init: Literal["real", "noise"] = "real"
    iterations: int = Field(ge=0, le=10**6)
    lr_img: float = Field(gt=0, le=1e5)
    width: float = Field(1.0, gt=0, le=8)
    augment: bool = True


class DMRun(_Optimised):
    """DM (see :func:`cdemi.condense.condense_dm`)."""

    method: Literal["dm"]
    batch_real: int = Field(256, ge=1, le=100000)


class DSARun(_Optimised):
    """DSA (see :func:`cdemi.condense.condense_dsa`); loops default by IPC."""

    method: Literal["dsa"]
    batch_real: int = Field(256, ge=1, le=100000)
    outer_loop: Optional[int] = Field(None, ge=1, le=1000)
    inner_loop: Optional[int] = Field(None, ge=1, le=1000)
    lr_net: float = Field(0.01, gt=0, le=10)
    batch_train: int = Field(256, ge=1, le=100000)


class MTTRun(_Optimised):
    """MTT (see :func:`cdemi.condense.condense_mtt`) and its expert trajectories."""

    method: Literal["mtt"]
    syn_steps: int = Field(20, ge=1, le=1000)
    expert_epochs: int = Field(2, ge=1, le=100)
    max_start_epoch: int = Field(10, ge=0, le=1000)
    lr_lr: float = Field(1e-5, gt=0, le=1)
    syn_lr: float = Field(0.01, gt=0, le=10)
    batch_syn: Optional[int] = Field(None, ge=1, le=100000)
    num_experts: int = Field(10, ge=1, le=1000)
    expert_train_epochs: int = Field(15, ge=1, le=1000)
    expert_lr: float = Field(0.01, gt=0, le=10)


class RealRun(_CondenseBase):
    """``ipc`` real images per class: ``random_real`` (the baseline of a condensed set of the
    same size) or ``kshot`` (the k real images of the few-shot setting, k = ``ipc``)."""

    method: Literal["random_real", "kshot"]


CondenseRun = Annotated[Union[DMRun, DSARun, MTTRun, RealRun], Field(discriminator="method")]


class ImportRun(_CondenseBase):
    """A public condensed-set file read as its own code writes it (``imports`` section, stage
    ``import@<name>``; see :mod:`cdemi.data.public_formats`), then evaluated like a condensed set.

    :param format: ``vico`` (a VICO-UoE DC / DSA / DM ``res_*.pt``) or ``mtt`` (MTT's output folder
        holding ``images_best.pt`` and ``labels_best.pt``).
    :param source: the file (``vico``) or the folder (``mtt``), a dependency of the stage.
    :param sha256: the SHA-256 of the download you trust (the ``res_*.pt`` file, or MTT's
        ``images_best.pt``): any other bytes are refused before anything is read.
    :param ipc: images per class the file must hold (checked against it).
    :param experiment: which of a ``vico`` file's experiments (0 = the first).
    :param zca: ``mtt`` only: the run used ``--zca`` (the whitening is refitted on the training set to undo it).
    """

    method: Literal["import"] = "import"
    format: Literal["vico", "mtt"]
    source: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    experiment: int = Field(0, ge=0, le=1000)
    zca: bool = False

    @model_validator(mode="after")
    def _format_settings(self) -> "ImportRun":
        if self.format == "mtt" and self.experiment:
            raise ValueError("experiment applies to vico files only (an MTT folder holds one set): remove it")
        if self.format == "vico" and self.zca:
            raise ValueError("zca applies to MTT folders only (VICO-UoE files are normalised, not whitened): remove it")
        if "seed" in self.model_fields_set:
            raise ValueError("seed has no effect on an import (the file is read, nothing is drawn): remove it")
        return self


class EvaluateCondensed(_Section):
    """ConvNet-from-scratch evaluation of condensed sets (see :mod:`cdemi.condense.evaluate`)."""

    epochs: int = Field(1000, ge=1, le=100000)
    runs: int = Field(3, ge=1, le=100)
    lr: float = Field(0.01, gt=0, le=10)
    batch_size: int = Field(256, ge=1, le=100000)
    width: float = Field(1.0, gt=0, le=8)
    augment: bool = True


class StudentParams(_Section):
    """:param arch: registered architecture of the student; :param width: its channel multiplier."""

    arch: ArchName
    width: float = Field(1.0, gt=0, le=8)



class GuidanceParams(_Section):
    """The feature-alignment module of a guided run (see :class:`cdemi.guidance.FeatureAlignment`).

    :param weight: lambda_FA; :param layer: ``penultimate`` or a submodule path of the teacher;
    :param conditional: projection-conditioned discriminator (False: unconditional);
    :param loss: ``nonsaturating`` or ``hinge``; :param augment: DiffAugment before the teacher;
    :param hidden: discriminator width; :param d_lr, d_betas, d_steps: its Adam and steps per
    generator step; :param real_batch: condensed images per discriminator step;
    :param held_out_per_class: condensed images per class kept out of the discriminator's training,
    on which its accuracy is recorded at every synthesis (0: none held out, nothing recorded).
    """

    weight: float = Field(1.0, ge=0, le=100)
    layer: str = Field("penultimate", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    conditional: bool = True
    loss: Literal["nonsaturating", "hinge"] = "nonsaturating"
    augment: bool = True
    hidden: int = Field(256, ge=1, le=65536)
    d_lr: float = Field(2e-4, gt=0, le=1)
    d_betas: list[float] = Field([0.5, 0.999], min_length=2, max_length=2)
    d_steps: int = Field(1, ge=1, le=100)
    real_batch: int = Field(128, ge=1, le=65536)
    held_out_per_class: int = Field(0, ge=0, le=65536)
    _OMITTED_AT: ClassVar[dict[str, object]] = {"held_out_per_class": 0}


VARIANTS = ("plain", "naive", "guided", "guided-uncond", "kd-only")


_POSITIVE_HOST_PARAMS = ("batch_size", "g_steps", "iterations", "nz", "ngf")


def _host_param_problem(name: str, value, default, annotation=None) -> str:
    """Why ``value`` cannot be the host constructor's ``name`` (whose default is ``default`` and
    type hint ``annotation``), or an empty string: the type of the default (an int where it is an
    int, a number where it is a float, a bool where it is a bool; for a default of None, the type
    its ``Optional[...]`` hint names), finite and not negative; sizes, step counts and learning
    rates above zero."""
    import math
    import typing

    if default is None and annotation is not None:  # Optional[int] -> judged as an int default would be
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        default = kinds[0]() if len(kinds) == 1 and kinds[0] in (bool, int, float, str) else None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int) and not (number and isinstance(value, int)):
        return "must be an integer"
    if isinstance(default, float) and not number:
        return "must be a number"
    if isinstance(default, str) and not isinstance(value, str):
        return "must be a string"
    if name == "bn_statistics":
        from .invert.bn_stats import METHODS

        if value not in METHODS:
            return f"must be one of {', '.join(METHODS)}"
    if number:
        if not math.isfinite(value) or value < 0:
            return "must be a finite number >= 0"
        if value == 0 and (name in _POSITIVE_HOST_PARAMS or name.startswith("lr")):
            return "must be above 0"
    return ""


class DistillSettings(_Section):
    """The settings :func:`cdemi.distill.distill_student` receives (declared once: a profile's
    ``distill`` entries are :class:`DistillRun`, which extends this).

    :param epochs: synthesis + KD rounds; :param kd_steps: student steps per epoch;
    :param batch_size: images per KD batch (pool and transfer alike; split among the processes
    under ``torchrun``); :param lr: SGD peak lr (cosine to 0); :param momentum, weight_decay: SGD's;
    :param temperature: tau; :param mixing: ``two_term`` or ``concat``;
    :param pool_max: pool cap (None = unbounded); :param seed: data order and augmentation;
    :param curve_test_per_class: the per-epoch curve is measured on this many test images per
    class (a fixed draw, seed 0); the last epoch always on the whole test set (None: every
    epoch on the whole test set).
    :param synthesis_every: the host synthesises at the start of every this many epochs (default 1:
    every epoch); a larger value buys a costlier synthesis per batch (DeepInversion's 1,000+
    pixel steps) at the same number of KD steps.
    """

    epochs: int = Field(20, ge=1, le=100000)
    kd_steps: int = Field(50, ge=1, le=100000)
    batch_size: int = Field(128, ge=1, le=65536)
    lr: float = Field(0.1, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    temperature: float = Field(20.0, gt=0, le=100)
    mixing: Literal["two_term", "concat"] = "two_term"
    pool_max: Optional[int] = Field(None, ge=1)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    curve_test_per_class: Optional[int] = Field(None, ge=1, le=100000)
    synthesis_every: int = Field(1, ge=1, le=100000)
    _OMITTED_AT: ClassVar[dict[str, object]] = {"synthesis_every": 1}

    def loop_settings(self) -> dict:
        """The fields of :class:`DistillSettings` alone (a :class:`DistillRun` has more)."""
        return self.model_dump(include=set(DistillSettings.model_fields))

    def digest(self) -> str:
        """Identity of the loop settings (part of the distillation resume key; in run records)."""
        fields = self.loop_settings()
        if fields["curve_test_per_class"] is None:
            del fields["curve_test_per_class"]
        return digest(fields)


class DistillRun(DistillSettings):
    """One distillation run: a student distilled from ``teacher`` on synthetic images of an
    inversion ``host`` and/or a fixed ``transfer`` set (see :func:`cdemi.distill.distill_student`).

    :param host: a registered inversion host (``deepinversion``, ``fast``, ...), or None for
        plain KD on ``transfer``; :param host_params: keyword arguments of that host's
        constructor (checked against its signature); :attr:`host_settings` holds them with the
        constructor's defaults filled in.
    :param teacher_arch: the architecture the teacher checkpoint must hold (None: any).
    :param transfer: path of a condensed set (or k-shot / random real subset) used as extra
        transfer data, or None.
    :param guidance: the feature-alignment module (None: no guidance).
    :param variant: one of :data:`VARIANTS`, named in run records; None derives it, and a
        given one must agree with the run: ``plain`` (host alone), ``naive`` (host + transfer
        set in KD, the paper's "+CS"), ``guided`` / ``guided-uncond`` (host guided by the
        transfer set with a conditional / unconditional discriminator, plus two-term KD;
        ``guidance`` may be left out to take its defaults), ``kd-only`` (KD on the transfer
        set alone).
    :param diagnostics_reference: the condensed set the diagnostics measure synthetic features
        against (None: the transfer set).
    :param real_reference_per_class: real training images per class for the ground-truth
        feature distance (0: none).
    The loop's fields are those of :class:`DistillSettings`.
    """

    teacher: str
    teacher_arch: Optional[str] = None
    student: StudentParams
    host: Optional[str] = None
    host_params: dict[str, Union[bool, int, float, str]] = {}
    transfer: Optional[str] = None
    guidance: Optional[GuidanceParams] = None
    variant: Optional[Literal[VARIANTS]] = None
    diagnostics_reference: Optional[str] = None
    real_reference_per_class: int = Field(0, ge=0, le=10000)
    dataset: Optional[DatasetName] = None
    _host_settings: dict = PrivateAttr(default_factory=dict)

    @property
    def host_settings(self) -> dict:
        """Every keyword of the host's constructor but ``teacher``, ``spec`` and ``seed``: the
        entry's ``host_params`` over the constructor's defaults (empty without a host)."""
        return dict(self._host_settings)

    @model_validator(mode="after")
    def _host_and_transfer(self) -> "DistillRun":
        import inspect

        from .invert import HOSTS

        if self.host is None:
            if self.transfer is None:
                raise ValueError("a run needs an inversion host, a transfer set, or both (host and transfer are null)")
            if self.host_params:
                raise ValueError("host_params given without a host")
            if self.synthesis_every != 1:
                raise ValueError(f"synthesis_every is {self.synthesis_every} but the run has no host to synthesise: "
                                 f"drop synthesis_every or set host")
            if self.guidance is not None or self.variant in ("guided", "guided-uncond"):
                raise ValueError("guidance steers an inversion host: set host, or drop guidance")
            return self._settle_variant("kd-only")
        if self.host not in HOSTS:
            raise ValueError(f"unknown inversion host {self.host!r}; allowed: {', '.join(HOSTS.names())}")
        signature = inspect.signature(HOSTS.get(self.host).__init__, eval_str=True).parameters
        accepted = set(signature) - {"self", "teacher", "spec", "seed"}
        unknown = sorted(set(self.host_params) - accepted)
        if unknown:
            raise ValueError(f"host_params {unknown} are not parameters of host {self.host!r}; "
                             f"allowed: {', '.join(sorted(accepted))}")
        for name, value in self.host_params.items():
            problem = _host_param_problem(name, value, signature[name].default, signature[name].annotation)
            if problem:
                raise ValueError(f"host_params.{name} of host {self.host!r} {problem} (got {value!r})")
        self._host_settings = {name: self.host_params.get(name, signature[name].default) for name in sorted(accepted)}
        if self.guidance is None and self.variant in ("guided", "guided-uncond"):
            object.__setattr__(self, "guidance", GuidanceParams(conditional=self.variant == "guided"))
        if self.guidance is not None and self.transfer is None:
            raise ValueError("guidance needs the condensed (or k-shot) set it aligns to: set transfer")
        if self.transfer is None:
            return self._settle_variant("plain")
        if self.guidance is None:
            return self._settle_variant("naive")
        return self._settle_variant("guided" if self.guidance.conditional else "guided-uncond")

    def _settle_variant(self, derived: str) -> "DistillRun":
        if self.variant is None:
            object.__setattr__(self, "variant", derived)
        elif self.variant != derived:
            raise ValueError(f"variant {self.variant!r} contradicts the run, which is {derived!r} (host {self.host}, "
                             f"transfer {self.transfer}, guidance {'on' if self.guidance else 'off'}): "
                             f"drop variant or change the run")
        return self



# where the stages put what they make (dvc.yaml: data/models/<entry>.pt, data/condensed/<entry>.pt)
MODELS_DIR, CONDENSED_DIR = "data/models", "data/condensed"


class ClaimsParams(_Section):
    """How the claims report reads the records (see :mod:`cdemi.report.claims`).

    :param headline_method, headline_ipc: the condensed set of the main table.
    :param level: the two-sided level of the Welch t-test every comparison gets (default 0.05); the
        one value of it: the claims report and the guidance summary both get it from the profile
        (``dvc.yaml`` passes it to their notebooks), no module keeps a copy.
    """

    headline_method: Literal["dm", "dsa", "mtt", "random_real"] = "dm"
    headline_ipc: int = Field(10, ge=1, le=1000)
    level: float = Field(0.05, gt=0, lt=0.5)


class StudyRun(DistillRun):
    """One run of the convergence study (``study`` section, or a ``distill`` entry that gives
    ``validation_per_class``: :data:`GridRun`): a :class:`DistillRun` whose per-epoch
    curve is read on a validation split of the training set and whose test set is read once, at
    its end (:func:`cdemi.distill.distill_student` with ``validation``).  Its record carries the
    split and a ``convergence`` verdict (:mod:`cdemi.convergence`).

    :param validation_per_class: validation images per class, drawn from the training set
        (:func:`cdemi.data.subsets.validation_split`; 500 -> 5,000 on Fashion-MNIST).
    :param validation_seed: the split's seed (the same split in every run that keeps it).
    :param threads: this run's CPU threads (None: ``runtime.threads``); one-thread runs side by
        side use two cores best (``benchmarks/kd_paths.py``).
    ``curve_test_per_class`` must stay null: the curve is the validation split's.
    """

    validation_per_class: int = Field(500, ge=1, le=100000)
    validation_seed: int = Field(0, ge=0, le=2**31 - 1)
    threads: Optional[int] = Field(None, ge=1, le=256)

    @model_validator(mode="after")
    def _curve_on_validation(self) -> "StudyRun":
        from .convergence import min_epochs

        if self.curve_test_per_class is not None:
            raise ValueError(f"curve_test_per_class is {self.curve_test_per_class}: a study run measures its curve on "
                             f"the validation split and reads the test set once, at its end; set it to null")
        if self.epochs < min_epochs():
            raise ValueError(f"epochs is {self.epochs}: the convergence verdict compares two windows of 20% of the "
                             f"epochs, at least 2 each; give a study run at least {min_epochs()} epochs")
        return self


# the two kinds a ``distill`` entry may be, told apart by ``validation_per_class`` (the tags never reach a message)
_ON_TEST, _ON_VALIDATION = "curve on the test set", "curve on a validation split"


def _distill_kind(entry) -> str:
    if isinstance(entry, dict):
        return _ON_VALIDATION if "validation_per_class" in entry else _ON_TEST
    return _ON_VALIDATION if isinstance(entry, StudyRun) else _ON_TEST


GridRun = Annotated[Union[Annotated[StudyRun, Tag(_ON_VALIDATION)], Annotated[DistillRun, Tag(_ON_TEST)]],
                    Discriminator(_distill_kind)]
"""A ``distill`` entry: a :class:`StudyRun` when it gives ``validation_per_class`` (its curve on a
validation split, the test set read once at its end, a ``convergence`` verdict in its record; the
same configuration as a study entry, so the two share a resume key), else a :class:`DistillRun`."""


class Profile(_Section):
    """A whole profile file.

    ``train``: run name -> :class:`TrainRun` trained from the labels (teachers, students
    from scratch); ``kd_full``: run name -> :class:`TrainRun` distilled from its
    ``teacher`` on the whole training set; ``condense``: set name -> a condensation run
    (:class:`DMRun`, :class:`DSARun`, :class:`MTTRun`, :class:`RealRun` by ``method``);
    ``imports``: set name -> :class:`ImportRun` (a public condensed-set file, pinned by SHA-256);
    ``evaluate_condensed``: how condensed sets are evaluated; ``distill``: run name ->
    :data:`GridRun` (model inversion + KD, or KD on a fixed transfer set; a :class:`StudyRun` when
    the entry reads its curve on a validation split); ``study``: run
    name -> :class:`StudyRun` (the convergence study, on a validation split);
    ``claims``: :class:`ClaimsParams`; ``templates``: named groups of keys an entry takes with
    ``use: name, ...`` (:func:`expand_templates`; never validated on their own).
    """

    profile: Literal["default", "paper", "smoke"]
    templates: dict[str, Any] = {}
    data: DataParams = DataParams()
    runtime: RuntimeParams = RuntimeParams()
    train: dict[str, TrainRun] = {}
    kd_full: dict[str, TrainRun] = {}
    condense: dict[str, CondenseRun] = {}
    imports: dict[str, ImportRun] = {}
    evaluate_condensed: EvaluateCondensed = EvaluateCondensed()
    distill: dict[str, GridRun] = {}
    study: dict[str, StudyRun] = {}
    claims: ClaimsParams = ClaimsParams()

    @model_validator(mode="after")
    def _teachers(self) -> "Profile":
        for name, run in self.train.items():
            if run.teacher is not None:
                raise ValueError(f"train.{name}.teacher must be null (runs with a teacher belong under kd_full)")
        for name, run in self.kd_full.items():
            if run.teacher is None:
                raise ValueError(f"kd_full.{name}.teacher is required (a teacher checkpoint path)")
        return self

    @model_validator(mode="after")
    def _references(self) -> "Profile":
        """Paths into a stage's output folder name an entry of that stage, and the claims' headline set
        (when the profile sets ``claims``) is one the profile condenses: a typo such as ``dm_ipc7.pt`` or
        ``headline_ipc: 7`` is refused here, not after the stages before it have run."""
        twice = sorted(set(self.condense) & set(self.imports))
        if twice:
            raise ValueError(f"condense and imports both name {', '.join(twice)}: each writes data/condensed/<name>.pt, "
                             f"so rename one of them")
        produced = {MODELS_DIR: {**self.train, **self.kd_full}, CONDENSED_DIR: {**self.condense, **self.imports}}
        uses = [(f"kd_full.{n}.teacher", r.teacher) for n, r in self.kd_full.items()]
        for section in ("distill", "study"):
            for n, r in getattr(self, section).items():
                uses += [(f"{section}.{n}.teacher", r.teacher), (f"{section}.{n}.transfer", r.transfer),
                         (f"{section}.{n}.diagnostics_reference", r.diagnostics_reference)]
        for key, path in uses:
            if path is None:
                continue
            folder, stem = Path(path).parent.as_posix(), Path(path).stem
            entries = produced.get(folder)
            if entries and stem not in entries:
                section = "train or kd_full" if folder == MODELS_DIR else "condense or imports"
                raise ValueError(f"{key}: {path} is not produced by any {section} entry of this profile; "
                                 f"entries: {', '.join(sorted(entries))}")
        sets = sorted({(r.method, r.ipc) for r in self.condense.values()})
        headline = (self.claims.headline_method, self.claims.headline_ipc)
        if "claims" in self.model_fields_set and sets and headline not in sets:  # defaults fit any grid
            raise ValueError(f"claims.headline_method/headline_ipc: no condense entry makes a {headline[0]} set at "
                             f"IPC {headline[1]}; the profile condenses " + ", ".join(f"{m} at IPC {i}" for m, i in sets))
        return self


def _explain(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in (prefix, *e["loc"]) if p not in ("", _ON_TEST, _ON_VALIDATION))
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key or '<top>'}: {e['msg']}{shown}")
    return "\n".join(lines)


ENTRY_SECTIONS = ("distill", "study")  # the sections whose entries may take templates (their stages depend on them)


def _deep_merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: a mapping under the same key in both is merged the same way,
    anything else in ``over`` replaces ``base``'s value.  Neither argument is changed."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def expand_templates(raw: dict, source: str = "parameters") -> dict:
    """Every entry's ``use: name, ...`` (or a YAML list of names) replaced by those ``templates``
    merged in order (a later one over an earlier one, the entry's own keys over all of them,
    mappings merged key by key, so ``student: {arch: wrn16_2}`` in an entry keeps the template's
    ``width``).  A template may itself ``use`` others.  Plain YAML, no anchors: DVC's ``-S`` rewrite round-trips it (it writes
    lists in block style, hence the names as one string), and an override of a template key is
    written into the entry, where it takes effect.

    :returns: a new profile dict (``raw`` unchanged).
    :raises ParamsError: an unknown template (naming the entry and the known ones), a template
        that uses itself, or a ``use`` that is not a list of names.
    """
    templates = raw.get("templates") or {}

    def resolve(where: str, entry, seen: tuple[str, ...] = ()) -> dict:
        if not isinstance(entry, dict) or "use" not in entry:
            return entry
        names = entry["use"]
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ParamsError(f"{source}: {where}.use must name templates (use: loop, mnv2, fast), got {entry['use']!r}")
        merged: dict = {}
        for name in names:
            if name not in templates:
                raise ParamsError(f"{source}: {where}.use names template {name!r}, which is not under templates; "
                                  f"known: {', '.join(sorted(templates)) or 'none'}")
            if name in seen:
                raise ParamsError(f"{source}: template {name!r} uses itself (through {' -> '.join(seen)})")
            merged = _deep_merge(merged, resolve(f"templates.{name}", templates[name], (*seen, name)))
        return _deep_merge(merged, {k: v for k, v in entry.items() if k != "use"})

    out = dict(raw)
    for section in ENTRY_SECTIONS:
        if isinstance(raw.get(section), dict):
            out[section] = {name: resolve(f"{section}.{name}", entry) for name, entry in raw[section].items()}
    return out


def validate(raw: dict, source: str = "parameters") -> Profile:
    """Validate a profile given as a dict (its ``use`` templates expanded, :func:`expand_templates`);
    :raises ParamsError: listing every problem."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = expand_templates(raw, source)
    try:
        return Profile.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(f"{source} is invalid:\n{_explain(e)}") from None


def load(path: str | Path = "params.yaml") -> Profile:
    """Read and validate a profile file; :raises ParamsError: unreadable YAML or invalid values."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"profile file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(f"{path} is not valid YAML: {e}") from None
    return validate(raw, str(path))


def resolve(params_file: str, key: str, table: str, smoke: dict) -> tuple[_Section, Profile]:
    """The entry ``key`` of section ``table`` in ``params_file``, or the smoke values.

    Notebooks call this from their parameters: with ``params_file`` empty they run
    on ``smoke`` (the cheap values of their parameters cell), validated by the same
    schema; otherwise they run the named entry of the profile.

    :returns: (the validated entry, the whole profile).
    :raises ParamsError: invalid values, or ``key`` absent from the table (listing the known keys).
    """
    if params_file:
        profile = load(params_file)
        entries = getattr(profile, table)
        if key not in entries:
            raise ParamsError(f"{params_file}: no entry {key!r} under {table!r}; known: {', '.join(sorted(entries)) or 'none'}")
        return entries[key], profile
    profile = validate({"profile": "smoke", table: {key: smoke["run"]}, **{k: v for k, v in smoke.items() if k != "run"}},
                       "smoke parameters")
    return getattr(profile, table)[key], profile
