"""Core types: what to compute (layer shapes, numerics, DFP tensors), for which CPU, from which catalog."""
