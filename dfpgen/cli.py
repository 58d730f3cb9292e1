"""The `dfpgen` command line: a thin click front end over the library."""

from __future__ import annotations

import json

import click

from . import __version__, catalog
from .errors import CatalogError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dfpgen")
def main() -> None:
    """dfpgen: generate, inspect, tune and run INT16 (DFP16) convolution kernels."""


@main.command("layers")
@click.argument("ref", required=False, metavar="[REF]")
@click.option("--batch", "-N", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size N given to every layer (scales the batch total).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def layers(ref: str | None, batch: int, as_json: bool) -> None:
    """List the built-in networks, or the layer shapes REF picks.

    \b
    REF forms:
      NET               every layer of a built-in network: resnet50, googlenet_v1,
                        vgg16, alexnet (aliases resnet-50, googlenet, vgg_16 work too)
      NET:NAME          the layer named NAME, else every layer whose name starts
                        with NAME (resnet50:res2a: the 4 convolutions of block res2a)
      FILE.toml[:NAME]  the same for your own catalog file (format: dfpgen.catalog)

    Fully-connected layers are listed as 1x1 convolutions on a 1x1 input. MACs count
    multiply-accumulates of the forward pass; 1 GMAC = 1e9 MACs.

    \b
    --json with REF prints
      {"network": str, "title": str, "ref": str, "batch": int,
       "layers": [{"name", "N", "C", "K", "H", "W", "R", "S",
                   "stride", "pad", "P", "Q", "macs_per_image"}, ...],
       "total_macs_per_image": int, "total_macs": int}   (total_macs = for the batch)
    and without REF
      {"networks": [{"name", "title", "layers", "macs_per_image"}, ...]}.
    """
    try:
        if ref is None:
            _list_networks(as_json)
        else:
            _show_layers(ref, batch, as_json)
    except CatalogError as exc:
        # A bad reference or catalog file is a usage error: exit 2 with the message, no traceback.
        raise click.BadParameter(str(exc), param_hint="REF") from None


def _list_networks(as_json: bool) -> None:
    nets = [catalog.load_network(name) for name in catalog.networks()]
    if as_json:
        click.echo(json.dumps({"networks": [
            {"name": n.name, "title": n.title, "layers": len(n.layers), "macs_per_image": n.macs_per_image}
            for n in nets]}, indent=2))
        return
    width = max(len(n.name) for n in nets)
    click.echo(f"{'network':<{width}}  layers  GMAC/img  title")
    for n in nets:
        click.echo(f"{n.name:<{width}}  {len(n.layers):>6}  {n.macs_per_image / 1e9:>8.3f}  {n.title}")


def _show_layers(ref: str, batch: int, as_json: bool) -> None:
    net_ref, name = catalog.split_ref(ref)
    network = catalog.load_network(net_ref)
    specs = [s.with_batch(batch) for s in (network.layers if name is None else network.find(name))]
    per_image = sum(s.macs_per_image for s in specs)
    if as_json:
        fields = ("name", "N", "C", "K", "H", "W", "R", "S", "stride", "pad", "P", "Q", "macs_per_image")
        click.echo(json.dumps({
            "network": network.name, "title": network.title, "ref": ref, "batch": batch,
            "layers": [{f: getattr(s, f) for f in fields} for s in specs],
            "total_macs_per_image": per_image, "total_macs": per_image * batch}, indent=2))
        return
    click.echo(f"{network.name}: {network.title}")
    rows = [(s.name, str(s.C), str(s.K), f"{s.H}x{s.W}", f"{s.R}x{s.S}", str(s.stride), str(s.pad),
             f"{s.P}x{s.Q}", f"{s.macs_per_image / 1e6:.2f}") for s in specs]
    header = ("layer", "C", "K", "HxW", "RxS", "stride", "pad", "PxQ", "MMAC/img")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        # Names left-aligned, numbers right-aligned so columns of digits line up.
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        click.echo("  ".join(cells).rstrip())
    count = f"{len(specs)}" if name is None else f"{len(specs)} of {len(network.layers)}"
    click.echo(f"total: {count} layers, {per_image / 1e9:.3f} GMAC per image, "
               f"{per_image * batch / 1e9:.3f} GMAC for batch {batch}")


if __name__ == "__main__":
    main()
