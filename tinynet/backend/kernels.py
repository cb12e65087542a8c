"""Fused kernels: one GPU launch for work that plain array calls do in several, each written twice.

On a GPU a small training step is bound by kernel launches, so the hot elementwise work (an
optimizer's update, ReLU's backward, the softmax-cross-entropy gradient, dropout, the running sums
of ``fit``) runs as one ``cupy.ElementwiseKernel`` (or ``ReductionKernel``) each. Every kernel here
is written twice, side by side:

* its CUDA source, compiled by CuPy the first time it runs on a ``"cuda"`` device;
* its **NumPy twin**, the same arithmetic in the same order, which is what runs on the CPU. The
  stand-in device runs the twin too, on the NumPy arrays behind its stand-in arrays, and counts the
  whole twin as **one** array call: exactly what the GPU pays. So the tests that compare a fused
  path with the plain one on the stand-in test the twin, its arguments and its call count, and the
  GPU check (``benchmarks/gpu_check.py``) compares each CUDA kernel with its twin.

The elementwise float kernels (optimizers, ReLU, dropout, uniform draws) are compiled with
``--fmad=false``: CUDA's +, -, *, / and sqrt are then IEEE-exact like NumPy's, and the kernel and
its twin agree bit for bit. Kernels with ``exp``/``log``/``cos`` agree to a few units in the last
place (the two math libraries differ there).

Calling convention: ``kernel(xp, *args)`` with ``xp`` the device's array namespace; arguments as in
the CUDA parameter lists (inputs, then outputs: an output given is updated in place). Read
``tinynet/optim/adam.py`` (``_fused_step``) for a user, ``random.py`` for the counter-based
random stream these kernels draw from.
"""

from __future__ import annotations

import math

import numpy as np

from . import counting, standin

_NO_FMA = ("--fmad=false",)


class Kernel:
    """A CuPy ``ElementwiseKernel`` (or ``ReductionKernel`` with ``reduce=...``) and its twin.

    Args:
        name: the CUDA function name, and the name the stand-in's counters use.
        in_params, out_params, operation: as ``cupy.ElementwiseKernel`` takes them.
        twin: a function of the same arguments on NumPy arrays (and Python scalars) that does the
            same arithmetic; it updates the outputs it is given in place and returns the outputs.
        preamble, options: CUDA code put before the kernel, NVRTC options.
        reduce: ``(reduce_expr, post_map_expr, identity)`` for a ``cupy.ReductionKernel``, whose
            ``operation`` is then the map expression; called with ``axis=`` and ``keepdims=``.
    """

    def __init__(self, name: str, in_params: str, out_params: str, operation: str, twin,
                 preamble: str = "", options: tuple = (), reduce: tuple | None = None):
        self.name = name
        self.in_params, self.out_params, self.operation = in_params, out_params, operation
        self.twin = twin
        self.preamble, self.options, self.reduce = preamble, options, reduce
        self._compiled = None

    def __call__(self, xp, *args, **kwargs):
        kind = xp.name
        if kind == "cupy":
            return self.cuda_kernel(xp._module)(*args, **kwargs)
        if kind == "standin":
            return run_on_standin(self.name, self.twin, args, kwargs)
        return self.twin(*args, **kwargs)

    def cuda_kernel(self, cupy):
        """The compiled CuPy kernel object (made on first use; CuPy caches the binary)."""
        if self._compiled is None:
            if self.reduce is None:
                self._compiled = cupy.ElementwiseKernel(
                    self.in_params, self.out_params, self.operation, self.name,
                    preamble=self.preamble, options=self.options)
            else:
                reduce_expr, post_map_expr, identity = self.reduce
                self._compiled = cupy.ReductionKernel(
                    self.in_params, self.out_params, self.operation, reduce_expr, post_map_expr,
                    identity, self.name, preamble=self.preamble, options=self.options)
        return self._compiled


def run_on_standin(name: str, twin, args: tuple, kwargs: dict):
    """Run a twin on the NumPy arrays behind stand-in arrays, as one counted array call (what the
    GPU launches). A host NumPy array among the arguments is refused, as CuPy refuses it."""
    result = twin(*standin._unwrap(args, name), **standin._unwrap(kwargs, name))
    counting.array_call(name, sum(standin._nbytes(r) for r in result)
                        if isinstance(result, tuple) else standin._nbytes(result))
    return standin._wrap(result)


# --- the optimizers' updates ------------------------------------------------------------------

