"""The `dfpgen` command line: a thin click front end over the library."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import click

from . import catalog
from .conv import compile as dfpgen_compile
from .dfp import ROUNDING_MODES
from .errors import CatalogError, DFPGenError
from .kernel import default_threads
from .plan import PASSES, Blocking
from .spec import OVERFLOW_POLICIES, Numerics
from .target import DFP_ISAS, ISAS, host
from .version import __version__


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
    _echo_table(("layer", "C", "K", "HxW", "RxS", "stride", "pad", "PxQ", "MMAC/img"), rows)
    count = f"{len(specs)}" if name is None else f"{len(specs)} of {len(network.layers)}"
    click.echo(f"total: {count} layers, {per_image / 1e9:.3f} GMAC per image, "
               f"{per_image * batch / 1e9:.3f} GMAC for batch {batch}")


def _echo_table(header: tuple, rows: list) -> None:
    """Print rows under a header; the first column left-aligned, numbers right-aligned so digits line up."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        click.echo("  ".join(cells).rstrip())


def _specs(ref: str, batch: int) -> list:
    try:
        return catalog.select(ref, batch=batch)
    except CatalogError as exc:
        raise click.BadParameter(str(exc), param_hint="--layer") from None


def _parse_blocking(text: str | None):
    """'kv=4,wb=6,hb=1' -> Blocking; unknown keys and bad values are usage errors."""
    if not text:
        return None
    fields = {f.name: f for f in dataclasses.fields(Blocking)}
    values = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in fields:
            raise click.BadParameter(f"unknown knob {key!r}; knobs: {', '.join(fields)}", param_hint="--blocking")
        values[key] = value.strip() if key == "order" else int(value)
    return Blocking(**values)


def _numerics_options(fn):
    """The numerics options shared by emit and bench."""
    for option in reversed([
        click.option("--bits", type=click.IntRange(2, 16), default=16, show_default=True,
                     help="Operand bits (input and weights) of the DFP tensors."),
        click.option("--rounding", type=click.Choice(ROUNDING_MODES), default="nearest", show_default=True),
        click.option("--overflow", type=click.Choice(OVERFLOW_POLICIES), default="exact", show_default=True,
                     help="exact: chain <= safe_chain (proven); saturate: vpdpwssds; wrap: explicit --chain."),
        click.option("--chain", type=click.IntRange(min=1), default=None,
                     help="INT32 accumulate chain in pair-instructions (default: the longest safe one)."),
    ]):
        fn = option(fn)
    return fn


def _usage_errors(fn):
    """Turn dfpgen's own errors into clean click errors (exit 1 with the message, no traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DFPGenError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    return wrapper


@main.command("emit")
@click.option("--layer", "ref", required=True, help="Layer reference, e.g. resnet50:res2a_branch2b.")
@click.option("--pass", "pass_name", type=click.Choice(PASSES), default="fprop", show_default=True)
@click.option("--isa", type=click.Choice(list(ISAS)), default=None,
              help="Instruction set (default: the best for --cpu or this machine). fp32_* are the FP32 baseline.")
@click.option("--cpu", default=None, help="Emit for a named CPU (e.g. sapphirerapids, alderlake, skylake-avx512).")
@_numerics_options
@click.option("--batch", "-N", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--blocking", default=None, help="Knobs, e.g. 'kv=4,wb=6,hb=1,cpb=16,unroll=16,order=nk'.")
@click.option("--ir", "what", flag_value="ir", default=True, help="Print the emitted LLVM IR (default).")
@click.option("--opt-ir", "what", flag_value="opt-ir", help="Print the IR after LLVM's O3 pipeline.")
@click.option("--asm", "what", flag_value="asm", help="Print the optimized assembly.")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Write one file per layer into this folder instead of printing.")
@_usage_errors
def emit_cmd(ref, pass_name, isa, cpu, bits, rounding, overflow, chain, batch, blocking, what, output):
    """Print or write the IR or assembly of generated kernels, annotated with their plan."""
    numerics = Numerics(bits, bits, rounding, overflow, chain)
    for spec in _specs(ref, batch):
        kernel = dfpgen_compile(spec, pass_name, numerics, isa=isa, cpu=cpu, blocking=_parse_blocking(blocking))
        if what == "asm":
            text = "".join(f"# {line}\n" for line in kernel.plan.summary()) + kernel.asm
        else:
            text = kernel.ir if what == "ir" else kernel.optimized_ir
        if output is None:
            click.echo(text)
            continue
        stem = f"{spec.name or 'layer'}.{pass_name}.{kernel.plan.isa.name}.{kernel.plan.target.cpu}".replace("/", "_")
        path = Path(output) / f"{stem}{'.s' if what == 'asm' else '.ll'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        click.echo(f"wrote {path}", err=True)


@main.command("peak")
@click.option("--remeasure", is_flag=True, help="Measure again instead of using the cached result.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {isa: {instruction, gmacs, accumulators}}.")
@_usage_errors
def peak_cmd(remeasure, as_json):
    """Measure (once, then cached) this core's peak multiply-accumulate rate per ISA."""
    from .peak import peaks

    found = peaks(remeasure=remeasure)
    if as_json:
        click.echo(json.dumps({n: {"instruction": p.instruction, "gmacs": round(p.gmacs, 2),
                                   "accumulators": p.accumulators} for n, p in found.items()}, indent=2))
        return
    click.echo(f"cpu {host().cpu}, one core, register-only loops")
    _echo_table(("isa", "instruction", "GMAC/s"), [(n, p.instruction, f"{p.gmacs:.1f}") for n, p in found.items()])


