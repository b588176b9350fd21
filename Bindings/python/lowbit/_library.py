"""Finds and loads liblowbit.so, and declares the C signatures of Include/lowbit.h."""
import ctypes
import os
from pathlib import Path

_NAME = "liblowbit.so"


def _candidates():
    """Where to look, in order: $LOWBIT_LIBRARY, the package's own lib/, then build folders."""
    env = os.environ.get("LOWBIT_LIBRARY")
    if env:
        yield Path(env), "$LOWBIT_LIBRARY"
    here = Path(__file__).resolve().parent
    yield here / "lib" / _NAME, "package lib/"
    # Source checkout: Bindings/python/lowbit -> repository root; and the current directory.
    roots = [here.parents[2], Path.cwd()]
    for root in roots:
        for sub in ("dist/lib", ".build/release", ".build/debug"):
            yield root / sub / _NAME, "build folder"


def load():
    tried = []
    for path, what in _candidates():
        tried.append(f"{path} ({what})")
        if path.is_file():
            try:
                return ctypes.CDLL(str(path)), str(path)
            except OSError as e:  # present but not loadable: say why, keep looking
                tried[-1] += f": {e}"
    raise ImportError("lowbit: cannot find liblowbit.so; looked in:\n  " + "\n  ".join(tried)
                      + "\nbuild it with scripts/build.sh or set LOWBIT_LIBRARY")


lib, path = load()

_c = ctypes
_p = _c.c_void_p
_i32, _u32, _i64, _u64 = _c.c_int32, _c.c_uint32, _c.c_int64, _c.c_uint64
_fp = _c.POINTER(_c.c_float)

PROGRESS_FN = _c.CFUNCTYPE(None, _p, _i64, _i64)
TOKEN_FN = _c.CFUNCTYPE(_i32, _p, _i32, _c.POINTER(_c.c_char), _i64)


class ModelParams(_c.Structure):
    """lowbit_model_params."""
    _fields_ = [("size", _c.c_size_t), ("weights", _i32), ("bits", _i32), ("group_size", _i32), ("kernel", _i32),
                ("stack_path", _c.c_char_p), ("budget", _u64), ("calibration_text", _c.c_char_p),
                ("act_bits", _i32)]


class SamplerParams(_c.Structure):
    """lowbit_sampler_params."""
    _fields_ = [("size", _c.c_size_t), ("temperature", _c.c_float), ("top_k", _i32), ("top_p", _c.c_float),
                ("repetition_penalty", _c.c_float), ("repetition_window", _i32), ("seed", _u64)]


class ChatMessage(_c.Structure):
    """lowbit_chat_message."""
    _fields_ = [("role", _c.c_char_p), ("content", _c.c_char_p)]


