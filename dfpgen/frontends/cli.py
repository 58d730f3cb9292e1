"""The `dfpgen` command line: a thin click front end over the library."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from pathlib import Path

import click
from click.core import ParameterSource

from dfpgen import passes
from dfpgen.codegen.kernel import default_threads
from dfpgen.codegen.plan import Blocking
from dfpgen.core import catalog
from dfpgen.core.dfp import DEFAULT_BITS, MAX_BITS, MIN_BITS, ROUNDING_MODES, safe_chain
from dfpgen.core.numerics import KINDS, OVERFLOW_POLICIES, Kind, LayerNumerics, parse_formats
from dfpgen.core.target import DFP_ISAS, ISAS, host
from dfpgen.errors import CatalogError, DFPGenError, FormatError, SpecError
from dfpgen.passes import NAMES as PASSES
from dfpgen.runtime.conv import compile as dfpgen_compile
from dfpgen.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dfpgen")
def main() -> None:
    """dfpgen: generate, inspect, tune and run INT16 (DFP16) convolution kernels."""


@main.command("layers")
@click.argument("ref", required=False, metavar="[REF]")
@click.option("--batch", "-N", type=click.IntRange(min=1), default=None,
              help="Batch size N given to every layer (scales the batch total; default: a descriptor's mb, else 1).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def layers(ref: str | None, batch: int, as_json: bool) -> None:
    """List the built-in networks, or the layer shapes REF picks.

    \b
    REF forms:
      NET               every layer of a built-in network: resnet50, googlenet_v1,
                        vgg16, alexnet (aliases resnet-50, googlenet, vgg_16 work too)
      NET:NAME          the layer named NAME, else every layer whose name starts
                        with NAME (resnet50:res2a: the 4 convolutions of block res2a)
      FILE.toml[:NAME]  the same for your own catalog file (format: dfpgen.core.catalog)
      DESCRIPTOR        a oneDNN benchdnn problem, e.g. mb32ic64ih56oc64oh56kh3ph1
                        (g for groups, dh/dw zero-based dilation; dfpgen.core.descriptor)

    Fully-connected layers are listed as 1x1 convolutions on a 1x1 input. MACs count
    multiply-accumulates of the forward pass; 1 GMAC = 1e9 MACs.

    \b
    --json with REF prints
      {"network": str, "title": str, "ref": str, "batch": int,
       "layers": [{"name", "N", "C", "K", "H", "W", "R", "S", "stride", "pad",
                   "P", "Q", "macs_per_image", "groups", "strides": [h, w],
                   "dilations": [h, w], "pads": [top, bottom, left, right]}, ...],
       "total_macs_per_image": int, "total_macs": int}   (total_macs = for the batch)
    and without REF
      {"networks": [{"name", "title", "layers", "macs_per_image"}, ...]}.
    """
    try:
        if ref is None:
            _list_networks(as_json)
        else:
            _show_layers(ref, batch, as_json)
    except (CatalogError, SpecError) as exc:
        # A bad reference, catalog file or descriptor is a usage error: exit 2 with the message, no traceback.
        raise click.BadParameter(str(exc), param_hint="REF") from None
    except DFPGenError as exc:   # e.g. a 3-D descriptor (UnsupportedError): exit 1, as emit/tune/bench do
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


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


def _show_layers(ref: str, batch: int | None, as_json: bool) -> None:
    if descriptor_ref(ref):
        specs = catalog.select(ref, batch=batch)
        network_name, title, name, total = "descriptor", "a oneDNN benchdnn problem", ref, 1
    else:
        net_ref, name = catalog.split_ref(ref)
        network = catalog.load_network(net_ref)
        specs = [s.with_batch(batch or 1) for s in (network.layers if name is None else network.find(name))]
        network_name, title, total = network.name, network.title, len(network.layers)
    batch = specs[0].N if batch is None else batch
    per_image = sum(s.macs_per_image for s in specs)
    if as_json:
        fields = ("name", "N", "C", "K", "H", "W", "R", "S", "stride", "pad", "P", "Q", "macs_per_image", "groups")
        click.echo(json.dumps({
            "network": network_name, "title": title, "ref": ref, "batch": batch,
            "layers": [{**{f: getattr(s, f) for f in fields}, "strides": [s.sh, s.sw], "dilations": [s.dh, s.dw],
                        "pads": [s.pt, s.pb, s.pl, s.pr]} for s in specs],
            "total_macs_per_image": per_image, "total_macs": per_image * batch}, indent=2))
        return
    click.echo(f"{network_name}: {title}")
    general = not all(s.plain for s in specs)
    rows = [(s.name, str(s.C), str(s.K), f"{s.H}x{s.W}", f"{s.R}x{s.S}", _pair(s.sh, s.sw), _pads(s),
             f"{s.P}x{s.Q}", f"{s.macs_per_image / 1e6:.2f}") + ((str(s.groups), _pair(s.dh, s.dw)) if general else ())
            for s in specs]
    _echo_table(("layer", "C", "K", "HxW", "RxS", "stride", "pad", "PxQ", "MMAC/img")
                + (("groups", "dilation") if general else ()), rows)
    count = f"{len(specs)}" if name is None else f"{len(specs)} of {total}"
    click.echo(f"total: {count} layers, {per_image / 1e9:.3f} GMAC per image, "
               f"{per_image * batch / 1e9:.3f} GMAC for batch {batch}")


def _pair(h: int, w: int) -> str:
    return str(h) if h == w else f"{h}x{w}"


def _pads(s) -> str:
    return _pair(s.pt, s.pl) if (s.pt, s.pl) == (s.pb, s.pr) else f"t{s.pt} b{s.pb} l{s.pl} r{s.pr}"


def _echo_table(header: tuple, rows: list) -> None:
    """Print rows under a header; the first column left-aligned, numbers right-aligned so digits line up."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        click.echo("  ".join(cells).rstrip())


