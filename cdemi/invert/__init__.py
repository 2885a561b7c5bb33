"""Model inversion: the hosts the paper's guidance plugs into, and their shared pieces."""
from .bn_stats import BNStatistics
from .losses import adversarial_disagreement, image_l2, total_variation

__all__ = ["BNStatistics", "adversarial_disagreement", "image_l2", "total_variation"]
from .base import HOSTS, ExtraTerm, InversionHost, SynthesisBatch
from .deepinversion import DeepInversion

__all__ += ["HOSTS", "DeepInversion", "ExtraTerm", "InversionHost", "SynthesisBatch"]
from .fast import Fast

__all__ += ["Fast"]
from .cmi import CMI
from .predfkd import PREDFKD

__all__ += ["CMI", "PREDFKD"]