def _adam_twin(g, neg_lr_t, b1c, beta2, b2c, bc2, eps, wd, decay, sign, w, m, v):
    grad = g * sign if sign != 1 else g
    if wd != 0:
        grad = grad + wd * w
    if decay != 1:
        w *= decay
    m += b1c * (grad - m)
    v *= beta2
    v += b2c * grad * grad
    denom = np.sqrt(v)
    denom /= bc2
    denom += eps
    w += neg_lr_t * m / denom
    return w, m, v


ADAM = Kernel(
    "tinynet_adam",
    "T g, T neg_lr_t, T b1c, T beta2, T b2c, T bc2, T eps, T wd, T decay, T sign", "T w, T m, T v",
    """
    T grad = sign == (T)1 ? g : g * sign;   // maximize: sign = -1
    if (wd != (T)0) grad = grad + wd * w;    // Adam's L2 penalty
    if (decay != (T)1) w = w * decay;        // AdamW's decoupled decay
    m = m + b1c * (grad - m);
    v = v * beta2;
    v = v + b2c * grad * grad;
    w = w + neg_lr_t * m / (sqrt(v) / bc2 + eps);
    """, _adam_twin, options=_NO_FMA)


def _sgd_twin(g, lr, momentum, damp_c, wd, sign, nesterov, w, b):
    d = g * sign if sign != 1 else g
    if wd != 0:
        d = d + wd * w
    b *= momentum
    b += d if damp_c == 1 else damp_c * d
    w -= lr * (d + momentum * b if nesterov else b)
    return w, b


SGD_MOMENTUM = Kernel(
    "tinynet_sgd_momentum", "T g, T lr, T momentum, T damp_c, T wd, T sign, int32 nesterov",
    "T w, T b",
    """
    T d = sign == (T)1 ? g : g * sign;
    if (wd != (T)0) d = d + wd * w;
    b = b * momentum;
    b = b + (damp_c == (T)1 ? d : damp_c * d);
    w = w - lr * (nesterov ? d + momentum * b : b);
    """, _sgd_twin, options=_NO_FMA)


# --- activations ------------------------------------------------------------------------------

RELU_BACKWARD = Kernel(  # g * 0 where y <= 0, not 0: a NaN gradient stays NaN, as g * [y > 0]
    "tinynet_relu_backward", "T g, T y", "T gx", "gx = y > (T)0 ? g : g * (T)0",
    lambda g, y: g * (y > 0))


def _erf_twin(x):
    """Error function without SciPy: ~1e-15 relative error in float64, 0.5 ulp in float32.

    |x| < 2: erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n x (2x^2)^n / (1*3*...*(2n+1)), whose terms
    are all positive (no cancellation). |x| >= 2: the continued fraction
    erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated
    backwards. Narrower dtypes are computed in float64 and rounded once: in float32 both formulas
    amplify the rounding error of x*x by about x^2, which costs ~10 ulp near |x| = 2.
    """
    x = np.asarray(x)
    out_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    x = x.astype(np.float64)
    out = np.empty_like(x)
    small = np.abs(x) < 2
    xs = x[small]
    term = np.ones_like(xs)
    total = np.ones_like(xs)
    two_x2 = 2 * xs * xs
    for n in range(1, 33):
        term = term * two_x2 / (2 * n + 1)
        total = total + term
    out[small] = (2 / math.sqrt(math.pi)) * np.exp(-xs * xs) * xs * total
    xl = x[~small]
    al = np.abs(xl)
    frac = al
    for k in range(40, 0, -1):
        frac = al + (k / 2) / frac
    out[~small] = np.sign(xl) * (1 - np.exp(-al * al) / (math.sqrt(math.pi) * frac))
    return out.astype(out_dtype, copy=False)


def erf(xp, x):
    """erf(x) elementwise: ``cupyx.scipy.special.erf`` on CUDA (one kernel), the NumPy series
    above elsewhere (one counted call on the stand-in)."""
    if xp.name == "cupy":
        from cupyx.scipy import special  # noqa: PLC0415 - CuPy is optional

        return special.erf(x)
    if xp.name == "standin":
        return run_on_standin("erf", _erf_twin, (x,), {})
    return _erf_twin(x)


# --- softmax cross entropy (x: (M, C) logits, m: (M, 1) row maxima, s: (M, 1) sums of exp) -----

SUM_EXP = Kernel(
    "tinynet_sum_exp", "T x, T m", "T s", "exp(x - m)",
    lambda x, m, axis, keepdims: np.exp(x - m).sum(axis=axis, keepdims=keepdims),
    reduce=("a + b", "s = a", "0"))