def _specs(ref: str | None, batch: int | None, batch_file: str | None = None, default_batch: int = 8) -> list:
    """The layers of --layer and/or --batch-file. --batch overrides every layer's N; without it
    descriptors keep their own mb and catalog layers get default_batch."""
    from dfpgen.core.descriptor import read_list

    specs = []
    try:
        if ref:
            own = batch if batch is not None else (None if descriptor_ref(ref) else default_batch)
            specs += catalog.select(ref, batch=own)
    except (CatalogError, SpecError) as exc:
        raise click.BadParameter(str(exc), param_hint="--layer") from None
    if batch_file:
        try:
            entries = read_list(batch_file)
        except SpecError as exc:   # DescriptorError: unreadable or binary
            raise click.BadParameter(str(exc), param_hint="--batch-file") from None
        if not entries:
            raise click.BadParameter(f"{batch_file}: no descriptors in the file (only blank lines, # comments "
                                     f"or -- options)", param_hint="--batch-file")
        for entry in entries:
            if isinstance(entry, Exception):
                raise click.BadParameter(f"{batch_file} line {entry.line}: {entry}", param_hint="--batch-file")
            spec = entry.spec if entry.spec.name else dataclasses.replace(entry.spec, name=entry.text)
            specs.append(spec if batch is None else spec.with_batch(batch))
    if not specs:
        raise click.UsageError("give --layer REF or --batch-file FILE")
    return specs


def descriptor_ref(ref: str) -> bool:
    """Whether a --layer value is a benchdnn descriptor."""
    from dfpgen.core.descriptor import looks_like

    return looks_like(ref)


_BATCH_FILE = click.option("--batch-file", type=click.Path(exists=True, dir_okay=False), default=None,
                           help="A benchdnn list: one descriptor a line, # comments (with or instead of --layer).")
_BITS = click.IntRange(MIN_BITS, MAX_BITS)   # every --bits option: any mantissa width of the 16-bit word
_LAYER_HELP = ("Layer reference: NET, NET:NAME (or a name prefix), FILE.toml[:NAME], or a benchdnn "
               "descriptor such as mb32ic64ih56oc64oh56kh3ph1.")


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
        click.option("--bits", type=_BITS, default=DEFAULT_BITS, show_default=True,
                     help="Operand bits (input and weights) of the DFP tensors; the default, the paper's, leaves "
                          "two bits of headroom in the 16-bit word (exact INT32 chains of "
                          f"{safe_chain(DEFAULT_BITS, DEFAULT_BITS)} instructions; "
                          f"{safe_chain(MAX_BITS, MAX_BITS)} at {MAX_BITS})."),
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


def _output_dir(path: str, option: str) -> Path:
    """Create the output folder of `option` up front, so a bad place is one line before any work is done."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"{option} {path}: cannot create the folder: {exc.strerror or exc}") from None
    return folder


def _os_error(exc: OSError) -> click.ClickException:
    """A failed read or write (read-only folder, full disk, a folder where a file should be) as one line naming
    the file."""
    return click.ClickException(f"{exc.filename or 'a file'}: {exc.strerror or exc}")


@main.command("emit")
@click.option("--layer", "ref", default=None, help=_LAYER_HELP)
@_BATCH_FILE
@click.option("--pass", "pass_name", type=click.Choice(PASSES), default="fprop", show_default=True)
@click.option("--isa", type=click.Choice(list(ISAS)), default=None,
              help="Instruction set (default: the best for --cpu or this machine). fp32_* are the FP32 baseline.")
@click.option("--cpu", default=None, help="Emit for a named CPU (e.g. sapphirerapids, alderlake, skylake-avx512).")
@_numerics_options
@click.option("--batch", "-N", type=click.IntRange(min=1), default=None,
              help="Batch size (default: a descriptor's mb, else 1).")
@click.option("--blocking", default=None, help="Knobs, e.g. 'kv=4,wb=6,hb=1,cpb=16,unroll=16,order=nk'.")
@click.option("--ir", "what", flag_value="ir", default=True, help="Print the emitted LLVM IR (default).")
@click.option("--opt-ir", "what", flag_value="opt-ir", help="Print the IR after LLVM's O3 pipeline.")
@click.option("--asm", "what", flag_value="asm", help="Print the optimized assembly.")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Write one file per layer into this folder instead of printing.")
@_usage_errors
def emit_cmd(ref, batch_file, pass_name, isa, cpu, bits, rounding, overflow, chain, batch, blocking, what, output):
    """Print or write the IR or assembly of generated kernels, annotated with their plan.

    A grouped layer's kernel computes one group (it runs once per group)."""
    numerics = LayerNumerics(bits=bits, rounding=rounding, overflow=overflow, chain=chain).kernel_numerics(
        passes.get(pass_name))
    specs = _specs(ref, batch, batch_file, default_batch=1)
    folder = _output_dir(output, "-o") if output is not None else None
    for spec in specs:
        kernel = dfpgen_compile(spec, pass_name, numerics, isa=isa, cpu=cpu, blocking=_parse_blocking(blocking),
                                tuned=True)
        if what == "asm":
            text = "".join(f"# {line}\n" for line in kernel.plan.summary()) + kernel.asm
        else:
            text = kernel.ir if what == "ir" else kernel.optimized_ir
        if output is None:
            click.echo(text)
            continue
        stem = f"{spec.name or 'layer'}.{pass_name}.{kernel.plan.isa.name}.{kernel.plan.target.cpu}".replace("/", "_")
        path = folder / f"{stem}{'.s' if what == 'asm' else '.ll'}"
        try:
            path.write_text(text)
        except OSError as exc:
            raise _os_error(exc) from None
        click.echo(f"wrote {path}", err=True)


