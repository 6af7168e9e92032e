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


# ---- Gradients (semantics.md, "Gradients") ----------------------------------------------------
# Written from the definition of each forward sum, independently of the forward references
# above: every output element y[n, p, o] is a sum of products x[...] * w[...]; the gradient of
# <y, dy> in x (or w) adds dy[n, p, o] * w[...] (or dy[n, p, o] * x[...]) to every x (w) element
# that product reads. Positions are mapped with explicit index arrays (a gather with a mask for
# positions outside the tensor), not with the pad/crop/scatter code of the forward references.


def _general_axes(rank, stride, padding, kernel_dilation, input_dilation):
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and not np.isscalar(padding[0]):
        lo, hi = _axes(padding[0], rank), _axes(padding[1], rank)
    else:
        lo = hi = _axes(padding, rank)
    return _axes(stride, rank), lo, hi, _axes(kernel_dilation, rank), _axes(input_dilation, rank)


def _masked_take(a, axis, idx, length):
    """a[..., idx, ...] along `axis`, with 0 where idx is outside [0, length)."""
    idx = np.asarray(idx)
    ok = (idx >= 0) & (idx < length)
    out = np.take(a, np.where(ok, idx, 0), axis=axis)
    shape = [1] * out.ndim
    shape[axis] = len(idx)
    return out * ok.reshape(shape)


