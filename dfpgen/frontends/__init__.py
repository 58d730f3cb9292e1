"""Front ends: the command line, the PyTorch layers and distributed training."""
