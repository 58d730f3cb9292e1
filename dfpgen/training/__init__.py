"""Training whole networks with the numpy runtime: the trainer, data sets and plots."""
