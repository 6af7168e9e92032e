"""NumPy references for the tests, straight from shared/spec/semantics.md, in float64.

`conv_general` follows the definition (dilate the input, pad or crop the dilated input, slide
the dilated kernel); `conv_transpose` is written independently as the scatter of the spec
(PyTorch's definition), so that checking one against the other is meaningful.
"""

import itertools

import numpy as np


def _axes(v, rank):
    if np.isscalar(v) or isinstance(v, (int, np.integer)):
        return [int(v)] * rank
    v = [int(e) for e in v]
    return v * rank if len(v) == 1 else v


def _f64(a):
    return np.asarray(a).astype(np.float64)


def conv_general(x, w, stride=1, padding=0, kernel_dilation=1, input_dilation=1, groups=1, flip=False):
    """y[n, p, o] = sum_k sum_c xpad[n, p*s + k*kd, q*C/g + c] * w[o, k', c] (float64)."""
    x, w = _f64(x), _f64(w)
    rank = x.ndim - 2
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and not np.isscalar(padding[0]):
        lo, hi = _axes(padding[0], rank), _axes(padding[1], rank)
    else:
        lo = hi = _axes(padding, rank)
    s, kd, idl = _axes(stride, rank), _axes(kernel_dilation, rank), _axes(input_dilation, rank)
    n, c = x.shape[0], x.shape[-1]
    o, cg = w.shape[0], w.shape[-1]
    g = groups
    assert c == cg * g and o % g == 0
    og = o // g
    if flip:
        w = w[(slice(None),) + (slice(None, None, -1),) * rank]
    # 1. dilate
    dil_shape = [n] + [idl[i] * (x.shape[1 + i] - 1) + 1 for i in range(rank)] + [c]
    xd = np.zeros(dil_shape)
    xd[(slice(None),) + tuple(slice(None, None, idl[i]) for i in range(rank))] = x
    # 2. pad with zeros or crop dilated positions
    for i in range(rank):
        ax = 1 + i
        if lo[i] < 0:
            xd = np.take(xd, np.arange(-lo[i], xd.shape[ax]), axis=ax)
        if hi[i] < 0:
            xd = np.take(xd, np.arange(0, xd.shape[ax] + hi[i]), axis=ax)
        pw = [(0, 0)] * xd.ndim
        pw[ax] = (max(lo[i], 0), max(hi[i], 0))
        xd = np.pad(xd, pw)
    # 3-4. output extents
    k = w.shape[1:-1]
    E = [kd[i] * (k[i] - 1) + 1 for i in range(rank)]
    P = [(xd.shape[1 + i] - E[i]) // s[i] + 1 for i in range(rank)]
    assert all(p >= 1 for p in P), "invalid problem"
    # 5. sum over taps
    y = np.zeros([n] + P + [g, og])
    wg = w.reshape((g, og) + tuple(k) + (cg,))
    for tap in itertools.product(*[range(e) for e in k]):
        sl = tuple(slice(tap[i] * kd[i], tap[i] * kd[i] + (P[i] - 1) * s[i] + 1, s[i]) for i in range(rank))
        xs = xd[(slice(None),) + sl].reshape([n] + P + [g, cg])
        wt = wg[(slice(None), slice(None)) + tap]  # [g, og, cg]
        y += np.einsum("...gc,goc->...go", xs, wt)
    return y.reshape([n] + P + [o])


def conv(x, w, stride=1, padding=0, dilation=1, groups=1):
    """conv1d/2d/3d: symmetric padding, no input dilation, no flip."""
    return conv_general(x, w, stride, padding, dilation, 1, groups, False)


def conv_transpose(x, w, stride=1, padding=0, dilation=1, output_padding=0, groups=1):
    """The scatter: input position t adds x[n, t, c] * w[o, k, c] to output t*s + k*d - padding."""
    x, w = _f64(x), _f64(w)
    rank = x.ndim - 2
    s, pad, d, op = (_axes(v, rank) for v in (stride, padding, dilation, output_padding))
    n, c = x.shape[0], x.shape[-1]
    o, cg = w.shape[0], w.shape[-1]
    g = groups
    assert c == cg * g and o % g == 0
    og = o // g
    I = x.shape[1:-1]
    k = w.shape[1:-1]
    full = [(I[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 + op[i] for i in range(rank)]
    P = [(I[i] - 1) * s[i] - 2 * pad[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(rank)]
    assert all(p >= 1 for p in P), "invalid problem"
    buf = np.zeros([n] + full + [g, og])
    xg = x.reshape((n,) + tuple(I) + (g, cg))
    wg = w.reshape((g, og) + tuple(k) + (cg,))
    for tap in itertools.product(*[range(e) for e in k]):
        sl = tuple(slice(tap[i] * d[i], tap[i] * d[i] + (I[i] - 1) * s[i] + 1, s[i]) for i in range(rank))
        wt = wg[(slice(None), slice(None)) + tap]  # [g, og, cg]
        buf[(slice(None),) + sl] += np.einsum("...gc,goc->...go", xg, wt)
    # Output position j is buffer position j + padding; positions past the buffer are zeros.
    out = np.zeros([n] + P + [g, og])
    src, dst = [slice(None)], [slice(None)]
    for i in range(rank):
        a, b = pad[i], min(pad[i] + P[i], full[i])
        src.append(slice(a, b))
        dst.append(slice(0, max(b - a, 0)))
    out[tuple(dst)] = buf[tuple(src)]
    return out.reshape([n] + P + [o])


def conv_transpose_as_general(x, w, stride=1, padding=0, dilation=1, output_padding=0, groups=1):
    """The spec's identity: conv_transpose == conv_general(stride 1, lo = d(K-1) - padding,
    hi = lo + output_padding, kernel_dilation d, input_dilation s, flip)."""
    rank = np.asarray(x).ndim - 2
    s, pad, d, op = (_axes(v, rank) for v in (stride, padding, dilation, output_padding))
    k = np.asarray(w).shape[1:-1]
    lo = [d[i] * (k[i] - 1) - pad[i] for i in range(rank)]
    hi = [lo[i] + op[i] for i in range(rank)]
    return conv_general(x, w, 1, (lo, hi), d, s, groups, True)
