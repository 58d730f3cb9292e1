"""dfpgen.frontends.distributed: 2-process torchrun training against one process over the same global batches,
the run's JSON configuration, the dfpgen.nn -> torch translation (dfpgen.frontends.torch_zoo), and
`dfpgen train --backend torch`: the numpy backend's log.csv, summary, plot and precision switches, and
`--resume` bit for bit.

Tolerances
----------
FP32 (--precision fp32): both runs see the same global batches, so the two ranks' averaged gradient is
the single process's gradient summed in another order (two half-batch sums, then the all-reduce). That
changes only FP32 roundings (unit 2**-24 = 6e-8 relative); over a few steps they stay below 1e-5 of the
weights' total update. A sharding or loss-scaling error would show up at order 1.

Batch norm (resnet8, FP32): SyncBatchNorm2d normalizes each rank's shard with the global batch's
statistics. Batch norm's backward subtracts nearly equal sums, which amplifies reordering (more with
every step, so this run takes 2): a single process on 1 instead of 2 threads already moves conv1 by
2.5e-4 of its update (the 2-process run: 1.4e-4), so the tolerance is 2e-3; batch norm over each
shard alone (plain DDP) would move it by about 0.5.

DFP16: rank r quantizes its own shard's activations and gradients, so the exponents differ from the
single process's. A shard's max |a| is at most the global batch's, so its exponent is at most the
global one: every quantization error of the 2-process run is bounded by the single-process run's bound
(|Q(a) - a| <= 2**e, tests/test_torch.py). Both runs are therefore DFP16 runs of the same global
batches, each at least as fine as the single-process one, and lie within the same distance B of the
FP32 trajectory: |w_2proc - w_1proc| <= 2B. B is not 2**-14 of the update: where quantization moves a
value across a ReLU's zero or breaks a max-pool tie the other way, the gradient is rerouted, which no
Lipschitz argument bounds. So B is measured: the single-process DFP16 run's distance from the FP32 run,
as a fraction of the update w - w0 (the largest over all tensors; about 0.02 here). The tolerance is
2B, doubled because one measured deviation is a sample of the quantization noise, not its bound: 4B
per tensor, relative to that tensor's update. B must stay below 0.05, so a broken DFP16 run cannot
widen the tolerance. (The 2-process run lands much closer than 4B, about 3e-4: both DFP16 runs share
the weights' and the input images' quantization, which only the FP32 comparison sees.)
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

from click.testing import CliRunner  # noqa: E402

from dfpgen.core.numerics import LayerNumerics  # noqa: E402
from dfpgen.frontends import distributed, torch_zoo  # noqa: E402
from dfpgen.frontends.cli import main as cli  # noqa: E402
from dfpgen.nn import layers as L  # noqa: E402
from dfpgen.training.plot import precision_switches  # noqa: E402
from dfpgen.training.precision import MuppetSchedule  # noqa: E402
from dfpgen.training.train import PRECISION_FIELDS, read_log  # noqa: E402

RUN = dict(data="mnist", limit=128, batch=32, lr=0.05, seed=0)
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
TIMING = ("seconds", "images_per_s")


def _run(out, nproc: int, **fields) -> dict:
    """Run dfpgen.frontends.distributed on its config file in a subprocess (under torch.distributed.run on the
    loopback when nproc > 1)."""
    config = distributed.DistConfig(**RUN, **fields, out=str(out)).save(out / "config.json")
    args = ["-m", "dfpgen.frontends.distributed", str(config)]
    if nproc > 1:
        args = ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--nnodes", "1",
                "--master_addr", "127.0.0.1", "--master_port", str(distributed.free_port()), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # two ranks on two shared cores: no spinning OpenMP pools
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return {r: dict(np.load(out / f"weights_rank{r}.npz")) for r in range(nproc)}


# (net, precision, steps): lenet in both precisions; resnet8 in FP32 for the batch norm statistics.
CONFIGS = [("lenet", "fp32", 4), ("lenet", "dfp16", 4), ("resnet8", "fp32", 2)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    return {(net, prec, n): _run(base / f"{net}-{prec}-{n}", n, net=net, numerics=LayerNumerics(prec), steps=steps)
            for net, prec, steps in CONFIGS for n in (1, 2)} | {"dir": base}


def initial(net: str) -> dict:
    model, _ = torch_zoo.build_model(net, 0, (1, 28, 28), 10)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _rel(a: dict, b: dict, w0: dict) -> dict:
    """max |a - b| per floating-point tensor, relative to that tensor's largest update in run b."""
    return {k: float(np.abs(a[k] - b[k]).max() / np.abs(b[k] - w0[k]).max()) for k in w0 if w0[k].dtype.kind == "f"}


