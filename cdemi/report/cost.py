"""What a profile costs on one GPU: hours per stage entry and for the whole grid, from per-step timings.

``estimate(profile, times)`` returns one row per stage entry (train, kd_full, condense with its
evaluation and MTT's shared experts, distill); ``summary(rows)`` sums them per stage and dataset.
``python -m cdemi.report.cost profiles/paper.yaml`` prints the per-step figures and both tables.

The per-step figures (:data:`REFERENCE`) are stated at a reference setting (32x32 images, full-width
networks, the batch named beside each) and come from published totals, divided by the number of steps
those runs took; what is not published is an assumption, marked as such:

- **Synthesis steps** (batch 256, ResNet-34 teacher). The Fast paper reports the synthesis time of
  CIFAR-10 ResNet-34 -> ResNet-18 data-free KD on one GPU: DeepInversion 42 h, CMI 19 h, Fast-10 0.28 h.
  Fast-10 synthesises once per epoch for 220 epochs with 10 generator steps: 0.28 h / 2,200 steps =
  0.458 s per step. *Assumption*: DeepInversion and CMI ran as the CMI code schedules them, 200 batches
  (one per epoch), with 2,000 pixel steps ("DeepInversion-2k") and 500 generator steps ("CMI-500"):
  42 h / 400,000 = 0.378 s and 19 h / 100,000 = 0.684 s per step. (Consistent with their work per step:
  one teacher forward + backward for DeepInversion, about two for CMI's two views.) *Assumption*: a
  PRE-DFKD step costs what a Fast step costs per image (the same generator, a teacher pass and a
  student forward; its small memory VAE is ignored).
- **One image pass** (*derived*): a DeepInversion step is one ResNet-34 forward + backward of 256
  images, so one image costs 0.378 / 256 = 1.48 ms. The other figures scale it by each network's
  multiply-adds per 32x32 image relative to ResNet-34's 1.16 G (:data:`ARCH_COST`), a forward being a
  third of a forward + backward. *Assumptions*: MobileNetV2 runs as long as ResNet-18 on a GPU
  (memory-bound depthwise layers), and the small ConvNet-3 of the condensation methods runs at the
  FLOP rate of ResNet-34 (at small batches it does not: treat its figures as lower bounds).
- **KD step** (one KL term, batch 256): teacher forward + ResNet-18 student forward and backward,
  256 x 1.48 ms x (1/3 + 0.48) = 0.307 s. A two-term step (naive and guided runs) costs twice that.
- **Training step** (batch 128, ResNet-34 from the labels): 128 x 1.48 ms = 0.189 s.
- **Condensation iterations** (CIFAR-10, IPC 10, the published settings): counted in ConvNet-3 image
  passes (:func:`condense_work`) x 1.48 ms x 0.044: DM 0.06 s (256 real images per class), DSA 5.1 s
  (loops 10 / 50), MTT 0.59 s (30 synthetic steps over the 100 images, each with a second-order
  backward counted as 3 passes). One ConvNet-3 epoch over 50,000 images (MTT experts, and the
  evaluation of condensed sets per image): 3.3 s.
- **Guidance** (*measured here*, on the CPU): the synthesis time of a guided run over that of the
  plain run of the same host in the default profile's first records (Fashion-MNIST, width-0.25
  nets): DeepInversion 1.77, Fast 1.47, CMI 1.31, PRE-DFKD 1.59. *Assumption*: the ratios carry over
  to a GPU.

Scaling from the reference to an entry: time per step proportional to batch size, to pixels per image
(64x64 costs 4x 32x32), to the networks' :data:`ARCH_COST` and to width squared. Data loading,
checkpoints and start-up are not counted. The published totals come from an older GPU than today's:
on a current one every figure is lower: ``benchmarks/gpu_steps.py`` measures the synthesis, guidance, KD
and training figures on the GPU at hand, and :func:`load_step_times` (``--times`` of the command line)
turns its JSON into :class:`StepTimes`.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import data as datasets

# relative multiply-adds of one 32x32 image at width 1, ResNet-34 (1.16 G) = 1
ARCH_COST = {"resnet34": 1.0, "resnet18": 0.48, "mobilenetv2": 0.48, "convnet": 0.044}
# images in the training and test splits
SPLIT_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000), "tiny_imagenet": (100000, 10000),
               "fashion_mnist": (60000, 10000), "digits": (1437, 360)}

_DI_STEP = 42 * 3600 / (200 * 2000)     # s per DeepInversion step, batch 256 (published total / assumed steps)
_FAST_STEP = 0.28 * 3600 / (220 * 10)   # s per Fast generator step, batch 256 (published total / steps)
_CMI_STEP = 19 * 3600 / (200 * 500)     # s per CMI generator step, batch 256 (published total / assumed steps)
IMAGE_PASS = _DI_STEP / 256             # s per ResNet-34 forward + backward of one 32x32 image (derived)

# the reference settings the condensation figures are stated at (CIFAR-10, IPC 10, published values)
CONDENSE_REFERENCE = {"dm": {"ipc": 10, "batch_real": 256},
                      "dsa": {"ipc": 10, "batch_real": 256, "outer_loop": 10, "inner_loop": 50},
                      "mtt": {"ipc": 10, "syn_steps": 30, "batch_syn": None}}
_REFERENCE_CLASSES = 10


def condense_work(method: str, classes: int, ipc: int, **settings) -> float:
    """ConvNet-3 image passes (forward + backward) of one condensation iteration.

    DM: every class embeds ``batch_real`` real images (forward only, a third) and its ``ipc``
    synthetic ones (forward + backward). DSA: ``outer_loop`` times, every class matches gradients on
    ``batch_real`` real and ``ipc`` synthetic images (the synthetic side counted 3x for the
    second-order backward), then the network trains ``inner_loop`` epochs on the synthetic set. MTT:
    ``syn_steps`` student steps on ``batch_syn`` synthetic images (all of them if None), each
    counted 3x (forward, backward, and the backward through the unrolled steps).
    """
    if method == "dm":
        return classes * (settings["batch_real"] / 3 + ipc)
    if method == "dsa":
        matching = classes * (settings["batch_real"] + 3 * ipc)
        return settings["outer_loop"] * (matching + settings["inner_loop"] * classes * ipc)
    if method == "mtt":
        return settings["syn_steps"] * 3 * (settings.get("batch_syn") or classes * ipc)
    raise ValueError(f"no work count for condensation method {method!r}; known: dm, dsa, mtt")


@dataclass(frozen=True)
class StepTimes:
    """Seconds per step on the GPU the estimate is for, at the reference setting (32x32 images,
    full-width networks).

    :param synthesis: host name -> seconds per synthesis step (one DeepInversion pixel step or one
        generator step) of a batch of 256 with a ResNet-34 teacher.
    :param kd: seconds per KD step with one KL term, batch 256, ResNet-34 teacher forward +
        ResNet-18 student forward and backward.
    :param train: seconds per training step of ResNet-34 from the labels, batch 128.
    :param condense: method -> seconds per iteration on CIFAR-10 at :data:`CONDENSE_REFERENCE`.
    :param expert_epoch: seconds per epoch of ConvNet-3 training over 50,000 images.
    :param guidance: host name -> factor on a guided run's synthesis step (1: no overhead).
    :param source: where the figures come from (printed with the estimate).
    """

    synthesis: dict[str, float]
    kd: float
    train: float
    condense: dict[str, float]
    expert_epoch: float
    guidance: dict[str, float] = field(default_factory=dict)
    source: str = ""


def _convnet_iteration(method: str) -> float:
    ref = CONDENSE_REFERENCE[method]
    return condense_work(method, _REFERENCE_CLASSES, **ref) * IMAGE_PASS * ARCH_COST["convnet"]


REFERENCE = StepTimes(
    synthesis={"deepinversion": _DI_STEP, "fast": _FAST_STEP, "cmi": _CMI_STEP, "predfkd": _FAST_STEP},
    kd=256 * IMAGE_PASS * (1 / 3 + ARCH_COST["resnet18"]),
    train=128 * IMAGE_PASS * ARCH_COST["resnet34"],
    condense={m: _convnet_iteration(m) for m in CONDENSE_REFERENCE},
    expert_epoch=50000 * IMAGE_PASS * ARCH_COST["convnet"],
    guidance={"deepinversion": 1.77, "fast": 1.47, "cmi": 1.31, "predfkd": 1.59},
    source="synthesis steps from the Fast paper's CIFAR-10 synthesis times (DeepInversion 42 h, CMI 19 h, "
           "Fast-10 0.28 h on one GPU); the rest derived from the DeepInversion step by multiply-adds; guidance "
           "overheads measured on the CPU here (cdemi.report.cost's docstring)",
)


MEASURED_KEYS = ("synthesis", "guidance", "kd", "train")  # what benchmarks/gpu_steps.py measures


def measured_step_times(figures: dict, fallback: StepTimes = REFERENCE) -> StepTimes:
    """:class:`StepTimes` from the figures ``benchmarks/gpu_steps.py`` measured on a GPU: its synthesis
    steps, guidance factors, KD and training steps; the condensation figures, which it does not
    measure, from ``fallback``.

    :param figures: the JSON that script writes (``synthesis`` and ``guidance``: host -> value;
        ``kd``, ``train``: seconds; ``device``, ``torch_version``, ``amp``, ``reference``).
    :raises ValueError: a figure missing or not a positive number, a host of ``fallback`` not
        measured, or figures taken away from the reference setting (``reference`` false: another batch).
    """
    missing = [k for k in MEASURED_KEYS if k not in figures]
    if missing:
        raise ValueError(f"step figures lack {', '.join(missing)}: write them with benchmarks/gpu_steps.py")
    if not figures.get("reference", False):
        raise ValueError(f"step figures were measured at batch {figures.get('batch')}, not at the reference "
                         f"setting (batch 256): rerun benchmarks/gpu_steps.py without --batch")
    for key in ("synthesis", "guidance"):
        absent = sorted(set(fallback.synthesis) - set(figures[key]))
        if absent:
            raise ValueError(f"step figures lack the {key} of {', '.join(absent)}: rerun benchmarks/gpu_steps.py "
                             f"with every host")
    values = [*figures["synthesis"].values(), *figures["guidance"].values(), figures["kd"], figures["train"]]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values):
        raise ValueError("step figures must be positive, finite numbers of seconds (and ratios)")
    return StepTimes(
        synthesis={h: float(figures["synthesis"][h]) for h in fallback.synthesis},
        kd=float(figures["kd"]), train=float(figures["train"]), condense=dict(fallback.condense),
        expert_epoch=fallback.expert_epoch, guidance={h: float(figures["guidance"][h]) for h in fallback.synthesis},
        source=f"synthesis, guidance, KD and training steps measured on {figures.get('device', 'a GPU')} (torch "
               f"{figures.get('torch_version', '?')}, autocast {figures.get('amp', '?')}) by benchmarks/gpu_steps.py; "
               f"condensation figures as the published-total reference's")


def load_step_times(path: str | Path) -> StepTimes:
    """:func:`measured_step_times` of the JSON file at ``path``.

    :raises FileNotFoundError: no such file (with the command that writes it).
    :raises ValueError: a file that is not JSON, or figures :func:`measured_step_times` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no step figures there; measure them on a GPU with "
                                f"`python benchmarks/gpu_steps.py --out {path}`")
    try:
        figures = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): measure the figures again with "
                         f"benchmarks/gpu_steps.py") from err
    if not isinstance(figures, dict):
        raise ValueError(f"{path} holds no step figures (a JSON object): measure them with benchmarks/gpu_steps.py")
    try:
        return measured_step_times(figures)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _cost(arch: str, width: float = 1.0) -> float:
    if arch not in ARCH_COST:
        raise ValueError(f"no cost figure for architecture {arch!r}; known: {', '.join(sorted(ARCH_COST))}")
    return ARCH_COST[arch] * width ** 2