_SIGNATURES = {
    "lowbit_version_number": (_u32, []),
    "lowbit_version_string": (_c.c_char_p, []),
    "lowbit_status_string": (_c.c_char_p, [_i32]),
    "lowbit_last_error": (_c.c_char_p, []),
    "lowbit_set_threads": (_i32, [_i32]),
    "lowbit_get_threads": (_i32, []),
    "lowbit_simd_tier": (_c.c_char_p, []),
    "lowbit_kernel_name": (_c.c_char_p, [_i32]),
    "lowbit_matrix_quantize": (_i32, [_fp, _i64, _i64, _i64, _i32, _i32, _u32, _c.POINTER(_p)]),
    "lowbit_matrix_from_gptq": (_i32, [_c.POINTER(_c.c_int32), _i64, _c.POINTER(_c.c_int32), _i64, _fp, _i64,
                                       _i64, _i64, _i32, _i32, _u32, _c.POINTER(_p)]),
    "lowbit_matrix_from_ternary": (_i32, [_c.POINTER(_c.c_int8), _i64, _fp, _i64, _i64, _i64, _i32, _c.POINTER(_p)]),
    "lowbit_matrix_free": (None, [_p]),
    "lowbit_matrix_describe": (_i32, [_p, _c.POINTER(_i64), _c.POINTER(_i64), _c.POINTER(_i32), _c.POINTER(_i32),
                                      _c.POINTER(_u32)]),
    "lowbit_matrix_nbytes": (_i32, [_p, _c.POINTER(_u64)]),
    "lowbit_matrix_matmul": (_i32, [_p, _fp, _i64, _i64, _fp, _i64, _i32, _i32]),
    "lowbit_matrix_prepare": (_i32, [_p, _i32]),
    "lowbit_matrix_auto_kernel": (_i32, [_p, _i64, _c.POINTER(_i32)]),
    "lowbit_matrix_dequantize": (_i32, [_p, _fp, _i64]),
    "lowbit_matrix_save": (_i32, [_p, _c.c_char_p]),
    "lowbit_matrix_load": (_i32, [_c.c_char_p, _c.POINTER(_p)]),
    "lowbit_calibration_save": (_i32, [_c.c_char_p]),
    "lowbit_stack_build": (_i32, [_c.c_char_p, _i32, _c.POINTER(_c.c_char_p), _c.POINTER(_fp), _c.POINTER(_i64),
                                  _c.POINTER(_i64), _c.POINTER(_fp), _c.POINTER(_i64), _c.POINTER(_c.c_double),
                                  _i32, _i32, _c.c_double, PROGRESS_FN, _p]),
    "lowbit_stack_open": (_i32, [_c.c_char_p, _u64, _c.POINTER(_p)]),
    "lowbit_model_open": (_i32, [_c.c_char_p, _i32, _i32, _i32, _i32, _c.c_char_p, _u64, _c.POINTER(_p)]),
    "lowbit_model_open_calibrated": (_i32, [_c.c_char_p, _i32, _i32, _i32, _c.c_char_p, _c.POINTER(_p)]),
    "lowbit_model_quantize": (_i32, [_c.c_char_p, _c.c_char_p, _i32, _i32, _u64, _c.c_char_p]),
    "lowbit_model_quantize_elastic": (_i32, [_c.c_char_p, _c.c_char_p, _u64, _u64, _i32, _c.c_char_p]),
    "lowbit_model_close": (None, [_p]),
    "lowbit_model_trace": (_i32, [_p, _c.POINTER(_i32), _i64, _c.POINTER(_c.c_float), _i64, _c.POINTER(_i32),
                               _c.POINTER(_i32)]),
    "lowbit_model_generate": (_i32, [_p, _c.c_char_p, _i32, _i32, _c.c_float, _c.c_float, _u64, _c.c_char_p, _i64,
                                     _c.POINTER(_i64)]),
    "lowbit_model_perplexity": (_i32, [_p, _c.c_char_p, _i32, _i32, _c.POINTER(_c.c_double)]),
    "lowbit_model_set_budget": (_i32, [_p, _u64]),
    "lowbit_model_weight_bytes": (_i32, [_p, _c.POINTER(_u64)]),
    "lowbit_stack_close": (None, [_p]),
    "lowbit_stack_set_budget": (_i32, [_p, _u64]),
    "lowbit_stack_info": (_i32, [_p, _c.POINTER(_u64), _c.POINTER(_u64), _c.POINTER(_u64), _c.POINTER(_u64)]),
    "lowbit_stack_tensor": (_i32, [_p, _c.c_char_p, _c.POINTER(_i64), _c.POINTER(_i64), _c.POINTER(_i32),
                                   _c.POINTER(_i32), _c.POINTER(_i32)]),
    "lowbit_stack_matmul": (_i32, [_p, _c.c_char_p, _fp, _i64, _i64, _fp, _i64]),
    "lowbit_calibration_load": (_i32, [_c.c_char_p]),
    "lowbit_model_default_params": (_i32, [_c.POINTER(ModelParams)]),
    "lowbit_model_load": (_i32, [_c.c_char_p, _c.POINTER(ModelParams), _c.POINTER(_p)]),
    "lowbit_model_vocab_size": (_i32, [_p, _c.POINTER(_i32)]),
    "lowbit_model_context_length": (_i32, [_p, _c.POINTER(_i32)]),
    "lowbit_model_special_token": (_i32, [_p, _i32, _c.POINTER(_i32)]),
    "lowbit_tokenize": (_i32, [_p, _c.c_char_p, _i32, _i32, _c.POINTER(_i32), _i64, _c.POINTER(_i64)]),
    "lowbit_detokenize": (_i32, [_p, _c.POINTER(_i32), _i64, _c.c_char_p, _i64, _c.POINTER(_i64)]),
    "lowbit_chat_template": (_i32, [_p, _c.POINTER(ChatMessage), _i64, _i32, _c.c_char_p, _i64, _c.POINTER(_i64)]),
    "lowbit_sampler_default_params": (_i32, [_c.POINTER(SamplerParams)]),
    "lowbit_context_new": (_i32, [_p, _i32, _c.POINTER(_p)]),
    "lowbit_context_free": (None, [_p]),
    "lowbit_context_eval": (_i32, [_p, _c.POINTER(_i32), _i64, _i32, _fp, _i64]),
    "lowbit_context_tokens": (_i32, [_p, _c.POINTER(_i32), _i64, _c.POINTER(_i64)]),
    "lowbit_context_truncate": (_i32, [_p, _i64]),
    "lowbit_context_sample": (_i32, [_p, _c.POINTER(SamplerParams), _c.POINTER(_i32)]),
    "lowbit_context_generate": (_i32, [_p, _c.POINTER(_i32), _i64, _i32, _c.POINTER(SamplerParams), TOKEN_FN, _p,
                                       _c.POINTER(_i64)]),
    "lowbit_context_chat": (_i32, [_p, _c.POINTER(ChatMessage), _i64, _i32, _c.POINTER(SamplerParams), TOKEN_FN, _p,
                                   _c.POINTER(_i64)]),
}

for _name, (_res, _args) in _SIGNATURES.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args
