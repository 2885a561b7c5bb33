"""Knowledge distillation: the interleaved synthesis + KD loop and its pool."""
from .loop import DistillSettings, distill
from .pool import SyntheticPool

__all__ = ["DistillSettings", "SyntheticPool", "distill"]
