"""The Llama runner: a GGUF model whose linear layers are lowbit matrices."""
import ctypes
import os

from ._handle import Handle
from ._library import lib as _lib
from .stack import parse_size

_WEIGHTS = {"reference": 0, "q4_1": 1}


class Model(Handle):
    """Model.open(path, weights="reference" | "q4_1", bits=None, group_size=64, kernel="auto",
    stack=None, budget=None): `bits` (1-4 or "ternary") requantizes the reference weights;
    `stack` (a file from `lowbit stack build --model`) with `budget` holds a BitStack.
    "q4_1" with kernel "auto" or "dequant" rounds activations to 16 bits (two int8 passes) and
    agrees with "reference" token by token; "lut" or "bitserial" round them to int8."""

    _free = staticmethod(_lib.lowbit_model_close)
    _kind = "model"

    @classmethod
    def open(cls, path, weights="q4_1", bits=None, group_size=64, kernel="auto", stack=None, budget=None,
             calibration=None):
        """calibration: text (str) for calibrated requantization (activation-aware scales and
        error feedback from the inputs each layer sees on it); needs bits=."""
        from . import ArgumentError, _bits_code, _check, _int, _kernel_code
        if calibration is not None:
            if bits is None or stack is not None:
                raise ArgumentError("calibration= applies to requantized weights: give bits= (and no stack=)")
            if not isinstance(calibration, str):
                raise ArgumentError("calibration must be text (str)")
            handle = ctypes.c_void_p()
            _check(_lib.lowbit_model_open_calibrated(os.fsencode(path), _bits_code(bits), _int(group_size, "group_size"),
                                                     _kernel_code(kernel), calibration.encode(), ctypes.byref(handle)))
            return cls(handle.value, path)
        stack_path = None
        if stack is not None:
            if budget is None:
                raise ArgumentError("a stack needs a budget (bytes or e.g. '64MB')")
            mode, bits_code, stack_path = 3, 0, os.fsencode(stack)
        elif bits is not None:
            mode, bits_code = 2, _bits_code(bits)
        elif weights in _WEIGHTS:
            mode, bits_code = _WEIGHTS[weights], 0
        else:
            raise ArgumentError(f"weights must be 'reference' or 'q4_1' (or give bits= or stack=), not {weights!r}")
        handle = ctypes.c_void_p()
        _check(_lib.lowbit_model_open(os.fsencode(path), mode, bits_code, _int(group_size, "group_size"),
                                      _kernel_code(kernel), stack_path, parse_size(budget) if stack is not None else 0,
                                      ctypes.byref(handle)))
        return cls(handle.value, path)

    def generate(self, prompt, max_tokens=64, temperature=0.0, top_p=1.0, chat=False, seed=1):
        """The prompt followed by up to max_tokens generated tokens (greedy at temperature 0)."""
        from . import LowbitError, _check, _int
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            written = ctypes.c_int64()
            status = _lib.lowbit_model_generate(self._live(), prompt.encode(), 1 if chat else 0, _int(max_tokens, "max_tokens"),
                                                float(temperature), float(top_p), _int(seed, "seed"), buf, size,
                                                ctypes.byref(written))
            if status == 4 and written.value > size:   # too small: retry with the size asked for
                size = written.value
                continue
            _check(status)
            return prompt + buf.value.decode("utf-8", "replace")

    def trace(self, tokens):
        """Hidden states after the embedding and after each layer for token ids `tokens` run
        from an empty context: float32 array (layers + 1, len(tokens), hidden)."""
        import numpy as np
        from . import ArgumentError, _check
        ids = np.ascontiguousarray(np.asarray(tokens, dtype=np.int32))
        if ids.ndim != 1 or ids.size == 0:
            raise ArgumentError("tokens must be a non-empty 1-D sequence of token ids")
        ids_ptr = ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        layers, hidden = ctypes.c_int32(), ctypes.c_int32()
        probe = (ctypes.c_float * 1)()
        # A call with no room reports the sizes (and fails with SIZE_MISMATCH); then the real call.
        status = _lib.lowbit_model_trace(self._live(), ids_ptr, ids.size, probe, 0, ctypes.byref(layers), ctypes.byref(hidden))
        if status != 4:
            _check(status)
        out = np.empty((layers.value + 1, ids.size, hidden.value), dtype=np.float32)
        _check(_lib.lowbit_model_trace(self._live(), ids_ptr, ids.size, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                       out.size, None, None))
        return out

    def perplexity(self, text, ctx=512, chunks=None):
        """Perplexity by llama-perplexity's protocol (chunks of ctx tokens, second halves scored)."""
        from . import _check, _int
        out = ctypes.c_double()
        _check(_lib.lowbit_model_perplexity(self._live(), text.encode(), _int(ctx, "ctx"),
                                            0 if chunks is None else _int(chunks, "chunks"), ctypes.byref(out)))
        return out.value

    def set_budget(self, budget):
        """Changes a BitStack model's budget (bytes or e.g. '64MB')."""
        from . import _check
        _check(_lib.lowbit_model_set_budget(self._live(), parse_size(budget)))

    @property
    def weight_bytes(self):
        from . import _check
        out = ctypes.c_uint64()
        _check(_lib.lowbit_model_weight_bytes(self._live(), ctypes.byref(out)))
        return out.value
