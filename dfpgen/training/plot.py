"""PNG plots (matplotlib is an optional extra: pip install 'dfpgen[plot]')."""

from __future__ import annotations

import math
from pathlib import Path

from dfpgen.errors import DFPGenError
from dfpgen.passes import NAMES as PASS_NAMES


class PlotError(DFPGenError, RuntimeError):
    """matplotlib is missing, or the plot could not be written."""


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("plotting needs matplotlib: pip install 'dfpgen[plot]'") from None
    return plt


def output_path(path, default_name: str) -> str:
    """The file a plot given `path` is written to: `path`/`default_name` for a folder, `path`.png without an
    extension; PlotError for an extension matplotlib cannot write (checked before any work is done)."""
    _pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    text = str(path)
    target = Path(text)
    if target.is_dir() or text.endswith("/"):
        target = target / default_name
    elif not target.suffix:
        target = target.with_name(target.name + ".png")   # what matplotlib would write: say so
    formats = FigureCanvasBase.get_supported_filetypes()
    if target.suffix[1:].lower() not in formats:
        raise PlotError(f"{text}: cannot write a {target.suffix!r} file; plots are written as "
                        f"{', '.join('.' + f for f in sorted(formats))}")
    return str(target)


def _save(plt, fig, path: str) -> None:
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise PlotError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def roofline(points: list[dict], peaks: dict[str, float], path: str, title: str) -> str:
    """Tuned kernels (dicts with label, intensity in MAC/byte, gmacs) against horizontal peak lines; returns the
    file written (see output_path)."""
    plt = _pyplot()
    path = output_path(path, "roofline.png")
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for name, gmacs in sorted(peaks.items(), key=lambda kv: -kv[1]):
        ax.axhline(gmacs, linestyle="--", linewidth=1, color="gray")
        ax.text(0.02, gmacs, f" {name} peak {gmacs:.0f}", va="bottom", fontsize=8,
                transform=ax.get_yaxis_transform())
    for marker, pass_name in zip("os^", PASS_NAMES):
        sel = [p for p in points if p["pass"] == pass_name]
        if sel:
            ax.scatter([p["intensity"] for p in sel], [p["gmacs"] for p in sel], marker=marker, label=pass_name)
            for p in sel:
                ax.annotate(p["label"], (p["intensity"], p["gmacs"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per byte of operands and result)")
    ax.set_ylabel("GMAC/s")
    ax.set_ylim(0, max([*peaks.values(), *(p["gmacs"] for p in points)]) * 1.15)
    ax.set_title(title)
    ax.legend(loc="lower right")
    _save(plt, fig, path)
    return path


def precision_switches(rows: list[dict]) -> list[tuple[float, str]]:
    """(epoch, 'from->to') of each precision switch a log's rows record (switch_to set; 32 bits is FP32)."""
    def name(bits: float) -> str:
        return "fp32" if bits == 32 else f"{bits:g}"
    return [(r["epoch"], f"{name(r['switch_from'])}->{name(r['switch_to'])}") for r in rows
            if math.isfinite(r.get("switch_to", math.nan))]


def _mark_switches(ax, rows: list[dict], color) -> None:
    """A labelled vertical line between the epoch a switch follows and the first epoch at the new precision."""
    for epoch, label in precision_switches(rows):
        ax.axvline(epoch + 0.5, linestyle=":", linewidth=1, color=color)
        ax.text(epoch + 0.5, 0.98, f" {label}", rotation=90, va="top", ha="right", fontsize=7, color=color,
                transform=ax.get_xaxis_transform())


def training_curves(runs: dict[str, list[dict]], path: str, title: str = "") -> str:
    """Training loss and test accuracy per epoch, one line per run (rows as read from CSV logs), precision switches
    as labelled vertical lines; returns the file written (a folder gets curves.png, see output_path)."""
    plt = _pyplot()
    path = output_path(path, "curves.png")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for name, rows in runs.items():
        epochs = [r["epoch"] for r in rows]
        line, = ax_loss.plot(epochs, [r["train_loss"] for r in rows], marker="o", markersize=3, label=name)
        ax_acc.plot(epochs, [100 * r["test_acc"] for r in rows], marker="o", markersize=3, label=name)
        for ax in (ax_loss, ax_acc):
            _mark_switches(ax, rows, line.get_color())
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    _save(plt, fig, path)
    return path



def run_curves(out: Path, net: str, numerics, schedule=None) -> str:
    """Write `out`/curves.png from `out`/log.csv, one training run's curves (either backend), labelled with the
    network and its precision schedule, formats or precision; returns the file written. Raises PlotError
    without matplotlib, LogError for a damaged log."""
    from dfpgen.training.precision import schedule_label
    from dfpgen.training.train import read_log

    label = schedule_label(schedule) or " ".join(f"{k}={n}" for k, n in numerics.formats) or numerics.precision
    return training_curves({f"{net} {label}": read_log(Path(out) / "log.csv")}, str(Path(out) / "curves.png"))
