"""BitStack: memory-elastic weights. `build` writes a stack file from float matrices;
`lowbit.Stack.open(path, budget)` holds as much of it as a memory budget allows."""
import ctypes
import os
import re

import numpy as np

from ._handle import Handle
from ._library import lib as _lib, PROGRESS_FN as _PROGRESS_FN

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10 ** 6, "mb": 10 ** 6, "g": 10 ** 9, "gb": 10 ** 9,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def parse_size(size: "int | str") -> int:
    """Bytes from an int or a string such as "64MB", "1.5GiB", "512k" (KB/MB/GB decimal,
    KiB/MiB/GiB binary)."""
    from . import ArgumentError
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < 0:
            raise ArgumentError(f"size {size} is negative")
        return int(size)
    if isinstance(size, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*", size)
        if m and m.group(2).lower() in _UNITS:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    raise ArgumentError(f"not a size: {size!r} (use bytes, or e.g. '64MB', '1.5GiB')")


def build(weights, path, blocks=16, rank=16, calibration=None, factor_share=0.25, sensitivity=None, progress=None):
    """Decomposes float32 matrices {name: (rows, cols) array} into `blocks` ~1-bit blocks each
    and writes the stack file at `path`. `rank` is the largest rank; `factor_share` caps the
    factors' share of a block, which picks the rank per matrix (None: no cap).
    `calibration` {name: (samples, cols) float32} enables activation-aware scaling;
    Blocks come in level rounds (every tensor gets block i before any gets block i + 1);
    `sensitivity` {name: float} orders each round by sensitivity x the error energy a block
    removes / its bytes (default: tensor order).
    `progress(done, total)` is called after each block."""
    from . import ArgumentError, _array, _check, _int
    if not isinstance(weights, dict) or not weights:
        raise ArgumentError("weights must be a non-empty dict of name -> float32 matrix")
    names = list(weights)
    arrays = [_array(weights[n], f"weights[{n!r}]", np.float32, (2,)) for n in names]
    count = len(names)
    c_names = (ctypes.c_char_p * count)(*[n.encode() for n in names])
    fp = ctypes.POINTER(ctypes.c_float)
    c_weights = (fp * count)(*[a.ctypes.data_as(fp) for a in arrays])
    rows = (ctypes.c_int64 * count)(*[a.shape[0] for a in arrays])
    cols = (ctypes.c_int64 * count)(*[a.shape[1] for a in arrays])
    c_calib = c_samples = None
    keep = []
    if calibration is not None:
        c_calib = (fp * count)()
        c_samples = (ctypes.c_int64 * count)()
        for i, n in enumerate(names):
            if n in calibration:
                x = _array(calibration[n], f"calibration[{n!r}]", np.float32, (2,))
                if x.shape[1] != arrays[i].shape[1]:
                    raise ArgumentError(f"calibration[{n!r}] has {x.shape[1]} columns, "
                                        f"the matrix has {arrays[i].shape[1]}", 4)
                keep.append(x)
                c_calib[i] = x.ctypes.data_as(fp)
                c_samples[i] = x.shape[0]
    c_sens = None
    if sensitivity is not None:
        c_sens = (ctypes.c_double * count)(*[float(sensitivity.get(n, 1.0)) for n in names])
    callback = _PROGRESS_FN(lambda _user, done, total: progress(done, total)) if progress else _PROGRESS_FN()
    _check(_lib.lowbit_stack_build(os.fsencode(path), count, c_names, c_weights, rows, cols, c_calib, c_samples, c_sens,
                                   _int(blocks, "blocks"), _int(rank, "rank"),
                                   1.0 if factor_share is None else float(factor_share),
                                   callback, None))


class Stack(Handle):
    """A stack file held under a memory budget; see lowbit_stack_* in lowbit.h."""

    _free = staticmethod(_lib.lowbit_stack_close)
    _kind = "stack"

    @classmethod
    def open(cls, path: "str | os.PathLike", budget: "int | str") -> "Stack":
        """Opens `path` holding the longest prefix of the stack that fits `budget` (bytes or a
        string such as "64MB")."""
        from . import _check
        handle = ctypes.c_void_p()
        _check(_lib.lowbit_stack_open(os.fsencode(path), parse_size(budget), ctypes.byref(handle)))
        return cls(handle.value, path)

    def set_budget(self, budget: "int | str") -> None:
        """Grows (reading only the new blocks) or shrinks (releasing only the tail) the resident
        part; safe while other threads run products."""
        from . import _check
        _check(_lib.lowbit_stack_set_budget(self._live(), parse_size(budget)))

    def _info(self):
        from . import _check
        vals = [ctypes.c_uint64() for _ in range(4)]
        _check(_lib.lowbit_stack_info(self._live(), *[ctypes.byref(v) for v in vals]))
        return [v.value for v in vals]

    @property
    def resident_bytes(self) -> int:
        return self._info()[0]

    @property
    def minimum_bytes(self) -> int:
        return self._info()[1]

    @property
    def total_bytes(self) -> int:
        return self._info()[2]

    @property
    def bytes_read(self) -> int:
        return self._info()[3]

    def tensor(self, name):
        """(rows, cols, rank, resident blocks, blocks in the file) of a tensor."""
        from . import _check
        r, c = ctypes.c_int64(), ctypes.c_int64()
        k, res, tot = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
        _check(_lib.lowbit_stack_tensor(self._live(), name.encode(), ctypes.byref(r), ctypes.byref(c), ctypes.byref(k),
                                        ctypes.byref(res), ctypes.byref(tot)))
        return r.value, c.value, k.value, res.value, tot.value

    def blocks(self, name: str) -> int:
        """Blocks of `name` resident now."""
        return self.tensor(name)[3]

    def matmul(self, name: str, x: "np.ndarray") -> "np.ndarray":
        """y = W·x for tensor `name` with its resident blocks; x (cols,) or (n, cols) float32."""
        from . import ArgumentError, _array, _check
        rows, cols = self.tensor(name)[:2]
        x = _array(x, "x", np.float32, (1, 2))
        if x.shape[-1] != cols:
            raise ArgumentError(f"x has {x.shape[-1]} columns, '{name}' has {cols}", 4)
        n = 1 if x.ndim == 1 else x.shape[0]
        if n == 0:
            raise ArgumentError("x has no rows")
        out = np.empty((rows,) if x.ndim == 1 else (n, rows), dtype=np.float32)
        fp = ctypes.POINTER(ctypes.c_float)
        _check(_lib.lowbit_stack_matmul(self._live(), name.encode(), x.ctypes.data_as(fp), x.size, n,
                                        out.ctypes.data_as(fp), out.size))
        return out
