"""oneDNN benchdnn convolution descriptors: `mb32ic64ih56oc64oh56kh3ph1` <-> ConvSpec.

The syntax and defaulting rules are benchdnn's (knobs_desc.md, driver_conv.md):

    gXmbX_icXidXihXiwX_ocXodXohXowX_kdXkhXkwX_sdXshXswX_pdXphXpwX_ddXdhXdwX_nNAME

Every entry is optional except ic, ih, oc and kh; `_` separators are optional; the name runs to
the end of the text and may be quoted (`n"resnet_50:conv1"`), with a `*N` repeat count at its end.
A 1-D problem (iw and kw, no ih and kh) is a 2-D one of height 1. Defaults: g=1, mb=2, strides 1, dilations 0. A missing w value copies the h value. A missing output
size is computed from the padding, a missing padding from the output size. The bottom/right padding
is never written: it is whatever makes the given output size come out
(`pr = (o-1)*s - i + (k-1)*(d+1) + 1 - pl`), negative when the last input pixels are never read. Dilation is zero-based here (`dh0` is an ordinary
convolution), one-based in ConvSpec (PyTorch's convention). 3-D problems (id, kd, od, sd, pd, dd)
are recognized and refused with `UnsupportedError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dfpgen.core.spec import ConvSpec
from dfpgen.errors import DescriptorError, SpecError, UnsupportedError

KEYS_2D = ("g", "mb", "ic", "ih", "iw", "oc", "oh", "ow", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw")
KEYS_3D = ("id", "od", "kd", "sd", "pd", "dd")
REQUIRED = ("ic", "ih", "oc", "kh")
DEFAULT_MB = 2

# Longest keys first so 'mb' is not read as 'm' + 'b'; 'n' (the name) is handled separately.
_KEY = re.compile("|".join(sorted(KEYS_2D + KEYS_3D, key=len, reverse=True)))
_INT = re.compile(r"-?\d+")
_REPEAT = re.compile(r"\*(\d+)$")


@dataclass(frozen=True)
class Problem:
    """One line of a benchdnn list: the layer, how often the network repeats it, where it came from."""

    spec: ConvSpec
    repeat: int = 1
    text: str = ""
    line: int = 0


def tokens(text: str) -> tuple[dict[str, int], str | None]:
    """The integer entries of a descriptor and its name (None if it has none); DescriptorError if malformed."""
    values: dict[str, int] = {}
    name = None
    pos, text = 0, text.strip()
    while pos < len(text):
        if text[pos] == "_":
            pos += 1
            continue
        if text[pos] == "n":   # no entry key starts with n
            name = _read_name(text, pos + 1)
            break
        key = _KEY.match(text, pos)
        if key is None:
            raise DescriptorError(f"descriptor {text!r}: unknown entry at {text[pos:pos + 8]!r} (position {pos}); "
                                  f"entries are {', '.join(KEYS_2D)}, and n for the name")
        number = _INT.match(text, key.end())
        if number is None:
            raise DescriptorError(f"descriptor {text!r}: entry {key.group()!r} needs an integer value "
                                  f"(position {key.end()})")
        if key.group() in values:
            raise DescriptorError(f"descriptor {text!r}: entry {key.group()!r} is given twice")
        values[key.group()] = int(number.group())
        pos = number.end()
    return values, name


def _read_name(text: str, start: int) -> str:
    rest = text[start:]
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end < 0:
            raise DescriptorError(f"descriptor {text!r}: the quoted name has no closing quote")
        if rest[end + 1:].strip():
            raise DescriptorError(f"descriptor {text!r}: text after the quoted name: {rest[end + 1:]!r}")
        return rest[1:end]
    return rest.strip()


def parse_problem(text: str, line: int = 0) -> Problem:
    """One descriptor -> Problem (spec, repeat count); DescriptorError or UnsupportedError naming the entry."""
    values, name = tokens(text)
    name = name or ""
    repeat = 1
    found = _REPEAT.search(name)
    if found:
        repeat, name = int(found.group(1)), name[:found.start()]
    where = f"descriptor {text.strip()!r}"
    three_d = [k for k in KEYS_3D if k in values]
    if three_d:
        raise UnsupportedError(f"{where}: a 3-D problem ({', '.join(three_d)}); dfpgen supports 2-D convolutions")
    for key, value in values.items():
        low = 0 if key[0] in "pd" else 1
        if value < low:
            raise DescriptorError(f"{where}: {key}{value}: must be >= {low}")
    v = dict(values)
    if "ih" not in v and "iw" in v and "kh" not in v and "kw" in v:   # 1-D: one row of height 1
        v.update(ih=1, kh=1, oh=1, sh=1, ph=0, dh=0)
    missing = [k for k in REQUIRED if k not in v]
    if missing:
        raise DescriptorError(f"{where}: missing {', '.join(missing)} (ic, ih, oc and kh are required for 2-D; "
                              f"iw and kw for 1-D)")
    v.setdefault("g", 1)
    v.setdefault("mb", DEFAULT_MB)
    v.setdefault("sh", 1)
    v.setdefault("dh", 0)
    for h, w in (("ih", "iw"), ("kh", "kw"), ("sh", "sw"), ("dh", "dw")):
        v.setdefault(w, v[h])
    if "ph" in v:
        v.setdefault("pw", v["ph"])
    if "oh" in v:
        v.setdefault("ow", v["oh"])
    rows = _axis(where, "h", v)
    cols = _axis(where, "w", v)
    try:
        spec = ConvSpec(N=v["mb"], C=v["ic"], K=v["oc"], H=v["ih"], W=v["iw"], R=v["kh"], S=v["kw"],
                        stride=v["sh"], pad=rows[0], name=name, groups=v["g"], dilation=v["dh"] + 1,
                        stride_w=v["sw"], dilation_w=v["dw"] + 1, pad_w=cols[0], pad_bottom=rows[1],
                        pad_right=cols[1])
    except SpecError as exc:
        raise DescriptorError(f"{where}: {exc}") from None
    if (spec.P, spec.Q) != (rows[2], cols[2]):
        raise DescriptorError(f"{where}: output {rows[2]}x{cols[2]} is inconsistent with the other entries "
                              f"(they give {spec.P}x{spec.Q})")
    return Problem(spec, repeat, text.strip(), line)


def _axis(where: str, axis: str, v: dict) -> tuple[int, int, int]:
    """(low pad, high pad, output size) along one axis, benchdnn's deduction rules."""
    i, k, s, d = v[f"i{axis}"], v[f"k{axis}"], v[f"s{axis}"], v[f"d{axis}"]
    extent = (k - 1) * (d + 1) + 1
    low, out = v.get(f"p{axis}"), v.get(f"o{axis}")
    if out is None:
        low = low or 0
        out = (i - extent + 2 * low) // s + 1
        if out < 1:
            raise DescriptorError(f"{where}: the filter ({extent} with dilation) does not fit i{axis}{i} with "
                                  f"p{axis}{low}")
    elif low is None:
        low = max(0, ((out - 1) * s - i + extent) // 2)
    high = (out - 1) * s - i + extent - low
    # Every high pad in [high, high + s) gives the same outputs (the rest of a stride is never read):
    # prefer the symmetric one, then none (so equal layers get equal specs), then the least cropping.
    for nicer in (low, 0, 1 - i):
        if high <= nicer < high + s:
            return low, nicer, out
    return low, high, out


def parse(text: str) -> ConvSpec:
    """One descriptor -> ConvSpec."""
    return parse_problem(text).spec


def looks_like(ref: str) -> bool:
    """Whether a layer reference is a benchdnn descriptor rather than NET[:NAME] or a file."""
    try:
        values, _ = tokens(ref)
    except DescriptorError:
        return False
    return "ic" in values and "oc" in values


def read_list(path) -> list[Problem | Exception]:
    """Every problem of a benchdnn list file, in order; a line that cannot be used is its exception.
    DescriptorError when the file cannot be read or is not UTF-8 text."""
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DescriptorError(f"{path}: not a text file (byte {exc.object[exc.start]:#04x} at offset {exc.start} "
                              f"is not UTF-8); a benchdnn list has one descriptor a line") from None
    except OSError as exc:
        raise DescriptorError(f"{path}: cannot read the list: {exc.strerror or exc}") from None
    problems: list = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("--"):
            continue   # blanks, comments and benchdnn driver options (--dir=..., --cfg=...)
        try:
            problems.append(parse_problem(line, number))
        except (DescriptorError, UnsupportedError) as exc:
            exc.line, exc.text = number, line
            problems.append(exc)
    return problems


def format_spec(spec: ConvSpec) -> str:
    """The canonical benchdnn descriptor of a ConvSpec (round-trips through `parse`)."""
    s = spec
    text = (f"g{s.groups}mb{s.N}_ic{s.C}ih{s.H}iw{s.W}_oc{s.K}oh{s.P}ow{s.Q}_kh{s.R}kw{s.S}_sh{s.sh}sw{s.sw}"
            f"_ph{s.pt}pw{s.pl}_dh{s.dh - 1}dw{s.dw - 1}")
    return text + (f'_n"{s.name}"' if s.name else "")
