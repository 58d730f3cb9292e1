"""The training passes (FPROP, BPROP, WTGRAD): one definition each, which everything else asks."""