@main.command("peak")
@click.option("--remeasure", is_flag=True, help="Measure again instead of using the cached result.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {isa: {instruction, gmacs, accumulators}}.")
@_usage_errors
def peak_cmd(remeasure, as_json):
    """Measure (once, then cached) this core's peak multiply-accumulate rate per ISA."""
    from dfpgen.tuning.peak import peaks

    found = peaks(remeasure=remeasure)
    if as_json:
        click.echo(json.dumps({n: {"instruction": p.instruction, "gmacs": round(p.gmacs, 2),
                                   "accumulators": p.accumulators} for n, p in found.items()}, indent=2))
        return
    click.echo(f"cpu {host().cpu}, one core, register-only loops")
    _echo_table(("isa", "instruction", "GMAC/s"), [(n, p.instruction, f"{p.gmacs:.1f}") for n, p in found.items()])


@main.command("bench")
@click.option("--layer", "ref", default=None, help=_LAYER_HELP + "  [default: resnet50:res2a]")
@_BATCH_FILE
@click.option("--pass", "pass_name", type=click.Choice(PASSES + ("all",)), default="fprop", show_default=True)
@_numerics_options
@click.option("--isa", type=click.Choice(list(DFP_ISAS)), default=None, help="DFP ISA (default: this machine's best).")
@click.option("--batch", "-N", type=click.IntRange(min=1), default=None,
              help="Batch size (default: a descriptor's mb, else 8).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of per-layer, per-pass results.")
@_usage_errors
def bench_cmd(ref, batch_file, pass_name, bits, rounding, overflow, chain, isa, batch, threads, as_json):
    """Time layers' kernels with the default blocking: DFP16 vs our FP32 kernel vs PyTorch FP32.

    \b
    --json prints a list of objects with the keys
      pass, layer, isa, blocking, bits, threads, dfp_gmacs, pct_peak, fp32_gmacs,
      torch_gmacs (null without PyTorch), vs_fp32, vs_torch (speedups of DFP16).
    A grouped layer is timed as the kernel of one group (against PyTorch on one group).
    """
    from dfpgen.tuning.measure import random_operands, time_kernel, time_torch
    from dfpgen.tuning.peak import peaks

    numerics = LayerNumerics(bits=bits, rounding=rounding, overflow=overflow, chain=chain)
    threads = threads or default_threads()
    chosen = PASSES if pass_name == "all" else (pass_name,)
    specs = _specs(ref or (None if batch_file else "resnet50:res2a"), batch, batch_file)
    work = [(p, spec.per_group()) for spec in specs for p in chosen]
    for p, spec in work:   # every layer's operands, result and tables must fit before any is drawn
        passes.get(p).check_size(spec, numerics.kernel_numerics(passes.get(p)), None, host(),
                                 isa or host().best_isa("dfp16"), run=True)
    table = peaks()
    results = []
    with click.progressbar(work, label="measuring", file=click.get_text_stream("stderr"),
                           item_show_func=lambda w: f"{w[1].name} {w[0]}" if w else "") as bar:
        for p, spec in bar:
            a, b = random_operands(spec, p)
            dfp = dfpgen_compile(spec, p, numerics.kernel_numerics(passes.get(p)), isa=isa, tuned=True)
            fp32 = dfpgen_compile(spec, p, isa=host().best_isa("fp32"), tuned=True)
            t_dfp, t_fp32 = time_kernel(dfp, a, b, threads), time_kernel(fp32, a, b, threads)
            t_torch = time_torch(spec, a, b, threads, conv_pass=p)
            peak = table[dfp.plan.isa.name].gmacs * threads
            results.append({
                "pass": p, "layer": spec.name, "isa": dfp.plan.isa.name, "blocking": dfp.plan.blocking.describe(),
                "bits": bits, "threads": threads, "dfp_gmacs": round(t_dfp.gmacs, 2),
                "pct_peak": round(100 * t_dfp.gmacs / peak, 1), "fp32_gmacs": round(t_fp32.gmacs, 2),
                "torch_gmacs": round(t_torch.gmacs, 2) if t_torch else None,
                "vs_fp32": round(t_fp32.seconds / t_dfp.seconds, 2),
                "vs_torch": round(t_torch.seconds / t_dfp.seconds, 2) if t_torch else None})
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    batches = sorted({spec.N for spec in specs})
    click.echo(f"batch {', '.join(map(str, batches))}, {threads} thread(s), cpu {host().cpu}, DFP bits {bits}; medians; "
               f"% of the measured peak of the DFP instruction x threads")
    _echo_table(("layer", "pass", "isa", "blocking", "DFP GMAC/s", "% peak", "FP32 GMAC/s", "torch GMAC/s",
                 "x FP32", "x torch"),
                [(r["layer"], r["pass"], r["isa"], r["blocking"], r["dfp_gmacs"], r["pct_peak"], r["fp32_gmacs"],
                  r["torch_gmacs"] if r["torch_gmacs"] is not None else "-", r["vs_fp32"],
                  r["vs_torch"] if r["vs_torch"] is not None else "-") for r in results])


