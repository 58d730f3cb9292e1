"""Code generation: plan -> emit -> jit -> kernel, and the blocked layouts the kernels read."""