def _pixels(dataset: str) -> float:
    """Pixels per image relative to 32x32."""
    return datasets.spec(dataset).image_size ** 2 / 1024


def _sizes(dataset: str) -> tuple[int, int]:
    if dataset not in SPLIT_SIZES:
        raise ValueError(f"no split sizes for dataset {dataset!r}; known: {', '.join(sorted(SPLIT_SIZES))}")
    return SPLIT_SIZES[dataset]


def _row(stage: str, name: str, dataset: str, seconds: float, detail: str, **parts: float) -> dict:
    return {"stage": stage, "name": name, "dataset": dataset, "hours": seconds / 3600, "detail": detail,
            **{f"{k}_hours": v / 3600 for k, v in parts.items()}}


def _producer(profile, path: str):
    """The train / kd_full entry whose checkpoint is ``path`` (``data/models/<name>.pt``), or None."""
    name = Path(path).stem
    return profile.train.get(name) or profile.kd_full.get(name)


def _train_rows(profile, times: StepTimes) -> list[dict]:
    rows = []
    for stage in ("train", "kd_full"):
        for name, run in getattr(profile, stage).items():
            dataset = run.dataset or profile.data.dataset
            n_train, n_test = _sizes(dataset)
            steps = run.epochs * math.ceil(n_train / run.batch_size)
            per_image = times.train / 128 / ARCH_COST["resnet34"] * _pixels(dataset)  # s per unit-cost image pass
            work = _cost(run.arch, run.width)
            if run.teacher is not None:
                teacher = _producer(profile, run.teacher)
                work += _cost(teacher.arch if teacher else "resnet34", teacher.width if teacher else 1.0) / 3
            seconds = steps * run.batch_size * per_image * work
            evaluation = run.epochs * n_test * per_image * _cost(run.arch, run.width) / 3
            rows.append(_row(stage, name, dataset, seconds + evaluation,
                             f"{steps:,} steps of {run.batch_size}", compute=seconds, eval=evaluation))
    return rows