def _finite(ctx, param, value):
    """Reject NaN and infinity, which click's FloatRange lets through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


@main.command("tune")
@click.option("--layer", "ref", default=None, help=_LAYER_HELP + "  [default: resnet50:res2a]")
@_BATCH_FILE
@click.option("--pass", "pass_name", type=click.Choice(PASSES + ("all",)), default="all", show_default=True)
@_numerics_options
@click.option("--isa", type=click.Choice(list(DFP_ISAS)), default=None, help="DFP ISA (default: this machine's best).")
@click.option("--batch", "-N", type=click.IntRange(min=1), default=None,
              help="Batch size (default: a descriptor's mb, else 8).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads (default: all cores).")
@click.option("--budget", type=click.FloatRange(min=1), default=100.0, show_default=True, callback=_finite,
              help="Seconds of search for the whole command, shared by its layers and passes.")
@click.option("--trials", type=click.IntRange(min=1), default=48, show_default=True,
              help="Most candidates measured per layer and pass.")
@click.option("--seed", type=int, default=0, show_default=True, help="Makes the search order repeatable.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="Tuning database (default: the user cache directory).")
@click.option("--retune", is_flag=True, help="Search again even when the database has an answer.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a roofline PNG of the tuned kernels against this machine's peaks (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (schema in --help).")
@_usage_errors
def tune_cmd(ref, batch_file, pass_name, bits, rounding, overflow, chain, isa, batch, threads, budget, trials, seed,
             db_path, retune, plot_path, as_json):
    """Search the blocking of each layer's kernels, measure them, and remember the best.

    Answers from the database in seconds when it already knows a layer (unless --retune). The
    default blocking is always measured, and timed again side by side with the fastest candidates,
    so the tuned choice is never slower than it in those shared rounds.

    \b
    --json prints {"cpu", "isa", "threads", "batch", "bits", "db", "results": [ {
        "layer", "pass", "from_db", "blocking" (knob -> value), "gmacs", "pct_peak",
        "default_gmacs", "vs_default", "fp32_gmacs", "vs_fp32", "torch_gmacs", "vs_torch",
        "measured", "failures" } ]}   (speedups are time ratios; null where not measured)
    """
    from dfpgen.tuning import report
    from dfpgen.tuning.db import TuningDB
    from dfpgen.tuning.peak import peaks
    from dfpgen.tuning.tune import Task, tune

    numerics = LayerNumerics(bits=bits, rounding=rounding, overflow=overflow, chain=chain)
    threads = threads or default_threads()
    target = host()
    isa = isa or target.best_isa("dfp16")
    fp32_isa = target.best_isa("fp32")
    chosen = PASSES if pass_name == "all" else (pass_name,)
    specs = _specs(ref or (None if batch_file else "resnet50:res2a"), batch, batch_file)
    # A grouped layer runs one per-group kernel once per group: that kernel is what is tuned.
    tasks = [Task(spec.per_group(), p, numerics.kernel_numerics(passes.get(p)), isa, threads, target)
             for spec in specs for p in chosen]
    for task in tasks:   # one line before any progress bar, peak probe or database (tune() checks again)
        task.conv_pass.check_size(task.spec, task.numerics, None, task.target, task.isa, run=True)
    batch = batch if batch is not None else specs[0].N
    db = TuningDB(db_path)
    peak = peaks()[isa].gmacs * threads
    results, points, reused = [], [], []
    started = time.monotonic()
    with click.progressbar(length=len(tasks) * trials, label="tuning", file=click.get_text_stream("stderr"),
                           show_pos=True) as bar:
        for i, task in enumerate(tasks):
            share = max(1.0, (budget - (time.monotonic() - started)) / (len(tasks) - i))
            done = [0]

            def progress(count: int) -> None:
                bar.update(count - done[0])
                done[0] = count
            outcome = tune(task, db, trials=trials, budget=share, seed=seed, retune=retune, progress=progress)
            bar.update(trials - done[0])
            base = report.baselines(task, db, fp32_isa, remeasure=retune) if outcome.best else None
            results.append(report.row(task, outcome, base, peak))
            reused.append(outcome.reused)
            if outcome.best:
                points.append(report.roofline_point(task, outcome, results[-1]["gmacs"]))
    db.close()
    if plot_path:
        from dfpgen.training.plot import roofline
        roofline(points, {n: p.gmacs * threads for n, p in peaks().items() if n in (isa, fp32_isa)}, plot_path,
                 f"{ref}: tuned kernels, {threads} thread(s), {target.cpu}")
    if as_json:
        click.echo(json.dumps({"cpu": target.cpu, "isa": isa, "threads": threads, "batch": batch, "bits": bits,
                               "db": str(db.path), "results": results}, indent=2))
        return
    click.echo(f"{ref or batch_file}: batch {batch}, {threads} thread(s), cpu {target.cpu}, isa {isa}, bits {bits}; "
               f"database {db.path}")
    fmt = lambda v, suffix="": "-" if v is None else f"{v}{suffix}"
    _echo_table(("layer", "pass", "source", "best blocking", "GMAC/s", "% peak", "x default", "x FP32", "x torch"),
                [(r["layer"], r["pass"], "db" if r["from_db"] else f"{r['measured']} tried" + _reused(n),
                  Blocking(**r["blocking"]).describe() if r["blocking"] else r.get("error"), fmt(r.get("gmacs")),
                  fmt(r.get("pct_peak")), fmt(r.get("vs_default")), fmt(r.get("vs_fp32")), fmt(r.get("vs_torch")))
                 for r, n in zip(results, reused)])


def _reused(count: int) -> str:
    """The table's note of the candidates a resumed search took from the database."""
    return f", {count} reused" if count else ""


