"""Readers that convert the public condensed-set files into :class:`CondensedSet`.

- VICO-UoE DatasetCondensation (DC, DSA, DM): ``res_{method}_{dataset}_{model}_{ipc}ipc.pt``,
  a ``torch.save`` of ``{"data": [[images, labels], ...], "accs_all_exps": {...}}`` with one
  ``[images, labels]`` pair per experiment; images are stored *normalised* with the mean/std
  of that code base (:data:`SOURCE_NORMALISATION`).
- MTT (Cazenavette et al.): ``images_best.pt`` and ``labels_best.pt``, plain tensors; images
  are normalised, or ZCA-whitened when the run used ``--zca`` (then the whitening must be
  refitted on the real training set to undo it, see :class:`ZCA`).

Every file is read with ``weights_only=True``; the VICO-UoE files keep their accuracies as numpy
float64 scalars, so their reader allows exactly what unpickling numpy scalars and arrays needs
(:func:`numpy_globals`), under numpy 1.x's module paths and 2.x's.  A file of another layout, dataset or resolution, a
truncated file, one that needs code to unpickle, or one with non-finite pixels (a flipped exponent
bit) fails with a :class:`FormatError` naming the file and what was expected.  These files carry no
checksum of their own: pass ``sha256=`` (the digest of a download you trust, recorded in the set's
``meta["source_sha256"]``) to refuse any other bytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..artifacts import safe_torch_load, sha256_file
from .condensed import CondensedSet
from .registry import SPECS

# dataset names of those code bases -> ours
SOURCE_DATASETS = {"FashionMNIST": "fashion_mnist", "CIFAR10": "cifar10", "CIFAR100": "cifar100",
                   "TinyImageNet": "tiny_imagenet", "Tiny": "tiny_imagenet"}
# mean/std with which those code bases normalise (they differ from ours for CIFAR-10 and Tiny-ImageNet)
SOURCE_NORMALISATION = {
    "fashion_mnist": ((0.2861,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tiny_imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
VICO_NAME = re.compile(r"^res_(?P<method>[A-Za-z]+)_(?P<dataset>\w+?)_(?P<model>[A-Za-z0-9]+)_(?P<ipc>\d+)ipc\.pt$")


class FormatError(ValueError):
    """A public condensed-set file does not have the layout its reader expects."""


_REFETCH = "Download the file again from its project's release (its copy here is damaged or another file)."


def numpy_globals() -> tuple:
    """What unpickling numpy scalars and arrays needs (the VICO-UoE files keep their accuracies as numpy
    float64): the scalar and array reconstructors under both numpy module layouts (``numpy.core``, as
    numpy 1.x writes them, and ``numpy._core``, as numpy 2.x does), ``ndarray``, ``dtype`` and the dtype
    classes of numpy's numeric and bool types.  Entries as :func:`cdemi.artifacts.safe_torch_load`
    takes them."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    dtypes = tuple(type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG")
    layouts = tuple((fn, f"numpy.{core}.multiarray.{fn.__name__}") for fn in (multiarray.scalar, multiarray._reconstruct)
                    for core in ("core", "_core"))
    return (*layouts, np.ndarray, np.dtype, *dtypes)


def _load(path: str | Path, what: str, sha256: str | None, allowed_globals: tuple = ()):
    """:returns: the file's object and its SHA-256 (hashed once, before unpickling);
    :raises FormatError: the digest is not the pinned one, or the file is damaged or needs code
        outside ``allowed_globals`` (named)."""
    digest = sha256_file(path) if Path(path).is_file() else None  # a missing file: safe_torch_load says so
    if sha256 is not None and digest is not None and digest != sha256.lower():
        raise FormatError(f"{what} {path} has SHA-256 {digest}, the pinned download has {sha256.lower()}: "
                          f"a corrupt or different file. {_REFETCH}")
    try:
        return safe_torch_load(path, what, fix=_REFETCH, allowed_globals=allowed_globals), digest
    except ValueError as e:
        raise FormatError(str(e)) from e


