"""Hypothesis strategies shared by the tests: convolution shapes beyond square strides and pads; and the INT8 ISAs."""

from hypothesis import strategies as st

from dfpgen import ConvSpec
from dfpgen.core.target import ISAS, host

INT8_ISAS = [name for name in ISAS if ISAS[name].group == 4]                      # vpdpbusd: groups of four bytes
HOST_INT8 = [name for name in host().isas("dfp16", bits=8) if name in INT8_ISAS]  # those this host runs


@st.composite
def general_specs(draw, max_size: int = 20, max_channels: int = 5, max_batch: int = 4, groups=(1, 2, 3)):
    """ConvSpecs with groups, dilation, per-axis strides and asymmetric, sometimes negative, padding."""
    H, W = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pt, pl = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    low_b = max(1 - H, (R - 1) * dh + 1 - H - pt)
    low_r = max(1 - W, (S - 1) * dw + 1 - W - pl)
    pb, pr = draw(st.integers(low_b, low_b + 5)), draw(st.integers(low_r, low_r + 5))
    g = draw(st.sampled_from(groups))
    return ConvSpec(draw(st.integers(1, max_batch)), g * draw(st.integers(1, max_channels)),
                    g * draw(st.integers(1, max_channels)), H, W, R, S, draw(st.integers(1, 3)), pt, "", g, dh,
                    draw(st.integers(1, 3)), dw, pl, pb, pr)