@main.group("db")
def db_group() -> None:
    """Inspect the tuning database."""


@db_group.command("show")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None)
@click.option("--all", "show_all", is_flag=True, help="Every record, failures too, instead of the best per task.")
@_usage_errors
def db_show(db_path, show_all):
    """The tuner's choice for every tuned task (or every record with --all); a task whose search did not
    finish shows its fastest record, marked unconfirmed (kernels do not use it)."""
    from dfpgen.tuning.db import TuningDB

    db = TuningDB(db_path, create=False)
    records = db.records()
    rows = [(r, r.error_kind or "") for r in records]
    if not show_all:
        keys = list(dict.fromkeys(r.key for r in records if r.ok))     # every task with a correct record
        chosen = {key: db.best(key) for key in keys}
        rows = [(chosen[key], "") if chosen[key] else (db.fastest(key), "unconfirmed") for key in keys]
    empty = " (empty)" if not db.readable and db.path.exists() else ""
    click.echo(f"{db.path}: {len(records)} records{empty}")
    _echo_table(("layer", "pass", "batch", "threads", "isa", "bits", "blocking", "GMAC/s", "error"),
                [(r.layer, r.key.pass_name, r.key.batch, r.key.threads, r.key.numerics[-1], r.key.numerics[0],
                  r.blocking.describe(), f"{r.gmacs:.1f}" if r.ok else "-", note) for r, note in rows])


@db_group.command("export")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None)
@_usage_errors
def db_export(db_path):
    """Every record as JSON lines: {"key": {...}, "layer", "blocking": {...}, "seconds", "gmacs", "error_kind", "error", "created"}."""
    from dfpgen.tuning.db import TuningDB

    for r in TuningDB(db_path, create=False).records():
        click.echo(json.dumps({"key": dataclasses.asdict(r.key), "layer": r.layer,
                               "blocking": dataclasses.asdict(r.blocking),
                               "seconds": r.seconds if r.ok else None, "gmacs": r.gmacs, "error_kind": r.error_kind,
                               "error": r.error, "created": r.created}))


class _FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf (click's range lets nan through: every comparison is false)."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        """The number, or a usage error naming the value and the allowed range."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            bound = f" {'>' if self.min_open else '>='} {self.min:g}" if self.min is not None else ""
            self.fail(f"{value!r}: expected a finite number{bound}", param, ctx)
        return number


@main.command("train")
@click.option("--net", default="resnet8", show_default=True,
              help="lenet, resnet8, resnet20 (adapt to the data) or resnet50, googlenet_v1, vgg16, alexnet "
                   "(ImageNet shapes: use --data synthetic).")
@click.option("--data", "data_source", default="mnist", show_default=True,
              help="mnist (built in: 5,000 real images, pip install 'dfpgen[data]'), synthetic, or a path: "
                   "an MNIST IDX folder, a CIFAR-10 binary folder, or an .npz file.")
@click.option("--precision", type=click.Choice(["dfp16", "fp32"]), default="dfp16", show_default=True)
@click.option("--bits", type=_BITS, default=DEFAULT_BITS, show_default=True,
              help="Activation bits; the default, the paper's, leaves two bits of headroom in the 16-bit word.")
@click.option("--bits-w", type=_BITS, default=None, help="Weight bits (default: --bits).")
@click.option("--bits-grad", type=_BITS, default=None, help="Gradient bits (default: --bits).")
@click.option("--rounding", type=click.Choice(ROUNDING_MODES), default="nearest", show_default=True)
@click.option("--grad-rounding", type=click.Choice(ROUNDING_MODES), default=None,
              help="Rounding of gradients (default: --rounding); stochastic is a common choice.")
@click.option("--dfp", "dfp_kinds", default="act,weight,grad", show_default=True,
              help="Which tensors are DFP; a pass with an FP32 operand runs in FP32 kernels.")
@click.option("--format", "format_text", default=None, metavar="NAME|KIND=NAME,...",
              help="Emulated number formats instead of DFP, for every kind (posit8_0) or per kind "
                   "(act=posit8_1,weight=posit8_1,grad=posit16_1; kinds act, weight, grad): posits, fp8_e4m3, "
                   "fp8_e5m2, bf16, fp16, MX (mxint8, mxfp8_e4m3, ...). Emulated: passes reading such a kind run "
                   "in FP32 kernels on operands rounded to their formats; a pass whose result is a posit sums "
                   "exactly and rounds once (a quire); docs/formats.md.")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=_FiniteFloat(min=0, min_open=True), default=0.05, show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]), default="cosine", show_default=True)
