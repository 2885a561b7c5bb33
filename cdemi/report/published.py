"""Numbers published by other papers, kept as data with their source, for side-by-side tables.

Values are top-1 test accuracy in percent.
"""
from __future__ import annotations

# ConvNet trained on condensed Fashion-MNIST; DC (Zhao et al., ICLR 2021) and DSA (Zhao & Bilen,
# ICML 2021) as reported in the DSA paper, Table 1. Keys: method -> {ipc: accuracy}.
CONDENSED_FASHION_MNIST = {
    "dc": {1: 70.5, 10: 82.3, 50: 83.6},
    "dsa": {1: 70.6, 10: 84.6, 50: 88.7},
}
# The same ConvNet trained on the whole Fashion-MNIST training set (DSA paper, Table 1).
WHOLE_FASHION_MNIST = 93.5
