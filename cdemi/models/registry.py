"""The architecture registry (one per concern: this one holds classifiers)."""
from ..registry import Registry

ARCHITECTURES: Registry = Registry("architecture")