@pytest.mark.parametrize("net, prec, steps", CONFIGS)
def test_ranks_end_with_identical_weights(runs, net, prec, steps):
    r0, r1 = runs[(net, prec, 2)][0], runs[(net, prec, 2)][1]  # parameters and batch norm buffers
    assert r0.keys() == r1.keys() and all(np.array_equal(r0[k], r1[k]) for k in r0)
    folder = runs["dir"] / f"{net}-{prec}-2"
    logs = [(folder / f"log_rank{r}.csv").read_text().splitlines() for r in (0, 1)]
    assert len(logs[0]) == 1 + steps and [l.split(",")[:5] for l in logs[0]] == [l.split(",")[:5] for l in logs[1]]
    assert (folder / "summary.json").exists()  # the same global losses on both ranks (only seconds differ)
    assert [r["epoch"] for r in read_log(folder / "log.csv")] == [1.0]   # rank 0's, one row per epoch


def test_fp32_data_parallel_equals_one_process(runs):
    rel = _rel(runs[("lenet", "fp32", 2)][0], runs[("lenet", "fp32", 1)][0], initial("lenet"))
    assert max(rel.values()) < 1e-5, rel


def test_batch_norm_statistics_span_the_global_batch(runs):
    rel = _rel(runs[("resnet8", "fp32", 2)][0], runs[("resnet8", "fp32", 1)][0], initial("resnet8"))
    assert max(rel.values()) < 2e-3, rel


def test_dfp16_data_parallel_matches_one_process_within_dfp_bound(runs):
    one, two, fp32 = (runs[("lenet", p, n)][0] for p, n in (("dfp16", 1), ("dfp16", 2), ("fp32", 1)))
    initial_ = initial("lenet")
    B = max(_rel(one, fp32, initial_).values())
    assert 0 < B < 0.05, B  # DFP16 really quantized, and stayed close to FP32
    rel = _rel(two, one, initial_)
    assert max(rel.values()) <= 4 * B, (B, rel)
    assert not all(np.array_equal(one[k], two[k]) for k in one)  # the shards did pick their own exponents


def test_runs_are_reproducible(runs, tmp_path):
    again = _run(tmp_path / "again", 1, net="lenet", numerics=LayerNumerics(), steps=4)[0]
    first = runs[("lenet", "dfp16", 1)][0]
    assert all(np.array_equal(again[k], first[k]) for k in first)


# ----------------------------------------------------------------------------------------- translation


def _numpy_net():
    p = LayerNumerics.fp32()
    rng = np.random.default_rng(0)
    conv = lambda name, C, K, R, pad, bias=False: L.Conv(name, C, K, R, 1, pad, numerics=p, rng=rng, bias=bias)
    return L.Sequential("net", [
        conv("c1", 3, 4, 3, 1, bias=True), L.BatchNorm("bn1", 4), L.ReLU(),
        L.Residual("res", [conv("c2", 4, 4, 3, 1), L.BatchNorm("bn2", 4)]),
        L.Concat("cat", [L.MaxPool("mp", 3, 2, 1, ceil_mode=True), L.AvgPool("ap", 3, 2, 1, ceil_mode=True),
                         L.Sequential("b", [L.ReLU(), L.MaxPool("mp1", 2, 2, 1)])]),
        L.AvgPool("gap"), L.Flatten(), L.Linear("fc", 12, 5, numerics=p, rng=rng)])


@pytest.mark.parametrize("train", [True, False])
def test_translation_computes_what_the_numpy_network_does(train):
    net = _numpy_net()
    model = torch_zoo.translate(net).train(train)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = net.forward(x, train=train)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    keys = set(model.state_dict())
    assert {"c1.weight", "c1.bias", "bn1.weight", "res.main.c2.weight", "fc.weight", "fc.bias"} <= keys