@click.option("--weight-decay", type=_FiniteFloat(min=0), default=5e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only this many training images.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads (default: all cores).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="runs/latest", show_default=True,
              help="Folder for log.csv, checkpoint.npz, summary.json and curves.png.")
@click.option("--resume", is_flag=True,
              help="Continue from OUT/checkpoint.npz, written after every epoch by either backend: the same "
                   "configuration (--epochs may grow; --backend torch: the same --nproc), the same trajectory.")
@click.option("--schedule-precision", "precision_policy", type=click.Choice(["muppet"]), default=None,
              help="Climb 8 -> 12 -> 14 -> 16 bits -> FP32 when MuPPET's gradient-diversity policy says so "
                   "(r=3, p=2; docs/precision.md). --bits is then the rung's.")
@click.option("--precision-ladder", "ladder_text", default=None, metavar="BITS:EPOCHS,...,BITS:*",
              help="Fixed precision ladder, e.g. 8:2,12:2,16:* (epochs per rung, the last open-ended; fp32 allowed).")
@click.option("--backend", type=click.Choice(["numpy", "torch"]), default="numpy", show_default=True,
              help="numpy: dfpgen's own runtime. torch: PyTorch modules with DFP16 layers (dfpgen.frontends.torch), "
                   "data-parallel with --nproc (pip install 'dfpgen[torch]').")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for --backend torch: each takes a shard of every global batch (torch.distributed, gloo).")
@_usage_errors
def train_cmd(net, data_source, precision, bits, bits_w, bits_grad, rounding, grad_rounding, dfp_kinds, format_text,
              epochs, batch, lr, schedule, weight_decay, seed, limit, threads, out_dir, resume, precision_policy,
              ladder_text, backend, nproc):
    """Train a network with DFP16 (or FP32) kernels in every convolution pass, or with emulated number
    formats per tensor kind (--format: posits, FP8, bf16/fp16, MX, rounded in numpy for FP32 kernels;
    posit results are exact sums rounded once, as a quire gives).

    Writes a CSV log per epoch, an atomic checkpoint after every epoch, a summary and a plot of loss
    and accuracy into --out. `--resume` continues the same trajectory: data order and stochastic
    rounding are seeded by (seed, epoch, step), and kernels give the same bits for any thread count.
    """
    formats = _formats(format_text, precision_policy or ladder_text)
    numerics = LayerNumerics(precision, bits, bits_w, bits_grad, rounding, grad_rounding,
                             dfp=tuple(k.strip() for k in dfp_kinds.split(",") if k.strip()), formats=formats)
    precision_schedule = _precision_schedule(precision_policy, ladder_text, precision)
    if backend == "torch":
        _check_nproc(nproc, batch)
        _train_torch(net, data_source, numerics, epochs, batch, lr, schedule, weight_decay, seed, limit, threads,
                     out_dir, resume, nproc, precision_schedule)
        return
    if nproc != 1:
        raise click.UsageError(f"--nproc {nproc}: data-parallel runs need --backend torch (numpy runs one process)")
    from dfpgen.training.train import TrainConfig

    config = TrainConfig(net, data_source, numerics, epochs, batch, lr, 0.9, weight_decay, schedule, seed, limit,
                         precision_schedule)
    try:
        _train_numpy(config, threads, out_dir, resume)
    except OSError as exc:
        raise _os_error(exc) from None


# The train options that set DFP numerics, and the tensor kinds each sets: with --format they must not
# also name a kind that has a format.
_DFP_OPTIONS = (("precision", "--precision fp32", KINDS), ("bits", "--bits", (Kind.ACT,)),
                ("bits_w", "--bits-w", (Kind.WEIGHT,)), ("bits_grad", "--bits-grad", (Kind.GRAD,)),
                ("grad_rounding", "--grad-rounding", (Kind.GRAD,)))


def _formats(text: str | None, scheduled) -> tuple:
    """--format's kinds and names (LayerNumerics.formats), refusing a malformed or unknown format (the message
    lists the valid ones) and the DFP options that would set a kind it gives a format."""
    if text is None:
        return ()
    try:
        formats = parse_formats(text)
    except FormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--format") from None
    ctx, kinds = click.get_current_context(), dict(formats)
    for param, option, sets in _DFP_OPTIONS:
        given = ctx.params[param] == "fp32" if param == "precision" else \
            ctx.get_parameter_source(param) not in (ParameterSource.DEFAULT, None)
        clash = [k for k in sets if k in kinds]
        if given and clash:
            raise click.UsageError(f"--format {text!r} gives {', '.join(f'{k} {kinds[k]}' for k in clash)}; "
                                   f"{option} also sets {'/'.join(clash)}: drop one of them")
    named = {k.strip() for k in ctx.params["dfp_kinds"].split(",")} & set(kinds)
    if ctx.get_parameter_source("dfp_kinds") is not ParameterSource.DEFAULT and named:
        raise click.UsageError(f"--format {text!r}: --dfp names {', '.join(sorted(named))}, which it gives a format; "
                               f"drop it from --dfp")
    if scheduled:
        raise click.UsageError(f"--format {text!r}: precision schedules climb DFP bits; drop --format or the "
                               f"schedule")
    return formats


