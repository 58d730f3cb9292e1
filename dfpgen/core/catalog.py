"""Layer catalogs: the convolution shapes of whole networks, read from TOML files.

Built-in catalogs ship in the package as `dfpgen.specs/*.toml` (one file per network, the
`specs/` folder of the repository); users can point at their own file with the same format:

    [network]
    name = "resnet50"
    title = "ResNet-50 v1 (...)"        # optional
    input = [3, 224, 224]               # C, H, W of the network input
    [[layer]]                           # one table per layer, in network order
    name = "conv1"
    C = 3
    K = 64
    H = 224                             # W defaults to H
    R = 7                               # S defaults to R
    stride = 2                          # default 1
    pad = 3                             # default 0
    groups = 2                          # default 1 (grouped convolution; C and K are totals)
    dilation = 1                        # default 1 (PyTorch's convention)

Fully-connected layers are written as 1x1 convolutions on a 1x1 input. A reference picks layers:
`NET`, `NET:NAME`, `path/to/file.toml` or `path/to/file.toml:NAME`, where NAME is an exact
layer name or else a prefix (`resnet50:res2a` is the four convolutions of block res2a), or a oneDNN
benchdnn descriptor such as `mb32ic64ih56oc64oh56kh3ph1` (dfpgen.core.descriptor).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfpgen.core import descriptor
from dfpgen.core.spec import ConvSpec
from dfpgen.errors import CatalogError, SpecError

# Spellings people use for the built-in networks (keys are compared lower-cased).
ALIASES = {
    "resnet_50": "resnet50",
    "resnet-50": "resnet50",
    "googlenet": "googlenet_v1",
    "googlenet-v1": "googlenet_v1",
    "inception_v1": "googlenet_v1",
    "vgg_16": "vgg16",
    "vgg-16": "vgg16",
    "bvlc_alexnet": "alexnet_2tower",
    "alexnet_groups": "alexnet_2tower",
}

_NETWORK_KEYS = {"name": str, "title": str, "input": list}
_REQUIRED_NETWORK_KEYS = ("name", "input")
_INT_FIELDS = ("C", "K", "H", "W", "R", "S", "stride", "pad", "groups", "dilation")
_REQUIRED_LAYER_KEYS = ("name", "C", "K", "H", "R")
# A file reference is anything ending in .toml, optionally followed by ":NAME". Non-greedy, so a
# layer name may itself contain ".toml" but a path may not contain ".toml:".
# What only a benchdnn descriptor starts with: a malformed one gets the descriptor parser's error.
_DESCRIPTOR_START = re.compile(r"^(g\d+_?)?(mb\d+_?)?ic\d+")
_FILE_REF = re.compile(r"^(?P<path>.+?\.toml)(?::(?P<layer>.*))?$", re.IGNORECASE)


@dataclass(frozen=True)
class Network:
    """A network's convolution (and fully-connected) layers in order, each with N=1."""

    name: str
    title: str
    input: tuple[int, int, int]
    layers: tuple[ConvSpec, ...]

    @property
    def macs_per_image(self) -> int:
        """Multiply-accumulates of one image's forward pass through every listed layer."""
        return sum(layer.macs_per_image for layer in self.layers)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The layer names in network order."""
        return tuple(layer.name for layer in self.layers)

    def find(self, name: str) -> tuple[ConvSpec, ...]:
        """The layer named exactly `name`, else every layer whose name starts with it."""
        if not name:
            raise CatalogError(f"network {self.name!r}: empty layer name; give NET for every layer "
                               f"or NET:NAME for one layer or a prefix")
        exact = tuple(layer for layer in self.layers if layer.name == name)
        if exact:
            return exact
        prefixed = tuple(layer for layer in self.layers if layer.name.startswith(name))
        if prefixed:
            return prefixed
        # Suggest whole names and name prefixes as long as the query (so 'res2z' finds 'res2a').
        names = self.layer_names
        candidates = list(dict.fromkeys(names + tuple(n[:len(name)] for n in names)))
        raise CatalogError(f"network {self.name!r} has no layer named or starting with {name!r}; "
                           f"{_suggest(name, candidates, 'layers', shown=names)}")


def networks() -> list[str]:
    """Names of the built-in networks (the TOML files shipped in `dfpgen.specs`)."""
    return sorted(entry.name[:-len(".toml")] for entry in _builtin_dir().iterdir()
                  if entry.name.endswith(".toml"))


def load_network(name_or_path: str | os.PathLike) -> Network:
    """A built-in network by name (or alias), or a user catalog by path to its TOML file."""
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(str(name_or_path)):
        path = Path(name_or_path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CatalogError(f"{path}: no such catalog file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{path}: cannot read catalog file: {exc}") from None
        return _parse(text, str(path))
    return _load_builtin(canonical_name(str(name_or_path)))


def canonical_name(name: str) -> str:
    """The built-in network a name or alias refers to; CatalogError with suggestions if none."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    known = networks()
    if key in known:
        return key
    # Match aliases too, but suggest the canonical names (once each).
    close = _closest(key, known + sorted(ALIASES), n=6, cutoff=0.6)
    close = list(dict.fromkeys(ALIASES.get(c, c) for c in close))[:3]
    hint = ("did you mean " + " or ".join(map(repr, close)) + "?") if close else _suggest(key, known, "networks")
    raise CatalogError(f"unknown network {name!r}; {hint} (or give a path to a .toml catalog file)")


