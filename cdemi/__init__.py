"""cdemi: condensed data expansion using model inversion for knowledge distillation (arXiv 2408.13850).

The package map is in the README, under "Using the package".
"""