def test_ceil_mode_pooling_matches_caffe_rule():
    x = np.random.default_rng(2).standard_normal((1, 2, 13, 14)).astype(np.float32)
    for layer in (L.MaxPool("p", 3, 2, ceil_mode=True), L.MaxPool("p", 2, 2, 1, ceil_mode=True),
                  L.AvgPool("a", 3, 2, 1, ceil_mode=True), L.AvgPool("a", 2)):
        got = torch_zoo.translate(layer)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, layer.forward(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["resnet8", "resnet50", "googlenet_v1"])
def test_catalog_networks_translate_with_every_parameter(name):
    from dfpgen.nn.models import build
    net, shape = build(name, LayerNumerics.fp32(), 0, 1, (1, 28, 28), 10)
    model = torch_zoo.translate(net)
    assert sum(p.numel() for p in model.parameters()) == sum(p.data.size for p in net.params)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert convs == sum(isinstance(layer, L.Conv) for layer in net.layers())


# ------------------------------------------------------------------------------------------------ cli


def test_cli_train_torch_backend_in_process(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--backend", "torch", "--net", "lenet", "--epochs", "1", "--limit", "64",
                                      "--batch", "32", "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "weights_rank0.npz").exists() and (out / "log_rank0.csv").read_text().count("\n") == 3


def test_cli_train_torch_backend_climbs_a_precision_ladder(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--backend", "torch", "--net", "lenet", "--epochs", "3", "--limit", "64",
                                      "--batch", "32", "--out", str(out), "--threads", "1",
                                      "--precision-ladder", "8:1,12:1,fp32:*"])
    assert result.exit_code == 0, result.output
    assert "epoch 1: precision 8 -> 12" in result.output and "epoch 2: precision 12 -> fp32" in result.output
    rows = list(csv.DictReader(io.StringIO((out / "log_rank0.csv").read_text())))
    assert [int(r["rung"]) for r in rows] == [8, 8, 12, 12, 32, 32]   # two steps per epoch
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["epoch"], s["from"], s["to"]) for s in summary["switches"]] == [(1, 8, 12), (2, 12, "fp32")]
    assert summary["final_rung"] == "fp32" and summary["config"]["precision_schedule"]["kind"] == "ladder"
    # log.csv as the numpy backend writes it: one row per epoch, the precision columns, the switches.
    log = read_log(out / "log.csv")
    assert [r["epoch"] for r in log] == [1, 2, 3] and set(PRECISION_FIELDS) <= set(log[0])
    assert [r["rung"] for r in log] == [8, 12, 32] and precision_switches(log) == [(1, "8->12"), (2, "12->fp32")]
    assert all(math.isnan(r["gd_ratio"]) for r in log) and math.isnan(log[2]["switch_to"])
    assert summary["test_acc"] == pytest.approx(log[-1]["test_acc"], abs=1e-6) and summary["epochs"] == 3
    assert all(0 <= r["train_acc"] <= 1 and r["train_loss"] > 0 and r["images_per_s"] > 0 for r in log)
    if HAVE_MATPLOTLIB:
        assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        plotted = CliRunner().invoke(cli, ["plot", str(out), "-o", str(tmp_path / "again.png")])
        assert plotted.exit_code == 0 and (tmp_path / "again.png").exists(), plotted.output


def assert_same_log(run, other):
    """The two runs' log.csv rows are equal but for the timings (NaN equal to NaN)."""
    untimed = lambda folder: [{k: v for k, v in r.items() if k not in TIMING} for r in read_log(folder / "log.csv")]
    np.testing.assert_equal(untimed(run), untimed(other))