def _condense_rows(profile, times: StepTimes) -> list[dict]:
    rows, experts = [], {}
    ev = profile.evaluate_condensed
    for name, run in profile.condense.items():
        dataset = run.dataset or profile.data.dataset
        spec = datasets.spec(dataset)
        n_train, n_test = _sizes(dataset)
        px = _pixels(dataset)
        seconds, detail = 0.0, "a seeded draw of real images"
        if run.method in CONDENSE_REFERENCE:
            settings = {k: getattr(run, k) for k in CONDENSE_REFERENCE[run.method] if k != "ipc"}
            if run.method == "dsa" and None in (run.outer_loop, run.inner_loop):  # the method's defaults by IPC
                from ..condense.dsa import LOOPS

                outer, inner = LOOPS.get(run.ipc, (10, 50))
                settings.update(outer_loop=run.outer_loop or outer, inner_loop=run.inner_loop or inner)
            ratio = condense_work(run.method, spec.num_classes, run.ipc, **settings) / \
                condense_work(run.method, _REFERENCE_CLASSES, **CONDENSE_REFERENCE[run.method])
            seconds = run.iterations * times.condense[run.method] * ratio * px * run.width ** 2
            detail = f"{run.iterations:,} iterations"
        if run.method == "mtt":  # experts are trained once per dataset and expert settings, shared by the sets
            key = (dataset, run.num_experts, run.expert_train_epochs, run.expert_lr, run.augment, run.width, run.seed)
            experts.setdefault(key, []).append(name)
        per_image = times.expert_epoch / 50000 * px * ev.width ** 2  # ConvNet-3 training, s per image
        evaluation = ev.runs * ev.epochs * spec.num_classes * run.ipc * per_image
        rows.append(_row("condense", name, dataset, seconds + evaluation, detail, compute=seconds, eval=evaluation))
    for (dataset, num, epochs, _, _, width, _), names in experts.items():
        seconds = num * epochs * times.expert_epoch * _sizes(dataset)[0] / 50000 * _pixels(dataset) * width ** 2
        rows.append(_row("condense", f"{dataset} MTT experts", dataset, seconds,
                         f"{num} experts x {epochs} epochs, shared by {len(names)} sets", compute=seconds, eval=0.0))
    return rows