def _general_geometry(x_shape, w_shape, stride, padding, kernel_dilation, input_dilation):
    rank = len(x_shape) - 2
    s, lo, hi, kd, idl = _general_axes(rank, stride, padding, kernel_dilation, input_dilation)
    I, K = x_shape[1:-1], w_shape[1:-1]
    Lpad = [idl[i] * (I[i] - 1) + 1 + lo[i] + hi[i] for i in range(rank)]
    E = [kd[i] * (K[i] - 1) + 1 for i in range(rank)]
    P = [(Lpad[i] - E[i]) // s[i] + 1 for i in range(rank)]
    assert all(Lpad[i] >= E[i] for i in range(rank)), "invalid problem"
    return rank, s, lo, kd, idl, list(I), list(K), Lpad, P


def conv_general_input(x_shape, w, dy, stride=1, padding=0, kernel_dilation=1, input_dilation=1, groups=1,
                       flip=False):
    """dx = d<conv_general(x, w), dy>/dx (float64).

    y[n, p, o] reads x[n, m, q*C/g + c] where the padded position p*s + k*kd holds dilated
    position t = p*s + k*kd - lo = m*id, with weight w[o, k', c]. So per tap k:
    dx[n, m, q*C/g + c] += sum_o dy[n, p, o] * w[o, k', c] over the p with p*s + k*kd - lo = m*id.
    """
    w, dy = _f64(w), _f64(dy)
    x_shape = tuple(int(e) for e in x_shape)
    rank, s, lo, kd, idl, I, K, Lpad, P = _general_geometry(x_shape, w.shape, stride, padding, kernel_dilation,
                                                            input_dilation)
    n, c = x_shape[0], x_shape[-1]
    o, cg = w.shape[0], w.shape[-1]
    g = groups
    og = o // g
    assert c == cg * g and o == og * g and dy.shape == (n, *P, o)
    dyg = dy.reshape((n, *P, g, og))
    wg = w.reshape((g, og, *K, cg))
    dx = np.zeros((n, *I, g, cg))
    for tap in itertools.product(*[range(e) for e in K]):
        wtap = tap if not flip else tuple(K[i] - 1 - tap[i] for i in range(rank))
        contrib = np.einsum("...go,goc->...gc", dyg, wg[(slice(None), slice(None)) + wtap])  # [n, P..., g, cg]
        # Input element m receives output p when p*s + tap*kd - lo == m*id, i.e.
        # p = (m*id + lo - tap*kd) / s when that is a whole number in [0, P).
        for i in range(rank):
            num = np.arange(I[i]) * idl[i] + lo[i] - tap[i] * kd[i]
            p = np.where(num % s[i] == 0, num // s[i], -1)
            contrib = _masked_take(contrib, 1 + i, p, P[i])
        dx += contrib
    return dx.reshape(x_shape)


def conv_general_weight(x, w_shape, dy, stride=1, padding=0, kernel_dilation=1, input_dilation=1, groups=1,
                        flip=False):
    """dw = d<conv_general(x, w), dy>/dw (float64): dw[o, k', c] = sum over n and p of
    x[n, m, q*C/g + c] * dy[n, p, o] where p*s + k*kd - lo = m*id (else the product reads padding)."""
    x, dy = _f64(x), _f64(dy)
    w_shape = tuple(int(e) for e in w_shape)
    rank, s, lo, kd, idl, I, K, Lpad, P = _general_geometry(x.shape, w_shape, stride, padding, kernel_dilation,
                                                            input_dilation)
    n, c = x.shape[0], x.shape[-1]
    o, cg = w_shape[0], w_shape[-1]
    g = groups
    og = o // g
    assert c == cg * g and o == og * g and dy.shape == (n, *P, o)
    xg = x.reshape((n, *I, g, cg))
    dyg = dy.reshape((n, *P, g, og))
    dw = np.zeros((g, og, *K, cg))
    for tap in itertools.product(*[range(e) for e in K]):
        # The input element that output p reads through this tap: dilated position
        # t = p*s + tap*kd - lo, real when t % id == 0 and 0 <= t / id < I.
        xs = xg
        for i in range(rank):
            t = np.arange(P[i]) * s[i] + tap[i] * kd[i] - lo[i]
            m = np.where(t % idl[i] == 0, t // idl[i], -1)
            m = np.where(t >= 0, m, -1)
            xs = _masked_take(xs, 1 + i, m, I[i])  # [n, P..., g, cg]
        wtap = tap if not flip else tuple(K[i] - 1 - tap[i] for i in range(rank))
        dw[(slice(None), slice(None)) + wtap] += np.einsum("mgc,mgo->goc", xs.reshape(-1, g, cg), dyg.reshape(-1, g, og))
    return dw.reshape(w_shape)


def conv_input(x_shape, w, dy, stride=1, padding=0, dilation=1, groups=1):
    return conv_general_input(x_shape, w, dy, stride, padding, dilation, 1, groups, False)


def conv_weight(x, w_shape, dy, stride=1, padding=0, dilation=1, groups=1):
    return conv_general_weight(x, w_shape, dy, stride, padding, dilation, 1, groups, False)


def _transpose_geometry(x_shape, w_shape, stride, padding, dilation, output_padding):
    rank = len(x_shape) - 2
    s, pad, d, op = (_axes(v, rank) for v in (stride, padding, dilation, output_padding))
    I, K = list(x_shape[1:-1]), list(w_shape[1:-1])
    P = [(I[i] - 1) * s[i] - 2 * pad[i] + d[i] * (K[i] - 1) + op[i] + 1 for i in range(rank)]
    assert all(p >= 1 for p in P), "invalid problem"
    return rank, s, pad, d, I, K, P


def conv_transpose_input(x_shape, w, dy, stride=1, padding=0, dilation=1, output_padding=0, groups=1):
    """dx of the scatter y[n, t*s + k*d - padding, o] += x[n, t, c] * w[o, k, c] (float64):
    dx[n, t, q*C/g + c] = sum_k sum_o dy[n, t*s + k*d - padding, o] * w[o, k, c], where output
    positions outside [0, P) (cut by padding, or never written) contribute nothing."""
    w, dy = _f64(w), _f64(dy)
    x_shape = tuple(int(e) for e in x_shape)
    rank, s, pad, d, I, K, P = _transpose_geometry(x_shape, w.shape, stride, padding, dilation, output_padding)
    n, c = x_shape[0], x_shape[-1]
    o, cg = w.shape[0], w.shape[-1]
    g = groups
    og = o // g
    assert c == cg * g and o == og * g and dy.shape == (n, *P, o)
    dyg = dy.reshape((n, *P, g, og))
    wg = w.reshape((g, og, *K, cg))
    dx = np.zeros((n, *I, g, cg))
    for tap in itertools.product(*[range(e) for e in K]):
        dys = dyg
        for i in range(rank):
            dys = _masked_take(dys, 1 + i, np.arange(I[i]) * s[i] + tap[i] * d[i] - pad[i], P[i])
        dx += np.einsum("...go,goc->...gc", dys, wg[(slice(None), slice(None)) + tap])
    return dx.reshape(x_shape)


def conv_transpose_weight(x, w_shape, dy, stride=1, padding=0, dilation=1, output_padding=0, groups=1):
    """dw[o, k, c] = sum_n sum_t x[n, t, q*C/g + c] * dy[n, t*s + k*d - padding, o] (float64)."""
    x, dy = _f64(x), _f64(dy)
    w_shape = tuple(int(e) for e in w_shape)
    rank, s, pad, d, I, K, P = _transpose_geometry(x.shape, w_shape, stride, padding, dilation, output_padding)
    n, c = x.shape[0], x.shape[-1]
    o, cg = w_shape[0], w_shape[-1]
    g = groups
    og = o // g
    assert c == cg * g and o == og * g and dy.shape == (n, *P, o)
    xg = x.reshape((n, *I, g, cg))
    dyg = dy.reshape((n, *P, g, og))
    dw = np.zeros((g, og, *K, cg))
    for tap in itertools.product(*[range(e) for e in K]):
        dys = dyg
        for i in range(rank):
            dys = _masked_take(dys, 1 + i, np.arange(I[i]) * s[i] + tap[i] * d[i] - pad[i], P[i])
        dw[(slice(None), slice(None)) + tap] = np.einsum("mgc,mgo->goc", xg.reshape(-1, g, cg), dys.reshape(-1, g, og))
    return dw.reshape(w_shape)