def _ce_rows_twin(s, m, y, rw, x, classes, ignore, nan_value, slot, out, flags):
    rows = np.arange(y.shape[0])
    y = y.astype(np.int64, copy=False)
    valid = y != ignore
    bad = valid & ((y < 0) | (y >= classes))
    w = np.where(valid, rw, 0).astype(x.dtype)
    picked = x[rows, np.where(valid & ~bad, y, 0)]
    loss = np.where(valid & ~bad, w * (np.log(s) - (picked - m)), 0).astype(x.dtype)
    if bad.any():
        loss[bad] = nan_value
        flags[2 * slot] += np.count_nonzero(bad)
        flags[2 * slot + 1] = y[bad][0]
    out[:, 0] = loss
    out[:, 1] = w
    return out, flags


CE_ROWS = Kernel(
    "tinynet_ce_rows",
    "T s, T m, I y, T rw, raw T x, int64 classes, int64 ignore, T nan_value, int64 slot",
    "raw T out, raw float64 flags",
    """
    const long long label = y;
    const bool valid = label != ignore;
    const bool bad = valid && (label < 0 || label >= classes);
    const T w = valid ? rw : (T)0;
    T loss = (valid && !bad) ? w * (log(s) - (x[i * classes + label] - m)) : (T)0;
    if (bad) {
        loss = nan_value;
        atomicAdd(&flags[2 * slot], 1.0);
        flags[2 * slot + 1] = (double)label;
    }
    out[2 * i] = loss;
    out[2 * i + 1] = w;
    """, _ce_rows_twin)


def _ce_grad_twin(x, m, s, y, rw, g, d, classes, ignore, nan_value):
    p = np.subtract(x, m)
    np.exp(p, out=p)
    p /= s  # softmax
    coef = (g / d) * rw  # () or (M, 1)
    y = y.astype(np.int64, copy=False)
    valid = y != ignore
    bad = valid & ((y < 0) | (y >= classes))
    onehot = np.arange(classes) == y  # (M, C)
    gx = (coef * (p - onehot)).astype(x.dtype, copy=False)
    gx = np.where(valid, gx, x.dtype.type(0))
    return np.where(bad, x.dtype.type(nan_value), gx)


CE_GRAD = Kernel(
    "tinynet_ce_grad",
    "T x, T m, T s, I y, T rw, T g, T d, int64 classes, int64 ignore, T nan_value", "T gx",
    """
    const long long label = y;
    const bool valid = label != ignore;
    const bool bad = valid && (label < 0 || label >= classes);
    const T p = exp(x - m) / s;
    const T onehot = (i % classes) == label ? (T)1 : (T)0;
    gx = bad ? nan_value : (valid ? ((g / d) * rw) * (p - onehot) : (T)0);
    """, _ce_grad_twin)


# --- the counter-based random stream (random.py): SplitMix64 of key + counter * golden gamma -----

_GAMMA = 0x9E3779B97F4A7C15
_MIX_SOURCE = """
__device__ __forceinline__ unsigned long long tinynet_mix64(unsigned long long key,
                                                            unsigned long long counter) {
    unsigned long long z = key + counter * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
// 24 random bits as a float in [0, 1): exact in float32, so every device draws the same values.
__device__ __forceinline__ float tinynet_u24(unsigned long long z) {
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}
"""


def mix64(key: int, offset: int, n: int) -> np.ndarray:
    """The stream's 64-bit words ``offset .. offset + n - 1`` (uint64 arithmetic wraps, as in
    CUDA): SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
    OOPSLA 2014) of ``key + counter * 0x9E3779B97F4A7C15``."""
    counter = np.arange(n, dtype=np.uint64)
    counter += np.uint64(offset)
    z = counter * np.uint64(_GAMMA)
    z += np.uint64(key)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _u24(z: np.ndarray) -> np.ndarray:
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(1 / 16777216)


def _uniform_twin(key, offset, low, span, out):
    z = mix64(key, offset, out.size).reshape(out.shape)
    if out.dtype == np.float64:
        unit = (z >> np.uint64(11)).astype(np.float64) * (1 / 9007199254740992)
    else:
        unit = _u24(z).astype(out.dtype, copy=False)
    out[...] = unit * out.dtype.type(span) + out.dtype.type(low)
    return out