def _distill_rows(profile, times: StepTimes) -> list[dict]:
    rows = []
    kd_reference = 1 / 3 + ARCH_COST["resnet18"]
    for name, run in profile.distill.items():
        dataset = run.dataset or profile.data.dataset
        spec = datasets.spec(dataset)
        n_test = _sizes(dataset)[1]
        px = _pixels(dataset)
        producer = _producer(profile, run.teacher)
        teacher = _cost(producer.arch, producer.width) if producer else _cost(run.teacher_arch or "resnet34")
        student = _cost(run.student.arch, run.student.width)
        synthesis, warmup, steps = 0.0, 0, 0
        if run.host is not None:
            if run.host not in times.synthesis:
                known = ", ".join(sorted(times.synthesis))
                raise ValueError(f"no synthesis figure for host {run.host!r}; known: {known}")
            steps = run.host_settings["iterations" if run.host == "deepinversion" else "g_steps"]
            batch = run.host_settings["batch_size"]
            warmup = run.host_settings.get("warmup", 0)
            factor = times.guidance.get(run.host, 1.0) if run.guidance is not None else 1.0
            synthesis = run.epochs * steps * times.synthesis[run.host] * batch / 256 * px * teacher * factor
        terms = 2 if (run.host is not None and run.transfer is not None and run.mixing == "two_term") else 1
        kd_steps = max(0, run.epochs - warmup) * run.kd_steps
        kd = kd_steps * terms * times.kd * run.batch_size / 256 * px * (teacher / 3 + student) / kd_reference
        curve = spec.num_classes * run.curve_test_per_class if run.curve_test_per_class else n_test
        images = (run.epochs - 1) * min(curve, n_test) + n_test
        evaluation = images * times.train / 128 * px * student / 3
        detail = (f"{run.epochs} x {steps} synthesis steps, " if run.host else "") + \
            f"{kd_steps:,} KD steps x {terms} term{'s' if terms > 1 else ''}"
        rows.append(_row("distill", name, dataset, synthesis + kd + evaluation, detail,
                         synthesis=synthesis, kd=kd, eval=evaluation))
    return rows


