"""The `dfpgen` command line: a thin click front end over the library."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dfpgen")
def main() -> None:
    """dfpgen: generate, inspect, tune and run INT16 (DFP16) convolution kernels."""


if __name__ == "__main__":
    main()