def _condensed(source: str, pixels: torch.Tensor, labels: torch.Tensor, dataset: str, method: str, ipc: int,
               meta: dict) -> CondensedSet:
    """The set, sorted by class; :raises FormatError: naming ``source`` when it is not a set of ``dataset``."""
    if not torch.isfinite(pixels).all():
        bad = int((~torch.isfinite(pixels)).sum())
        raise FormatError(f"{source}: {bad} pixel values are NaN or infinite (a damaged file). {_REFETCH}")
    order = torch.argsort(labels, stable=True)
    try:
        return CondensedSet(pixels[order], labels[order], dataset, method, ipc, meta)
    except ValueError as e:
        raise FormatError(f"{source}: not a condensed set of {dataset}: {e}") from e


def _denormalise(images: torch.Tensor, dataset: str) -> torch.Tensor:
    mean, std = SOURCE_NORMALISATION[dataset]
    return images * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)


def _ipc(labels: torch.Tensor, source: str, dataset: str) -> int:
    classes = SPECS[dataset].num_classes
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise FormatError(f"{source}: labels span {int(labels.min())}..{int(labels.max())}, {dataset} has classes "
                          f"0..{classes - 1}: a set of another dataset? Pass the dataset the file condenses")
    counts = torch.bincount(labels)
    if counts.numel() == 0 or bool((counts != counts[0]).any()):
        raise FormatError(f"{source}: classes are not balanced (per-class counts {counts.tolist()})")
    return int(counts[0])


def read_vico(path: str | Path, experiment: int = 0, dataset: str | None = None,
              sha256: str | None = None) -> CondensedSet:
    """Read one experiment of a VICO-UoE ``res_*.pt`` file.

    :param experiment: index into the file's list of experiments.
    :param dataset: our dataset name; default: parsed from the file name.
    :param sha256: the file's expected SHA-256 (hex); None: not checked.
    :raises FormatError: the name, digest, layout, index, shapes, labels or pixels do not match.
    """
    path = Path(path)
    m = VICO_NAME.match(path.name)
    if dataset is None:
        if not m or m["dataset"] not in SOURCE_DATASETS:
            raise FormatError(f"{path.name}: expected res_<method>_<dataset>_<model>_<ipc>ipc.pt with dataset one of "
                              f"{', '.join(SOURCE_DATASETS)}; pass dataset= to read another name")
        dataset = SOURCE_DATASETS[m["dataset"]]
    blob, digest = _load(path, "VICO-UoE result file", sha256, numpy_globals())
    if not isinstance(blob, dict) or not isinstance(blob.get("data"), list):
        raise FormatError(f"{path}: expected a dict with key 'data' (a list of [images, labels] per experiment), "
                          f"got {type(blob).__name__} with keys {sorted(blob) if isinstance(blob, dict) else '-'}")
    runs = blob["data"]
    if not 0 <= experiment < len(runs):
        raise FormatError(f"{path}: experiment {experiment} requested, the file holds {len(runs)} (0..{len(runs) - 1})")
    pair = runs[experiment]
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(torch.is_tensor(t) for t in pair)):
        raise FormatError(f"{path}: experiment {experiment} is not an [images, labels] pair of tensors")
    images, labels = pair[0].float(), pair[1].long()
    spec = SPECS[dataset]
    if images.dim() != 4 or tuple(images.shape[1:]) != spec.shape:
        raise FormatError(f"{path}: images of shape {tuple(images.shape)}, {dataset} needs (N, {spec.shape})")
    ipc = _ipc(labels, str(path), dataset)
    if m and int(m["ipc"]) != ipc:
        raise FormatError(f"{path}: the name says {m['ipc']} IPC, the labels hold {ipc} per class")
    return _condensed(str(path), _denormalise(images, dataset), labels, dataset, (m["method"].lower() if m else "vico"),
                      ipc, {"source": "VICO-UoE DatasetCondensation", "source_file": path.name,
                            "source_sha256": digest, "experiment": experiment,
                            "source_model": m["model"] if m else None,
                            "source_accuracies": _source_accuracies(blob.get("accs_all_exps"), path)})


