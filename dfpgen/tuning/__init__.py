"""Measuring and tuning kernels: timing, the peak probe, the search and the tuning database."""