def _precision_schedule(policy: str | None, ladder_text: str | None, precision: str):
    """The run's precision schedule from --schedule-precision / --precision-ladder (None for neither)."""
    from dfpgen.training.precision import MuppetSchedule, parse_ladder

    if policy is None and ladder_text is None:
        return None
    option = "--schedule-precision" if policy else "--precision-ladder"
    if policy and ladder_text is not None:
        raise click.UsageError("--schedule-precision and --precision-ladder are mutually exclusive: give one")
    if precision != "dfp16":
        raise click.UsageError(f"{option}: the ladder sets the precision per rung; drop --precision {precision}")
    return MuppetSchedule() if policy else parse_ladder(ladder_text)


def _train_numpy(config, threads, out_dir: str, resume: bool) -> None:
    """`train --backend numpy`: epochs with a progress bar, a checkpoint and the log after each, then the plot."""
    from dfpgen.training.train import Trainer, write_log

    net, epochs, batch, lr = config.net, config.epochs, config.batch, config.lr
    schedule, seed = config.schedule, config.seed
    trainer = Trainer(config, threads=threads)   # bad data or network: reported before --out is created
    out = _output_dir(out_dir, "--out")          # before any training: a bad --out must not cost an epoch
    checkpoint = out / "checkpoint.npz"
    if resume:
        trainer.restore(checkpoint)
        click.echo(f"resumed from {checkpoint} after epoch {trainer.epoch}", err=True)
    d = trainer.data
    click.echo(f"{net} on {d.name} ({len(d.train_y)} train / {len(d.test_y)} test, {d.input_shape}), "
               f"{trainer.numerics().describe()}{_schedule_note(config.precision_schedule)}, batch {batch}, "
               f"lr {lr} {schedule}, seed {seed}", err=True)
    steps = trainer.steps_per_epoch()
    while trainer.epoch < epochs:
        state = {"loss": float("nan"), "ips": 0.0}
        with click.progressbar(length=steps, label=f"epoch {trainer.epoch + 1}/{epochs}",
                               file=click.get_text_stream("stderr"),
                               item_show_func=lambda _: f"loss {state['loss']:.4f} {state['ips']:.0f} img/s") as bar:
            def progress(step, loss, ips):
                state["loss"], state["ips"] = loss, ips
                bar.update(1)
            log = trainer.train_epoch(progress)
        if trainer.switches and trainer.switches[-1].epoch == log.epoch:
            click.echo(trainer.switches[-1].describe(), err=True)
        out.mkdir(parents=True, exist_ok=True)
        trainer.save(checkpoint)
        write_log(out / "log.csv", trainer.history)
        click.echo(log.line(), err=True)
    final = trainer.history[-1] if trainer.history else None
    summary = {"config": config.to_json(), "epochs": trainer.epoch,
               "test_acc": final.test_acc if final else None, "test_loss": final.test_loss if final else None}
    if config.precision_schedule:
        summary["switches"] = [s.to_dict() for s in trainer.switches]
        summary["final_rung"] = config.precision_schedule.rungs[trainer.precision.rung]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        from dfpgen.training.plot import run_curves
        run_curves(out, net, config.numerics, config.precision_schedule)
    except DFPGenError as exc:
        click.echo(f"no plot: {exc}", err=True)
    click.echo(f"final test accuracy {100 * final.test_acc:.2f}% ({out})" if final else "nothing trained")


def _schedule_note(schedule) -> str:
    """', precision schedule ...' for the run's opening line ('' without one)."""
    from dfpgen.training.precision import schedule_label

    return f" (precision schedule: {schedule_label(schedule)})" if schedule else ""


def _check_nproc(nproc: int, batch: int) -> None:
    """Refuse --nproc values every rank would fail on, before any process is spawned (or torch imported)."""
    if nproc == 1:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if nproc > cores:
        raise click.BadParameter(f"{nproc}: more processes than the {cores} cores this process may use; "
                                 f"use --nproc <= {cores}", param_hint="--nproc")
    if batch < nproc:
        raise click.BadParameter(f"{nproc}: each process takes at least one sample of every batch, and --batch is "
                                 f"{batch}; use --nproc <= {batch} or --batch >= {nproc}", param_hint="--nproc")