def split_ref(ref: str) -> tuple[str, str | None]:
    """Split a reference `NET[:NAME]` or `FILE.toml[:NAME]` into (network or path, NAME or None)."""
    if not isinstance(ref, str) or not ref.strip():
        raise CatalogError(f"empty layer reference {ref!r}; expected NET, NET:NAME, FILE.toml or FILE.toml:NAME")
    ref = ref.strip()
    match = _FILE_REF.match(ref)
    if match:
        return match["path"], match["layer"]
    # Built-in network names never contain ':', layer names never either (the loader refuses
    # them), so the first ':' separates the two; googlenet's '/' in layer names is no problem.
    net, sep, layer = ref.partition(":")
    return net, (layer if sep else None)


def select(ref: str, batch: int | None = 1) -> list[ConvSpec]:
    """The layers a reference names (`NET`, `NET:NAME`, `FILE.toml[:NAME]`, a benchdnn descriptor), each
    with N=batch; None keeps a descriptor's own minibatch (catalog layers then get N=1)."""
    if isinstance(batch, np.integer) and not isinstance(batch, np.bool_):
        batch = int(batch)
    if batch is not None and not _is_pos_int(batch):
        raise CatalogError(f"batch={batch!r}: must be an integer >= 1")
    if isinstance(ref, str) and (descriptor.looks_like(ref) or _DESCRIPTOR_START.match(ref.strip())):
        spec = descriptor.parse(ref)
        spec = spec if spec.name else dataclasses.replace(spec, name=ref.strip())
        return [spec if batch is None else spec.with_batch(batch)]
    batch = batch or 1
    net_ref, layer = split_ref(ref)
    network = load_network(net_ref)
    layers = network.layers if layer is None else network.find(layer)
    return [spec.with_batch(batch) for spec in layers]


# ----------------------------------------------------------------------------- internals


def _builtin_dir():
    # importlib.resources, not a path relative to this file: the specs live in the package
    # `dfpgen.specs`, which may be a wheel, a zip or an editable mapping to the repo's specs/.
    return importlib.resources.files("dfpgen.specs")


@functools.lru_cache(maxsize=None)
def _load_builtin(name: str) -> Network:
    # Cached: built-in files do not change while we run and Network is immutable. User files are
    # re-read on every call, since users edit them between calls.
    resource = _builtin_dir() / f"{name}.toml"
    return _parse(resource.read_text(encoding="utf-8"), f"{name}.toml (built-in)")


def _looks_like_path(ref: str) -> bool:
    return ref.lower().endswith(".toml") or "/" in ref or os.sep in ref


def _closest(name: str, choices, n: int, cutoff: float) -> list[str]:
    """difflib.get_close_matches, but ties keep the choices' order (network order reads better)."""
    scored = []
    for index, choice in enumerate(dict.fromkeys(choices)):
        ratio = difflib.SequenceMatcher(None, name, choice).ratio()
        if ratio >= cutoff:
            scored.append((-ratio, index, choice))
    return [choice for _, _, choice in sorted(scored)[:n]]