@main.command("bench")
@click.option("--layer", "ref", required=True, help="Layer reference, e.g. resnet50:res2a.")
@_numerics_options
@click.option("--isa", type=click.Choice(list(DFP_ISAS)), default=None, help="DFP ISA (default: this machine's best).")
@click.option("--batch", "-N", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of per-layer results.")
@_usage_errors
def bench_cmd(ref, bits, rounding, overflow, chain, isa, batch, threads, as_json):
    """Time FPROP of layers with the default blocking: DFP16 vs our FP32 kernel vs PyTorch FP32."""
    from .bench import random_operands, time_kernel, time_torch
    from .peak import peaks

    numerics = Numerics(bits, bits, rounding, overflow, chain)
    threads = threads or default_threads()
    table = peaks()
    results = []
    specs = _specs(ref, batch)
    with click.progressbar(specs, label="measuring", file=click.get_text_stream("stderr"),
                           item_show_func=lambda s: s.name if s else "") as bar:
        for spec in bar:
            x, w = random_operands(spec)
            dfp = dfpgen_compile(spec, "fprop", numerics, isa=isa)
            fp32 = dfpgen_compile(spec, "fprop", isa=host().best_isa("fp32"))
            t_dfp, t_fp32 = time_kernel(dfp, x, w, threads), time_kernel(fp32, x, w, threads)
            t_torch = time_torch(spec, x, w, threads)
            peak = table[dfp.plan.isa.name].gmacs * threads
            results.append({
                "layer": spec.name, "isa": dfp.plan.isa.name, "blocking": dfp.plan.blocking.describe(),
                "bits": bits, "threads": threads, "dfp_gmacs": round(t_dfp.gmacs, 2),
                "pct_peak": round(100 * t_dfp.gmacs / peak, 1), "fp32_gmacs": round(t_fp32.gmacs, 2),
                "torch_gmacs": round(t_torch.gmacs, 2) if t_torch else None,
                "vs_fp32": round(t_fp32.seconds / t_dfp.seconds, 2),
                "vs_torch": round(t_torch.seconds / t_dfp.seconds, 2) if t_torch else None})
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(f"FPROP, batch {batch}, {threads} thread(s), cpu {host().cpu}, DFP bits {bits}; "
               f"medians; % of the measured peak of the DFP instruction x threads")
    _echo_table(("layer", "isa", "blocking", "DFP GMAC/s", "% peak", "FP32 GMAC/s", "torch GMAC/s",
                 "x FP32", "x torch"),
                [(r["layer"], r["isa"], r["blocking"], r["dfp_gmacs"], r["pct_peak"], r["fp32_gmacs"],
                  r["torch_gmacs"] if r["torch_gmacs"] is not None else "-", r["vs_fp32"],
                  r["vs_torch"] if r["vs_torch"] is not None else "-") for r in results])


if __name__ == "__main__":
    main()