TORCH_MUPPET = ["train", "--backend", "torch", "--net", "lenet", "--limit", "64", "--batch", "32", "--threads", "1",
                "--schedule", "constant", "--schedule-precision", "muppet"]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A MuPPET run of 3 epochs in one go, and one of 2 epochs resumed to 3: the resumed run must restore the
    gradient sums of an unfinished window (MuPPET checks after epoch 3) and the generators of stochastically
    rounded gradients. (--schedule constant: with cosine, the rate of every step depends on --epochs.)"""
    base = tmp_path_factory.mktemp("resume")
    whole, part = base / "whole", base / "part"
    runs = [CliRunner().invoke(cli, [*TORCH_MUPPET, "--out", str(out), "--epochs", epochs, *more])
            for out, epochs, more in ((whole, "3", []), (part, "2", []), (part, "3", ["--resume"]))]
    for result in runs:
        assert result.exit_code == 0, result.output
    return whole, part, runs[2].output


def test_cli_torch_backend_logs_muppet_ratio(resumed):
    log = read_log(resumed[0] / "log.csv")
    assert [r["rung"] for r in log] == [8, 8, 8]
    assert math.isnan(log[0]["gd_ratio"]) and log[2]["gd_ratio"] == 1.0   # epoch 3: the first check sets the max
    summary = json.loads((resumed[0] / "summary.json").read_text())
    assert summary["switches"] == [] and summary["final_rung"] == 8


def test_cli_torch_backend_resume_is_bit_identical(resumed):
    whole, part, output = resumed
    assert "resumed from" in output and "after epoch 2" in output
    a, b = np.load(whole / "weights_rank0.npz"), np.load(part / "weights_rank0.npz")
    assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)   # parameters and BN buffers
    assert_same_log(part, whole)
    steps = [[line.split(",")[:5] for line in (run / "log_rank0.csv").read_text().splitlines()]
             for run in (whole, part)]
    assert steps[0] == steps[1] and len(steps[0]) == 1 + 6


def test_interrupted_run_resumes_bit_identical(tmp_path, monkeypatch):
    """Killed right after epoch 1's checkpoint, resumed with its own --epochs: the cosine rates, the data order and
    the stochastic rounding (a ladder's rungs round gradients stochastically) go on as if nothing happened."""
    fields = dict(RUN, net="lenet", limit=64, epochs=2, threads=1, precision_schedule={"kind": "ladder",
                                                                                        "steps": [[8, 1], [12, None]]})
    whole = distributed.run(distributed.DistConfig(**fields, out=str(tmp_path / "whole")))
    save = distributed._save_checkpoint

    def killed(*args):
        save(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "_save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        distributed.run(distributed.DistConfig(**fields, out=str(tmp_path / "part")))
    monkeypatch.setattr(distributed, "_save_checkpoint", save)
    resumed = distributed.run(distributed.DistConfig(**fields, out=str(tmp_path / "part"), resume=True))
    a, b = (np.load(tmp_path / run / "weights_rank0.npz") for run in ("whole", "part"))
    assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert (whole["test_loss"], whole["switches"]) == (resumed["test_loss"], resumed["switches"])
    assert_same_log(tmp_path / "part", tmp_path / "whole")


@pytest.mark.parametrize("args, message", [
    (["--epochs", "4", "--lr", "0.1"], "CheckpointError: checkpoint {ckpt} was written by another configuration "
                                       "(differs in lr)"),
    (["--epochs", "4", "--precision-ladder", "8:1,16:*"], "differs in precision_schedule"),
    (["--epochs", "4", "--nproc", "2"], "DistributedError: checkpoint {ckpt} was written by 1 process(es), this run "
                                        "has 2: resume it with --nproc 1"),
])
def test_cli_torch_backend_refuses_a_resume_of_another_run(resumed, args, message):
    part = resumed[1]
    before = (part / "checkpoint.npz").read_bytes()
    options = [a for a in TORCH_MUPPET if a not in ("--schedule-precision", "muppet")] if "--precision-ladder" in args \
        else TORCH_MUPPET
    result = CliRunner().invoke(cli, [*options, "--out", str(part), "--resume", *args])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert message.format(ckpt=part / "checkpoint.npz") in result.output
    assert (part / "checkpoint.npz").read_bytes() == before


def test_resume_across_backends_is_refused(resumed, tmp_path):
    part = resumed[1]
    numpy_run = CliRunner().invoke(cli, [a for a in TORCH_MUPPET if a not in ("--backend", "torch")] +
                                   ["--out", str(part), "--epochs", "4", "--resume"])
    assert numpy_run.exit_code == 1 and "written by --backend torch; resume it with that backend" in numpy_run.output
    missing = CliRunner().invoke(cli, [*TORCH_MUPPET, "--out", str(tmp_path), "--epochs", "1", "--resume"])
    assert missing.exit_code == 1 and "does not exist" in missing.output and missing.output.count("\n") == 1


@pytest.mark.slow
def test_two_process_resume_is_bit_identical(tmp_path):
    common = ["train", "--backend", "torch", "--nproc", "2", "--net", "lenet", "--limit", "64", "--batch", "32",
              "--threads", "1", "--schedule", "constant", "--precision-ladder", "8:1,12:*"]
    for out, epochs, more in ((tmp_path / "whole", "2", []), (tmp_path / "part", "1", []),
                              (tmp_path / "part", "2", ["--resume"])):
        result = CliRunner().invoke(cli, [*common, "--out", str(out), "--epochs", epochs, *more],
                                    env={"OMP_NUM_THREADS": "1"})
        assert result.exit_code == 0, result.output
    for r in (0, 1):   # every rank's stochastic-rounding generators were saved and restored
        a, b = (np.load(tmp_path / run / f"weights_rank{r}.npz") for run in ("whole", "part"))
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_cli_train_torch_backend_launches_torchrun(tmp_path, monkeypatch):
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(distributed.subprocess, "run", fake_run)
    result = CliRunner().invoke(cli, ["train", "--backend", "torch", "--nproc", "2", "--net", "resnet8", "--bits", "14",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    cmd = seen["cmd"]
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and cmd[cmd.index("--nproc_per_node") + 1] == "2"
    assert cmd[cmd.index("--master_addr") + 1] == "127.0.0.1"
    assert cmd[-3:] == ["-m", "dfpgen.frontends.distributed", str(tmp_path / "config.json")]
    config = distributed.DistConfig.load(cmd[-1])  # every rank reads the options from this file
    assert (config.net, config.numerics.bits, config.epochs, config.out) == ("resnet8", 14, 8, str(tmp_path))


def test_config_round_trips_through_json(tmp_path):
    numerics = LayerNumerics(bits_w=12, grad_rounding="stochastic", dfp=("act", "grad"))
    config = distributed.DistConfig(net="resnet8", steps=3, lr=1, numerics=numerics, out="x",
                                    precision_schedule=MuppetSchedule(r=2).to_json())
    assert config.lr == 1.0 and isinstance(config.lr, float)  # JSON may write a float as 1
    assert distributed.DistConfig.load(config.save(tmp_path / "c.json")) == config
    assert config.precision() == MuppetSchedule(r=2)
    (tmp_path / "partial.json").write_text('{"net": "resnet8"}')
    assert distributed.DistConfig.load(tmp_path / "partial.json") == distributed.DistConfig(net="resnet8")


@pytest.mark.parametrize("text, names", [
    (None, "cannot read"),
    ("{not json", "not a JSON"),
    (b"\xff\xfe{", "not a JSON"),
    ("[1, 2]", "got list"),
    ('{"nett": "lenet"}', "'nett'"),
    ('{"net": "lenet5"}', "net 'lenet5'"),
    ('{"batch": 0}', "batch 0"),
    ('{"steps": true}', "steps True"),
    ('{"lr": "fast"}', "lr 'fast'"),
    ('{"numerics": {"rounding": "up"}}', "numerics: rounding='up'"),
    ('{"numerics": {"bitz": 3}}', "numerics: "),
    ('{"numerics": 16}', "numerics 16"),
    ('{"out": null}', "out None"),
    ('{"lr": NaN}', "lr=nan: must be a finite number > 0"),
    ('{"momentum": 1.5}', "momentum=1.5: must be a number in [0, 1)"),
    ('{"precision_schedule": {"kind": "adaptive"}}', "precision_schedule: PrecisionScheduleError: kind='adaptive'"),
    ('{"precision_schedule": {"kind": "ladder"}}', "precision_schedule: KeyError"),
    ('{"precision_schedule": "muppet"}', "precision_schedule 'muppet': expected an object"),
    ('{"precision_schedule": {"kind": "muppet"}, "numerics": {"precision": "fp32"}}', "must be 'dfp16'"),
])
def test_bad_config_file_is_one_line_naming_it(tmp_path, capsys, text, names):
    path = tmp_path / "config.json"
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert distributed.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"rank 0: DistributedError: {path}: ") and names in err, err


def test_entry_point_usage_and_missing_file_exit_status(tmp_path, capsys):
    assert distributed.main([]) == 2 and "CONFIG.json" in capsys.readouterr().err
    assert distributed.main(["a.json", "b.json"]) == 2
    missing = tmp_path / "missing.json"
    done = subprocess.run([sys.executable, "-m", "dfpgen.frontends.distributed", str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"rank 0: DistributedError: {missing}: cannot read the run configuration (No such file or directory)"]


@pytest.mark.parametrize("args, message", [
    (["--nproc", "2"], "--nproc 2"),
])
def test_cli_options_the_backend_cannot_honor(args, message):
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 2 and message in result.output
