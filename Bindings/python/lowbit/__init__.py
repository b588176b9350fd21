"""lowbit: low-bit LLM weights on CPUs (ctypes bindings for liblowbit).

    import numpy as np, lowbit
    w = np.random.randn(4096, 4096).astype(np.float32)
    m = lowbit.quantize(w, bits=2, group_size=128)
    y = m.matmul(np.random.randn(4096).astype(np.float32), kernel="lut")
"""
import ctypes
import os

import numpy as np

from ._handle import Handle
from ._library import lib as _lib, path as library_path

__version__ = "0.2.0"

TERNARY = "ternary"
_TERNARY_CODE = 158
_MIXED_CODE_BASE = 200
# The library's kernel families by name: "auto", "lut", "bitserial", "dequant", "reference", ...
KERNELS = {name.decode(): code for code in range(64) if (name := _lib.lowbit_kernel_name(code)) is not None}
_KERNEL_NAMES = {v: k for k, v in KERNELS.items()}

STATUS_NAMES = {0: "OK", 1: "NULL_POINTER", 2: "INVALID_ARGUMENT", 3: "UNSUPPORTED", 4: "SIZE_MISMATCH",
                5: "OVERFLOW", 6: "OUT_OF_MEMORY", 7: "IO", 8: "BAD_FORMAT", 9: "INTERNAL"}

if _lib.lowbit_version_number() // 100 != (lambda a, b, c: a * 100 + b)(*map(int, __version__.split("."))):
    raise ImportError(f"lowbit: Python package {__version__} does not match {library_path} "
                      f"({_lib.lowbit_version_string().decode()})")


class LowbitError(Exception):
    """A failure reported by liblowbit (or caught before calling it): `status` is the C status
    code, `status_name` its name, `message` the library's explanation."""

    def __init__(self, status, message):
        self.status = status
        self.status_name = STATUS_NAMES.get(status, str(status))
        self.message = message
        super().__init__(f"{message} [{self.status_name}]")


class ArgumentError(LowbitError, TypeError, ValueError):
    """A wrong dtype, shape, layout or option, caught in Python before any C call."""

    def __init__(self, message, status=2):
        super().__init__(status, message)


def _check(status):
    if status != 0:
        raise LowbitError(status, _lib.lowbit_last_error().decode("utf-8", "replace"))


def _array(a, name, dtype, ndim):
    """`a` as passed (no copy): must be a C-contiguous numpy array of `dtype` with ndim in `ndim`."""
    if not isinstance(a, np.ndarray):
        raise ArgumentError(f"{name} must be a numpy array, not {type(a).__name__}")
    if a.dtype != dtype:
        raise ArgumentError(f"{name} must have dtype {np.dtype(dtype).name}, not {a.dtype.name}")
    if a.ndim not in ndim:
        raise ArgumentError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, "
                            f"not {a.ndim} (shape {a.shape})")
    if not a.flags.c_contiguous:
        raise ArgumentError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    return a


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def _bits_code(bits):
    if bits == TERNARY:
        return _TERNARY_CODE
    if isinstance(bits, (int, np.integer)) and not isinstance(bits, bool) and int(bits) in (1, 2, 3, 4):
        return int(bits)
    raise ArgumentError(f"bits must be 1, 2, 3, 4 or 'ternary', not {bits!r}", status=3)


def _kernel_code(kernel):
    if kernel not in KERNELS:
        raise ArgumentError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
    return KERNELS[kernel]


def _int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ArgumentError(f"{name} must be an integer, not {value!r}")
    return int(value)


def set_threads(n: int) -> None:
    """Threads for products and quantization, process-wide (0 = one per CPU)."""
    _check(_lib.lowbit_set_threads(_int(n, "n")))


def get_threads() -> int:
    return _lib.lowbit_get_threads()


def simd_tier() -> str:
    """'portable', 'avx2' or 'avx512': the SIMD tier the kernels run at (LOWBIT_SIMD picks a lower one)."""
    return _lib.lowbit_simd_tier().decode()


