"""Knowledge distillation: the interleaved synthesis + KD loop, its pool, and the pipeline entry."""
from ..params import DistillSettings
from .loop import distill_student
from .pool import SyntheticPool
from .stage import distill_entry

__all__ = ["DistillSettings", "SyntheticPool", "distill_entry", "distill_student"]