def _train_torch(net, data_source, numerics, epochs, batch, lr, schedule, weight_decay, seed, limit, threads,
                 out_dir, resume, nproc, precision_schedule=None) -> None:
    """`train --backend torch`: dfpgen.frontends.distributed in this process (--nproc 1) or under torchrun."""
    try:
        from dfpgen.frontends.distributed import DistConfig, launch
    except ImportError as exc:
        raise click.UsageError(f"--backend torch needs PyTorch ({exc}): pip install 'dfpgen[torch]'") from None
    config = DistConfig(net=net, data=data_source, epochs=epochs, batch=batch, lr=lr, weight_decay=weight_decay,
                        schedule=schedule, seed=seed, limit=limit, numerics=numerics, threads=threads,
                        out=str(out_dir), resume=resume,
                        precision_schedule=precision_schedule.to_json() if precision_schedule else None)
    status = launch(config, nproc)
    if status:
        raise click.ClickException(f"--backend torch run failed (exit status {status}); see the messages above")


@main.command("conformance")
@click.option("--suite", "suites", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A benchdnn list to run (repeatable; default: every list that ships with dfpgen).")
@click.option("--pass", "pass_name", type=click.Choice(PASSES + ("all",)), default="all", show_default=True)
@click.option("--mb", type=click.IntRange(min=1), default=2, show_default=True,
              help="Minibatch of every problem.")
@click.option("--keep-mb", is_flag=True, help="Keep each descriptor's own minibatch instead of --mb.")
@click.option("--max-spatial", type=click.IntRange(min=1), default=None,
              help="Scale problems whose input is larger than N x N down proportionally (filters, strides, "
                   "dilations and pads kept), for quick runs.")
@click.option("--bits", type=_BITS, default=DEFAULT_BITS, show_default=True,
              help="Bits of the random DFP mantissas (full range, extremes included).")
@click.option("--isa", type=click.Choice(list(DFP_ISAS)), default=None, help="DFP ISA (default: this machine's best).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads (default: all cores).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--verbose", "-v", is_flag=True, help="List every failed and unsupported problem.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {suites: [{suite, passed, failed, unsupported}], problems: [{suite, line, problem, "
                   "pass, status, detail}]}.")
@_usage_errors
def conformance_cmd(suites, pass_name, mb, keep_mb, max_spatial, bits, isa, threads, seed, verbose, as_json):
    """Run oneDNN's benchdnn convolution lists through FPROP, BPROP and WTGRAD against float64 references.

    Each pass must equal the exact result wherever no FP32 flush can round, and stay within the
    derived flush bound elsewhere. Counts are problem-passes; 3-D problems are unsupported.
    Exits with status 1 when anything failed.
    """
    from dfpgen.runtime.conv import choose_isa
    from dfpgen.verification import conformance

    isa_name = choose_isa(host(), "dfp16", isa)   # an ISA this CPU lacks is one clear error, not 1,437 failures
    paths = [Path(p) for p in suites] or conformance.builtin_suites()
    chosen = PASSES if pass_name == "all" else (pass_name,)
    options = dict(mb=None if keep_mb else mb, max_spatial=max_spatial, bits=bits, isa=isa_name, threads=threads,
                   seed=seed)
    from dfpgen.core.descriptor import read_list

    lists = {path: read_list(path) for path in paths}
    outcomes = []
    with click.progressbar(length=sum(map(len, lists.values())) * len(chosen), label="conformance",
                           show_pos=True, file=click.get_text_stream("stderr")) as bar:
        for path, entries in lists.items():
            outcomes += conformance.run_suite(
                path, chosen, progress=lambda o: bar.update(len(chosen) if o.pass_name == "all" else 1),
                entries=entries, **options)
    rows = conformance.summary(outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    if as_json:
        click.echo(json.dumps({"suites": [dict(zip(("suite", "passed", "failed", "unsupported"), r)) for r in rows],
                               "problems": [{"suite": o.suite, "line": o.line, "problem": o.problem,
                                             "pass": o.pass_name, "status": o.status, "detail": o.detail}
                                            for o in outcomes]}, indent=2))
    else:
        click.echo(f"isa {isa_name}, cpu {host().cpu}, bits {bits}, mb {'own' if keep_mb else mb}, "
                   f"max spatial {max_spatial or '-'}, passes {','.join(chosen)}")
        totals = [sum(r[i] for r in rows) for i in (1, 2, 3)]
        _echo_table(("suite", "passed", "failed", "unsupported"), rows + [("total", *totals)])
        for o in outcomes:
            if o.status == "failed" or (verbose and o.status == "unsupported"):
                click.echo(f"{o.status.upper()} {o.suite}:{o.line} {o.problem} [{o.pass_name}] {o.detail}")
    if failed:
        raise SystemExit(1)


@main.command("plot")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True))
@click.option("-o", "--output", default="curves.png", show_default=True,
              help="Image file to write (.png, .pdf, .svg, ...; no extension: .png); a folder gets curves.png.")
@click.option("--title", default="", help="Figure title.")
@_usage_errors
def plot_cmd(logs, output, title):
    """Plot training loss and test accuracy of one or more runs (their log.csv files or --out folders)."""
    from dfpgen.training.plot import output_path, training_curves
    from dfpgen.training.train import read_log

    output_path(output, "curves.png")   # a bad -o is reported before the logs are read

    runs = {}
    for log in logs:
        path = Path(log) / "log.csv" if Path(log).is_dir() else Path(log)
        name = path.parent.name if path.name == "log.csv" else path.stem
        while name in runs:
            name += "'"
        runs[name] = read_log(path)
    click.echo(f"wrote {training_curves(runs, output, title)}")


if __name__ == "__main__":
    main()