class Matrix(Handle):
    """A low-bit weight matrix W (rows x cols) for products y = W·x. Made by `quantize`,
    `from_gptq`, `from_ternary` or `load`; freed when garbage-collected, by `close` or at the
    end of a `with` block."""

    _free = staticmethod(_lib.lowbit_matrix_free)
    _kind = "matrix"

    def __init__(self, handle):
        super().__init__(handle)
        rows, cols = ctypes.c_int64(), ctypes.c_int64()
        bits, group, flags = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_uint32()
        _check(_lib.lowbit_matrix_describe(self._handle, ctypes.byref(rows), ctypes.byref(cols), ctypes.byref(bits),
                                           ctypes.byref(group), ctypes.byref(flags)))
        self.shape = (rows.value, cols.value)
        self.mixed = bits.value > _MIXED_CODE_BASE
        self.bits = TERNARY if bits.value == _TERNARY_CODE else bits.value % _MIXED_CODE_BASE
        self.group_size = group.value
        self.symmetric = bool(flags.value & 1)

    def __repr__(self):
        mixed = ", mixed=True" if self.mixed else ""
        return (f"lowbit.Matrix(shape={self.shape}, bits={self.bits!r}{mixed}, group_size={self.group_size}, "
                f"nbytes={self.nbytes})")

    @property
    def nbytes(self) -> int:
        """Bytes held now: codes, group parameters and kernel layouts packed so far."""
        out = ctypes.c_uint64()
        _check(_lib.lowbit_matrix_nbytes(self._live(), ctypes.byref(out)))
        return out.value

    def matmul(self, x: np.ndarray, kernel: str = "auto", act_bits: int = 8,
               out: "np.ndarray | None" = None) -> np.ndarray:
        """y = W·x for x of shape (cols,) -> (rows,), or X·Wᵀ for (n, cols) -> (n, rows).
        x must be float32 and C-contiguous (it is read in place). `act_bits` sets the activation
        precision: 2, 4 or 8 for "bitserial"; 8 (int8), 16 (two int8 passes: x, then its
        rounding residual) or 32 (float, no rounding) for "dequant". "auto" picks by measurement
        at 8 and otherwise runs the family with that precision; "lut" and "reference" ignore it.
        `out`, if given, receives the result."""
        handle = self._live()
        x = _array(x, "x", np.float32, (1, 2))
        rows, cols = self.shape
        if x.shape[-1] != cols:
            raise ArgumentError(f"x has {x.shape[-1]} columns, the matrix has {cols}", status=4)
        n = 1 if x.ndim == 1 else x.shape[0]
        if n == 0:
            raise ArgumentError("x has no rows")
        shape = (rows,) if x.ndim == 1 else (n, rows)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        else:
            out = _array(out, "out", np.float32, (len(shape),))
            if out.shape != shape:
                raise ArgumentError(f"out has shape {out.shape}, the product needs {shape}", status=4)
        _check(_lib.lowbit_matrix_matmul(handle, _ptr(x, ctypes.c_float), x.size, n, _ptr(out, ctypes.c_float),
                                         out.size, _kernel_code(kernel), _int(act_bits, "act_bits")))
        return out

    __matmul__ = matmul

    def prepare(self, kernel: str) -> None:
        """Packs a kernel family's weight layout now rather than on its first product."""
        _check(_lib.lowbit_matrix_prepare(self._live(), _kernel_code(kernel)))

    def auto_kernel(self, n: int = 1) -> str:
        """The family kernel='auto' runs for n activation rows: the fastest measured on this
        machine for this shape, type, n bucket, thread count and SIMD tier (measured once, on first use)."""
        out = ctypes.c_int32()
        _check(_lib.lowbit_matrix_auto_kernel(self._live(), _int(n, "n"), ctypes.byref(out)))
        return _KERNEL_NAMES[out.value]

    def dequantize(self) -> np.ndarray:
        """The float32 weights (rows x cols) the codes stand for."""
        out = np.empty(self.shape, dtype=np.float32)
        _check(_lib.lowbit_matrix_dequantize(self._live(), _ptr(out, ctypes.c_float), out.size))
        return out

    def save(self, path: "str | os.PathLike") -> None:
        _check(_lib.lowbit_matrix_save(self._live(), os.fsencode(path)))


def _new(call, *args):
    handle = ctypes.c_void_p()
    _check(call(*args, ctypes.byref(handle)))
    return Matrix(handle.value)