def _source_accuracies(accs, path) -> dict[str, list[float]]:
    """The accuracies the file's own evaluation reported (``accs_all_exps``: evaluation model -> one
    number per evaluation, fractions or percent as that code wrote them, numpy scalars or arrays),
    as plain floats; empty when the file has none.  :raises FormatError: another layout."""
    if accs is None:
        return {}
    if not isinstance(accs, dict):
        raise FormatError(f"{path}: 'accs_all_exps' is a {type(accs).__name__}, expected a dict of model -> accuracies")
    out = {}
    for model, values in accs.items():
        try:
            out[str(model)] = [float(v) for v in torch.as_tensor(list(values), dtype=torch.float64).flatten()]
        except (TypeError, ValueError, RuntimeError) as e:
            raise FormatError(f"{path}: 'accs_all_exps'[{model!r}] is not a list of numbers ({e})") from e
    return out


def reported_accuracy(meta: dict) -> float | None:
    """The mean of the accuracies a public file's own evaluation reported (``meta["source_accuracies"]``,
    :func:`read_vico`), in percent (VICO-UoE's code stores fractions); None when it reported none."""
    values = [v for vs in (meta.get("source_accuracies") or {}).values() for v in vs]
    if not values:
        return None
    scale = 100.0 if max(abs(v) for v in values) <= 1.0 else 1.0
    return scale * sum(values) / len(values)


@dataclass
class ZCA:
    """ZCA whitening as MTT fits it (kornia's ``ZCAWhitening(eps=0.1)``, unbiased covariance).

    ``white = (x - mean) @ T`` and ``x = white @ T_inv + mean`` on flattened images, with
    ``T = U diag((S + eps)^-1/2) U^T`` from the SVD of the training covariance.
    """

    mean: torch.Tensor  # (1, D)
    transform: torch.Tensor  # (D, D)
    inverse: torch.Tensor  # (D, D)

    @classmethod
    def fit(cls, images: torch.Tensor, eps: float = 0.1) -> "ZCA":
        """Fit on float images (N, C, H, W) as MTT feeds them (pixel scale, no mean/std)."""
        x = images.reshape(images.shape[0], -1).double()
        mean = x.mean(0, keepdim=True)
        xc = x - mean
        cov = xc.T @ xc / (x.shape[0] - 1)
        u, s, _ = torch.linalg.svd(cov)
        s = s.view(-1, 1)
        return cls(mean, u @ (torch.rsqrt(s + eps) * u.T), u @ (torch.sqrt(s + eps) * u.T))

    def whiten(self, images: torch.Tensor) -> torch.Tensor:
        flat = (images.reshape(images.shape[0], -1).double() - self.mean) @ self.transform
        return flat.reshape(images.shape).float()

    def unwhiten(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.reshape(images.shape[0], -1).double() @ self.inverse + self.mean
        return flat.reshape(images.shape).float()


def read_mtt(images_path: str | Path, labels_path: str | Path, dataset: str, zca: ZCA | None = None,
             sha256: str | None = None) -> CondensedSet:
    """Read MTT's ``images_best.pt`` / ``labels_best.pt``.

    :param dataset: our dataset name (MTT files do not carry it).
    :param zca: the whitening the run used (refit with :meth:`ZCA.fit` on the real training
        images at pixel scale); None for runs without ``--zca`` (then images are denormalised).
    :param sha256: the images file's expected SHA-256 (hex); None: not checked.
    :raises FormatError: the files are damaged, or not tensors of matching, balanced shapes of ``dataset``.
    """
    images, digest = _load(images_path, "MTT images file", sha256)
    labels, _ = _load(labels_path, "MTT labels file", None)
    if not torch.is_tensor(images) or not torch.is_tensor(labels):
        raise FormatError(f"{images_path} / {labels_path}: expected two tensors (images_best.pt, labels_best.pt)")
    spec = SPECS[dataset]
    if images.dim() != 4 or tuple(images.shape[1:]) != spec.shape or labels.shape != (images.shape[0],):
        raise FormatError(f"MTT files hold images {tuple(images.shape)} and labels {tuple(labels.shape)}; "
                          f"{dataset} needs (N, {spec.shape}) and (N,)")
    labels = labels.long()
    ipc = _ipc(labels, str(labels_path), dataset)
    pixels = zca.unwhiten(images.float()) if zca is not None else _denormalise(images.float(), dataset)
    return _condensed(str(images_path), pixels, labels, dataset, "mtt", ipc,
                      {"source": "MTT", "source_file": Path(images_path).name,
                       "source_sha256": digest, "zca": zca is not None})
