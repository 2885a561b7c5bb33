"""How the reports name and order what the run records hold.

The records name hosts, variants, architectures and condensed sets by their registry names
(``cdemi.invert.HOSTS``, :data:`cdemi.params.VARIANTS`, ``cdemi.models``, ``cdemi.condense.CONDENSERS``);
the tables and figures show them by the names below and in the order below.  The host order is
the order of :data:`HOST_NAMES` (every registered inversion host, then :data:`KD_ONLY_HOST`), the
variant order is :data:`cdemi.params.VARIANTS`; nothing else lists them.
"""
from __future__ import annotations

from ..params import VARIANTS

KD_ONLY_HOST = "none"  # the host a run record names when it synthesises nothing (KD on a fixed set)
HOST_NAMES = {"deepinversion": "DeepInversion", "fast": "Fast", "cmi": "CMI", "predfkd": "PRE-DFKD",
              KD_ONLY_HOST: "KD"}
HOST_ORDER: tuple[str, ...] = tuple(HOST_NAMES)  # rows of every per-host table, in this order
INVERSION_HOSTS: tuple[str, ...] = tuple(h for h in HOST_ORDER if h != KD_ONLY_HOST)
VARIANT_ORDER: tuple[str, ...] = tuple(VARIANTS)  # columns of every per-variant table, in this order

ARCH_NAMES = {"resnet34": "ResNet-34", "resnet18": "ResNet-18", "mobilenetv2": "MobileNetV2", "convnet": "ConvNet",
              "wrn": "WRN", "vgg11": "VGG-11"}
VARIANT_NAMES = {"plain": "", "naive": " + CS (naive)", "guided": " + guidance", "guided-uncond": " + guidance (uncond. D)"}
# sets read from public files (the imports section): the source's method and the format, apart from ours
IMPORTED_SETS = ("dc_vico", "dsa_vico", "dm_vico", "mtt_public")
SET_NAMES = {"dm": "DM", "dsa": "DSA", "mtt": "MTT", "random_real": "random real", "kshot": "k-shot",
             "dc_vico": "DC (official code)", "dsa_vico": "DSA (official code)", "dm_vico": "DM (official code)",
             "mtt_public": "MTT (official code)"}
REAL_SUBSETS = ("random_real", "kshot")  # sets of real images: references, not condensation methods


def pair_label(teacher: str, student: str) -> str:
    """``ResNet-34 → MobileNetV2`` for architecture names of the records."""
    return f"{ARCH_NAMES.get(teacher, teacher)} → {ARCH_NAMES.get(student, student)}"