def quantize(w: np.ndarray, bits: "int | str" = 4, group_size: int = 128, symmetric: bool = False,
             mixed: bool = False) -> "Matrix":
    """Quantizes float32 weights w (rows x cols, y = W·x) to 1, 2, 3, 4 bits or 'ternary',
    in groups of `group_size` (32, 64 or 128) columns. mixed=True (3 or 4 bits): BitMoD's
    mixture of data types, each group picking the integer grid or a float grid with one extra
    value, whichever fits it best."""
    w = _array(w, "w", np.float32, (2,))
    flags = 1 if symmetric else 0
    code = _bits_code(bits)
    if mixed:
        if code not in (3, 4):
            raise ArgumentError(f"mixed data types come in 3 and 4 bits, not {bits!r}", status=3)
        code += _MIXED_CODE_BASE
    return _new(_lib.lowbit_matrix_quantize, _ptr(w, ctypes.c_float), w.size, w.shape[0], w.shape[1],
                code, _int(group_size, "group_size"), flags)


def from_gptq(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray, bits: int = 4, group_size: int = 128,
              zeros: str = "v1") -> "Matrix":
    """Imports GPTQ-packed weights without requantizing: qweight int32 (cols/pack, rows),
    qzeros int32 (cols/group_size, rows/pack), scales float16/float32 (cols/group_size, rows),
    pack = 32 / bits. zeros='v1' (stored z - 1, AutoGPTQ's format) or 'v2' (stored z)."""
    qweight = _array(qweight, "qweight", np.int32, (2,))
    qzeros = _array(qzeros, "qzeros", np.int32, (2,))
    if not isinstance(scales, np.ndarray) or scales.dtype not in (np.float16, np.float32):
        raise ArgumentError("scales must be a float16 or float32 numpy array")
    scales = _array(np.ascontiguousarray(scales, dtype=np.float32), "scales", np.float32, (2,))
    if zeros not in ("v1", "v2"):
        raise ArgumentError(f"zeros must be 'v1' or 'v2', not {zeros!r}")
    bits_code = _bits_code(bits)
    if bits_code not in (1, 2, 4):
        raise ArgumentError(f"GPTQ import supports 1, 2 and 4 bits, not {bits!r}", status=3)
    pack = 32 // bits_code
    rows, cols = qweight.shape[1], qweight.shape[0] * pack
    return _new(_lib.lowbit_matrix_from_gptq, _ptr(qweight, ctypes.c_int32), qweight.size,
                _ptr(qzeros, ctypes.c_int32), qzeros.size, _ptr(scales, ctypes.c_float), scales.size,
                rows, cols, bits_code, _int(group_size, "group_size"), 1 if zeros == "v2" else 0)


def from_ternary(values: np.ndarray, scales: np.ndarray, group_size: int = 128) -> "Matrix":
    """Imports ternary weights: values int8 in {-1, 0, +1} (rows x cols) and scales float32 of
    size 1 (per tensor), rows (per row) or rows*cols/group_size (per group)."""
    values = _array(values, "values", np.int8, (2,))
    scales = np.atleast_1d(scales)
    if scales.dtype in (np.float16, np.float64):
        scales = np.ascontiguousarray(scales, dtype=np.float32)
    scales = _array(scales, "scales", np.float32, (1, 2))
    return _new(_lib.lowbit_matrix_from_ternary, _ptr(values, ctypes.c_int8), values.size,
                _ptr(scales, ctypes.c_float), scales.size, values.shape[0], values.shape[1],
                _int(group_size, "group_size"))


def calibration_save(path: "str | os.PathLike") -> None:
    """Writes the auto-kernel measurements made so far (see Matrix.auto_kernel) to a file."""
    _check(_lib.lowbit_calibration_save(os.fsencode(path)))


def calibration_load(path: "str | os.PathLike") -> None:
    """Adds auto-kernel measurements from a file (calibration_save, `lowbit bench --calibrate`)."""
    _check(_lib.lowbit_calibration_load(os.fsencode(path)))


def load(path: "str | os.PathLike") -> "Matrix":
    """Loads a matrix saved by Matrix.save (every field and checksum is validated)."""
    return _new(_lib.lowbit_matrix_load, os.fsencode(path))


from . import stack  # noqa: E402  (after the helpers it uses)
from .stack import Stack, parse_size  # noqa: E402
from .model import Context, Model  # noqa: E402

__all__ = [
    "stack", "Stack", "parse_size", "Model", "Context", "Matrix", "LowbitError", "ArgumentError", "quantize",
    "from_gptq", "from_ternary", "load", "set_threads", "get_threads", "simd_tier", "calibration_save",
    "calibration_load", "KERNELS", "TERNARY", "__version__", "library_path"
]