UNIFORM = Kernel(
    "tinynet_uniform", "uint64 key, uint64 offset, T low, T span", "T out",
    """
    const unsigned long long z = tinynet_mix64(key, offset + i);
    const T unit = sizeof(T) == 8 ? (T)((double)(z >> 11) * (1.0 / 9007199254740992.0))
                                  : (T)tinynet_u24(z);
    out = unit * span + low;
    """, _uniform_twin, preamble=_MIX_SOURCE, options=_NO_FMA)


def _normal_twin(key, offset, mean, std, out):
    z = mix64(key, offset, out.size).reshape(out.shape)
    u1 = ((z >> np.uint64(32)).astype(np.float64) + 1.0) * (1 / 4294967296)  # (0, 1]
    u2 = (z & np.uint64(0xFFFFFFFF)).astype(np.float64) * (1 / 4294967296)  # [0, 1)
    normal = (np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * math.pi * u2)).astype(out.dtype)
    out[...] = normal * out.dtype.type(std) + out.dtype.type(mean)
    return out


NORMAL = Kernel(
    "tinynet_normal", "uint64 key, uint64 offset, T mean, T std", "T out",
    """
    // Box & Muller (1958) on two 32-bit halves of one word: |values| <= 6.66.
    const unsigned long long z = tinynet_mix64(key, offset + i);
    const double u1 = ((double)(z >> 32) + 1.0) * (1.0 / 4294967296.0);
    const double u2 = (double)(z & 0xFFFFFFFFULL) * (1.0 / 4294967296.0);
    const T normal = (T)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    out = normal * std + mean;
    """, _normal_twin, preamble=_MIX_SOURCE, options=_NO_FMA)


def _dropout_mask_twin(keep, scale, key, offset, mask):
    kept = _u24(mix64(key, offset, mask.size)).reshape(mask.shape) < keep
    mask[...] = np.where(kept, mask.dtype.type(scale), mask.dtype.type(0))
    return mask


DROPOUT_MASK = Kernel(
    "tinynet_dropout_mask", "float32 keep, T scale, uint64 key, uint64 offset", "T mask",
    "mask = tinynet_u24(tinynet_mix64(key, offset + i)) < keep ? scale : (T)0",
    _dropout_mask_twin, preamble=_MIX_SOURCE)


# --- deferred index checks (checks.py) and the running sums of fit ------------------------------

def _index_check_twin(idx, low, high, exempt, use_exempt, slot, flags):
    idx = idx.astype(np.int64, copy=False)
    bad = (idx < low) | (idx >= high)
    if use_exempt:
        bad &= idx != exempt
    if bad.any():
        flags[2 * slot] += np.count_nonzero(bad)
        flags[2 * slot + 1] = idx[bad][0]
    return flags


INDEX_CHECK = Kernel(
    "tinynet_index_check",
    "I idx, int64 low, int64 high, int64 exempt, int32 use_exempt, int64 slot",
    "raw float64 flags",
    """
    const long long v = idx;
    if ((v < low || v >= high) && !(use_exempt && v == exempt)) {
        atomicAdd(&flags[2 * slot], 1.0);
        flags[2 * slot + 1] = (double)v;
    }
    """, _index_check_twin)


def _accumulate_twin(x, n, slot, acc):
    acc[slot] += np.float64(x) * n
    return acc


ACCUMULATE = Kernel(
    "tinynet_accumulate", "T x, float64 n, int64 slot", "raw float64 acc",
    "acc[slot] += (double)x * n", _accumulate_twin, options=_NO_FMA)


def _count_equal_twin(a, b, slot, acc):
    acc[slot] += np.count_nonzero(a == b)
    return acc


COUNT_EQUAL = Kernel(
    "tinynet_count_equal", "I a, J b, int64 slot", "raw float64 acc",
    "if ((long long)a == (long long)b) atomicAdd(&acc[slot], 1.0)", _count_equal_twin)


def _first_nonfinite_twin(x, iteration, watch):
    if not np.isfinite(x) and watch[0] < 0:
        watch[0] = iteration
        watch[1] = x
    return watch


FIRST_NONFINITE = Kernel(
    "tinynet_first_nonfinite", "T x, int64 iteration", "raw float64 watch",
    "if (!isfinite((double)x) && watch[0] < 0) { watch[0] = iteration; watch[1] = x; }",
    _first_nonfinite_twin)


ALL_KERNELS = (ADAM, SGD_MOMENTUM, RELU_BACKWARD, SUM_EXP, CE_ROWS, CE_GRAD, UNIFORM, NORMAL,
               DROPOUT_MASK, INDEX_CHECK, ACCUMULATE, COUNT_EQUAL, FIRST_NONFINITE)