def _suggest(name: str, choices, what: str, shown=None) -> str:
    """'did you mean ...?' with the closest choices, else the first few of `shown` (or choices)."""
    close = _closest(name, choices, n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    listed = list(choices if shown is None else shown)
    text = ", ".join(listed[:8]) + (f", ... ({len(listed)} in all)" if len(listed) > 8 else "")
    return f"{what}: {text}"


def _parse(text: str, source: str) -> Network:
    """Parse and validate one catalog; every error names `source`, the layer and the field."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"network", "layer"})
    if unknown:
        raise CatalogError(f"{source}: unknown top-level key {unknown[0]!r}; allowed: [network], [[layer]]")

    head = doc.get("network")
    if not isinstance(head, dict):
        raise CatalogError(f"{source}: missing [network] table (with name and input)")
    _check_keys(head, _NETWORK_KEYS, _REQUIRED_NETWORK_KEYS, f"{source}: [network]")
    for key, typ in _NETWORK_KEYS.items():
        if key in head and not isinstance(head[key], typ):
            raise CatalogError(f"{source}: [network] {key}={head[key]!r}: must be a {typ.__name__}")
    name = head["name"].strip()
    if not name or ":" in name:
        raise CatalogError(f"{source}: [network] name={head['name']!r}: must be non-empty and contain no ':'")
    shape = head["input"]
    if len(shape) != 3 or not all(_is_pos_int(v) for v in shape):
        raise CatalogError(f"{source}: [network] input={shape!r}: must be [C, H, W], three integers >= 1")

    raw_layers = doc.get("layer")
    if raw_layers is None:
        raise CatalogError(f"{source}: no [[layer]] tables; a catalog lists at least one layer")
    if not isinstance(raw_layers, list) or not all(isinstance(t, dict) for t in raw_layers):
        raise CatalogError(f"{source}: 'layer' must be an array of tables, written [[layer]]")
    layers: list[ConvSpec] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(raw_layers, start=1):
        spec = _parse_layer(table, index, source)
        if spec.name in seen:
            raise CatalogError(f"{source}: layer {index} name={spec.name!r}: duplicate of layer {seen[spec.name]}")
        seen[spec.name] = index
        layers.append(spec)
    return Network(name=name, title=head.get("title", ""), input=tuple(shape), layers=tuple(layers))


def _parse_layer(table: dict, index: int, source: str) -> ConvSpec:
    raw_name = table.get("name")
    where = f"{source}: layer {index}" + (f" ({raw_name!r})" if isinstance(raw_name, str) else "")
    _check_keys(table, dict.fromkeys(("name",) + _INT_FIELDS), _REQUIRED_LAYER_KEYS, where)
    if not isinstance(raw_name, str) or not raw_name.strip() or ":" in raw_name:
        # ':' separates network and layer in a reference, so a name holding one could not be selected.
        raise CatalogError(f"{where}: name={raw_name!r}: must be a non-empty string without ':'")
    for field in _INT_FIELDS:
        if field in table:
            value = table[field]
            if not isinstance(value, int) or isinstance(value, bool):
                raise CatalogError(f"{where}: {field}={value!r}: must be an integer")
    fields = {field: table[field] for field in _INT_FIELDS if field in table}
    fields.setdefault("W", fields["H"])
    fields.setdefault("S", fields["R"])
    try:
        return ConvSpec(N=1, name=raw_name.strip(), **fields)
    except SpecError as exc:
        # ConvSpec's message already names the layer and field and gives the allowed range.
        raise CatalogError(f"{source}: layer {index}: {exc}") from None


def _check_keys(table: dict, allowed, required, where: str) -> None:
    for key in required:
        if key not in table:
            raise CatalogError(f"{where}: missing field {key!r} (required: {', '.join(required)})")
    for key in table:
        if key not in allowed:
            # Typos such as `strides` or `padding` would otherwise be silently ignored.
            hint = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
            raise CatalogError(f"{where}: unknown field {key!r}"
                               + (f", did you mean {hint[0]!r}?" if hint else "")
                               + f" (allowed: {', '.join(allowed)})")


def _is_pos_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