def estimate(profile, times: StepTimes = REFERENCE) -> pd.DataFrame:
    """GPU hours of every entry of ``profile`` (a :class:`cdemi.params.Profile`).

    :returns: one row per entry: ``stage`` (train, kd_full, condense, distill), ``name``,
        ``dataset``, ``hours`` (float, one GPU), ``detail`` (the steps counted) and the parts
        (``compute_hours`` / ``eval_hours``, or ``synthesis_hours`` / ``kd_hours`` / ``eval_hours``).
        MTT's expert trajectories are a row of their own per dataset and expert settings.
    """
    rows = _train_rows(profile, times) + _condense_rows(profile, times) + _distill_rows(profile, times)
    return pd.DataFrame(rows).fillna(0.0)


STAGES = ("train", "kd_full", "condense", "distill")


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """GPU hours per stage (rows, plus ``total``) and dataset (columns, plus ``total``), and the
    number of entries per stage (``entries``)."""
    table = rows.pivot_table(index="stage", columns="dataset", values="hours", aggfunc="sum", fill_value=0.0)
    table = table.reindex([s for s in STAGES if s in table.index])
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    counts = rows[~rows["name"].str.endswith("MTT experts")].groupby("stage").size()
    table["entries"] = [int(counts.get(s, counts.sum() if s == "total" else 0)) for s in table.index]
    return table


def step_table(times: StepTimes = REFERENCE) -> pd.DataFrame:
    """The per-step figures of ``times`` with the setting each is stated at."""
    rows = [(f"synthesis step, {h}", s, "batch 256, 32x32, ResNet-34 teacher") for h, s in times.synthesis.items()]
    rows += [("KD step (one KL term)", times.kd, "batch 256, 32x32, ResNet-34 -> ResNet-18"),
             ("training step", times.train, "batch 128, 32x32, ResNet-34")]
    rows += [(f"condensation iteration, {m}", s, "CIFAR-10, IPC 10, published settings, ConvNet-3")
             for m, s in times.condense.items()]
    rows += [("ConvNet-3 epoch", times.expert_epoch, "50,000 images, 32x32")]
    rows += [(f"guidance factor, {h}", f, "guided / plain synthesis step") for h, f in times.guidance.items()]
    return pd.DataFrame(rows, columns=["figure", "value", "stated at"]).set_index("figure")


def measured_markdown(profile, measured: StepTimes, reference: StepTimes = REFERENCE) -> str:
    """The README's ``gpu_cost`` block: the per-step figures of ``reference`` and ``measured`` side by
    side (seconds; the ratio reference / measured), then ``profile``'s GPU hours per stage and dataset
    with ``measured`` (:func:`summary`)."""
    steps = pd.DataFrame({"reference": step_table(reference)["value"], "measured": step_table(measured)["value"]})
    unmeasured = ~steps.index.str.match("synthesis|guidance|KD|training")
    steps.loc[unmeasured, "measured"] = float("nan")  # the estimate keeps the reference's figure
    steps["reference / measured"] = (steps["reference"] / steps["measured"]).round(1)
    steps.loc[steps.index.str.startswith("guidance"), "reference / measured"] = float("nan")
    hours = summary(estimate(profile, measured))
    return "\n".join([f"Per-step figures (seconds; guidance: guided / plain; a blank is not measured, and the "
                      f"estimate keeps the reference's figure): {measured.source}.", "",
                      steps.round(4).astype(object).where(steps.notna(), None).to_markdown(missingval=""), "", "GPU hours with the measured figures:", "",
                      hours.round(1).to_markdown()])


def main(argv: list[str] | None = None) -> None:
    from .. import params

    parser = argparse.ArgumentParser(description="GPU hours of a profile's stages, from per-step timings.")
    parser.add_argument("profile", help="a profile file, e.g. profiles/paper.yaml")
    parser.add_argument("--entries", action="store_true", help="also print every entry's estimate")
    parser.add_argument("--times", help="step figures measured on a GPU (the JSON of benchmarks/gpu_steps.py); "
                        "default: the reference derived from published totals")
    args = parser.parse_args(argv)
    times = load_step_times(args.times) if args.times else REFERENCE  # refused before the profile is read
    rows = estimate(params.load(args.profile), times)
    print(f"Per-step figures (seconds, one GPU; {times.source}):\n")
    print(step_table(times).round(4).to_markdown() + "\n")
    print(f"Estimated GPU hours of {args.profile}:\n")
    print(summary(rows).round(1).to_markdown() + "\n")
    if args.entries:
        print(rows.set_index(["stage", "name"]).round(2).to_markdown())


if __name__ == "__main__":
    main()
