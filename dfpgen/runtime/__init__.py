"""Running kernels on user tensors: compile one kernel, the Conv2d operator, prepare/run/unblock."""
