"""The Llama runner: a GGUF model whose linear layers are lowbit matrices."""
import ctypes
import os

from ._handle import Handle
from ._library import TOKEN_FN, ChatMessage, ModelParams, SamplerParams
from ._library import lib as _lib
from .stack import parse_size

_WEIGHTS = {"reference": 0, "file": 1, "q4_1": 1}   # q4_1: the older name of "file"


class Model(Handle):
    """A GGUF model (architecture llama, qwen2 or qwen3) whose linear layers are lowbit matrices.

    Model.open(path, weights="file" | "reference", bits=None, group_size=64, kernel="auto",
    stack=None, budget=None, calibration=None, act_bits=None): `bits` (1-4 or "ternary")
    requantizes the reference weights (calibrated on `calibration` text if given); `stack` (a
    file from `lowbit stack build --model`) with `budget` holds a BitStack. "file" runs the file's
    own blocks (Q4_0/Q4_1/Q4_K, Q5_0/Q5_1/Q5_K and TQ1_0/TQ2_0 as lowbit codes, Q8_0 and
    Q2_K/Q3_K/Q6_K/IQ4 as their blocks on kernels of their own, float types as float32); with kernel
    "auto" or "dequant" rounds activations to 16 bits (two int8 passes) and agrees with
    "reference" token by token; "lut" or "bitserial" round them to int8 (act_bits=8 asks for
    int8 on dequant too). A lowbit model file (`lowbit quantize`) opens with "file" as it is:
    its matrices run on `kernel` with int8 activations; an elastic one holds the largest of its
    levels whose weights fit `budget` (default: its largest), and `set_budget` moves it. Methods
    may be called from several threads at once; each Context is for one thread at a time."""

    _free = staticmethod(_lib.lowbit_model_close)
    _kind = "model"

    @classmethod
    def open(cls, path, weights="file", bits=None, group_size=64, kernel="auto", stack=None, budget=None,
             calibration=None, act_bits=None) -> "Model":
        from . import ArgumentError, _bits_code, _check, _int, _kernel_code
        params = ModelParams()
        _check(_lib.lowbit_model_default_params(ctypes.byref(params)))
        params.kernel = _kernel_code(kernel)
        params.group_size = _int(group_size, "group_size")
        if calibration is not None:
            if bits is None or stack is not None:
                raise ArgumentError("calibration= applies to requantized weights: give bits= (and no stack=)")
            if not isinstance(calibration, str):
                raise ArgumentError("calibration must be text (str)")
            params.calibration_text = calibration.encode()
        if stack is not None:
            if budget is None:
                raise ArgumentError("a stack needs a budget (bytes or e.g. '64MB')")
            params.weights, params.stack_path, params.budget = 3, os.fsencode(stack), parse_size(budget)
        elif budget is not None and (bits is not None or weights not in ("file", "q4_1")):
            raise ArgumentError("budget= applies to an elastic model file opened with weights='file', or to a stack")
        elif bits is not None:
            params.weights, params.bits = 2, _bits_code(bits)
        elif weights in _WEIGHTS:
            params.weights = _WEIGHTS[weights]
        else:
            raise ArgumentError(f"weights must be 'file' or 'reference' (or give bits= or stack=), not {weights!r}")
        if act_bits is not None:
            params.act_bits = _int(act_bits, "act_bits")
        if stack is None and budget is not None:
            params.budget = parse_size(budget)
            if params.budget == 0:
                raise ArgumentError("budget must be above 0")
        handle = ctypes.c_void_p()
        _check(_lib.lowbit_model_load(os.fsencode(path), ctypes.byref(params), ctypes.byref(handle)))
        return cls(handle.value, path)

    @staticmethod
    def quantize(path, out_path, bits=None, group_size=64, target_size=None, calibration=None) -> None:
        """Writes a lowbit model file to `out_path` from the GGUF model at `path`, which
        Model.open(out_path) loads as it is: every linear layer at `bits` (1-4 or "ternary"), or
        each layer at its own width and group size for at most `target_size` of weights (bytes or
        e.g. "70MB"; needs `calibration` text, at least 1040 tokens). `calibration` text
        calibrates the matrices. Seconds for `bits`, minutes for a target size."""
        from . import ArgumentError, _bits_code, _check, _int
        if (bits is None) == (target_size is None):
            raise ArgumentError("give bits= or target_size=, not both or neither")
        if calibration is not None and not isinstance(calibration, str):
            raise ArgumentError("calibration must be text (str)")
        if target_size is not None and calibration is None:
            raise ArgumentError("target_size= needs calibration= text (sensitivities are measured on it)")
        target = 0 if target_size is None else parse_size(target_size)
        if target_size is not None and target == 0:
            raise ArgumentError("target_size must be above 0")
        _check(_lib.lowbit_model_quantize(os.fsencode(path), os.fsencode(out_path),
                                          0 if bits is None else _bits_code(bits), _int(group_size, "group_size"),
                                          target, None if calibration is None else calibration.encode()))

    @staticmethod
    def quantize_elastic(path, out_path, min_size, max_size, calibration, levels=None) -> None:
        """Writes an elastic model file to `out_path`: the target-size model of `levels` sizes
        from `min_size` to `max_size` (bytes or e.g. "55MB"; default one level per MiB, 2 to 64)
        in one file, each layer stored at every precision a size gives it. Model.open(out_path,
        budget=...) holds the largest level that fits; set_budget moves between levels, reading
        only the layers that change. Needs `calibration` text (at least 1040 tokens). Minutes."""
        from . import ArgumentError, _check, _int
        if not isinstance(calibration, str):
            raise ArgumentError("calibration must be text (str)")
        low, high = parse_size(min_size), parse_size(max_size)
        if not 0 < low <= high:
            raise ArgumentError(f"need 0 < min_size <= max_size, not {low} and {high} bytes")
        count = 0 if levels is None else _int(levels, "levels")
        if levels is not None and count < 1:
            raise ArgumentError("levels must be at least 1")
        _check(_lib.lowbit_model_quantize_elastic(os.fsencode(path), os.fsencode(out_path), low, high, count,
                                                  calibration.encode()))

    # -- tokens and chat templates

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list:
        """Token ids of `text`: BOS first where the model asks for it (add_special), control-token
        text such as <|im_start|> as those tokens (parse_special)."""
        from . import _check
        n = ctypes.c_int64()
        encoded = text.encode()
        _lib.lowbit_tokenize(self._live(), encoded, add_special, parse_special, None, 0, ctypes.byref(n))
        out = (ctypes.c_int32 * max(n.value, 1))()
        _check(_lib.lowbit_tokenize(self._live(), encoded, add_special, parse_special, out, n.value, ctypes.byref(n)))
        return list(out[:n.value])

    def detokenize(self, tokens) -> str:
        """The text of token ids `tokens`, as one text (a SentencePiece model's space before the
        first word, which tokenize puts there, is left out)."""
        ids, n = _token_array(tokens, allow_empty=True)
        return _text_of(lambda out, size, written: _lib.lowbit_detokenize(self._live(), ids, n, out, size, written))

    def chat_template(self, messages, add_generation_prompt: bool = True) -> str:
        """`messages` (dicts with "role" and "content") in the model's chat template (ChatML, with
        its default system message when the first is not one; Llama 3's role headers; Llama 2's
        and Mistral's [INST] turns), and the assistant's turn opened."""
        c_messages, keep = _chat_messages(messages)
        return _text_of(lambda out, size, written: _lib.lowbit_chat_template(
            self._live(), c_messages, len(keep), add_generation_prompt, out, size, written))

    @property
    def vocab_size(self) -> int:
        return self._int_property(_lib.lowbit_model_vocab_size)

    @property
    def context_length(self) -> int:
        """The longest context the model was trained for."""
        return self._int_property(_lib.lowbit_model_context_length)

    def special_token(self, which: str):
        """The id of "bos", "eos" or "end_of_turn" (the file's end-of-turn token, ChatML's <|im_end|>
        or Llama 3's <|eot_id|>), or None."""
        from . import ArgumentError
        codes = {"bos": 0, "eos": 1, "end_of_turn": 2}
        if which not in codes:
            raise ArgumentError(f"special token must be one of {sorted(codes)}, not {which!r}")
        value = self._int_property(lambda h, out: _lib.lowbit_model_special_token(h, codes[which], out))
        return None if value < 0 else value

    def context(self, n_ctx: int = 0) -> "Context":
        """A context (KV cache) of up to n_ctx tokens (0: the model's context length)."""
        from . import _check, _int
        handle = ctypes.c_void_p()
        _check(_lib.lowbit_context_new(self._live(), _int(n_ctx, "n_ctx"), ctypes.byref(handle)))
        return Context(handle.value, model=self)

    def _int_property(self, call):
        from . import _check
        out = ctypes.c_int32()
        _check(call(self._live(), ctypes.byref(out)))
        return out.value

    # -- whole jobs

    def generate(self, prompt: str, max_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                 chat: bool = False, seed: int = 1) -> str:
        """The prompt followed by up to max_tokens generated tokens (greedy at temperature 0)."""
        from . import LowbitError, _check, _int
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            written = ctypes.c_int64()
            status = _lib.lowbit_model_generate(self._live(), prompt.encode(), 1 if chat else 0,
                                                _int(max_tokens, "max_tokens"), float(temperature), float(top_p),
                                                _int(seed, "seed"), buf, size, ctypes.byref(written))
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
        status = _lib.lowbit_model_trace(self._live(), ids_ptr, ids.size, probe, 0, ctypes.byref(layers),
                                         ctypes.byref(hidden))
        if status != 4:
            _check(status)
        out = np.empty((layers.value + 1, ids.size, hidden.value), dtype=np.float32)
        out_ptr = out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        _check(_lib.lowbit_model_trace(self._live(), ids_ptr, ids.size, out_ptr, out.size, None, None))
        return out

    def perplexity(self, text: str, ctx: int = 512, chunks: "int | None" = None) -> float:
        """Perplexity by llama-perplexity's protocol (chunks of ctx tokens, second halves scored)."""
        from . import _check, _int
        out = ctypes.c_double()
        _check(_lib.lowbit_model_perplexity(self._live(), text.encode(), _int(ctx, "ctx"),
                                            0 if chunks is None else _int(chunks, "chunks"), ctypes.byref(out)))
        return out.value

    def set_budget(self, budget: "int | str") -> None:
        """Changes the budget (bytes or e.g. '64MB') of an elastic model file or a BitStack model:
        only the weights that change are read or released; on an error nothing changes."""
        from . import _check
        _check(_lib.lowbit_model_set_budget(self._live(), parse_size(budget)))

    @property
    def weight_bytes(self) -> int:
        from . import _check
        out = ctypes.c_uint64()
        _check(_lib.lowbit_model_weight_bytes(self._live(), ctypes.byref(out)))
        return out.value


class Context(Handle):
    """A model with a KV cache of its own: the tokens of one conversation or document. Calls
    change it only when they succeed. One thread at a time; keep the model open while it lives.

        ctx = model.context(2048)
        reply = ctx.chat([{"role": "user", "content": "Hi!"}], on_text=lambda piece: print(piece, end=""))

    Sampling options (every generating call): temperature (0: greedy), top_k (0: off), top_p,
    repetition_penalty (1: off), repetition_window, seed. The random state goes on from call to
    call while the options stay the same."""

    _free = staticmethod(_lib.lowbit_context_free)
    _kind = "context"

    def __init__(self, handle, model):
        super().__init__(handle)
        self.model = model   # keeps the model alive as long as the context

    def eval(self, tokens, all_logits: bool = False):
        """Runs `tokens` after those held; returns the logits after the last one (float32,
        vocabulary), or after each ((len(tokens), vocabulary)) with all_logits."""
        import numpy as np
        from . import _check
        ids, n = _token_array(tokens)
        vocabulary = self.model.vocab_size
        out = np.empty((n, vocabulary) if all_logits else (vocabulary,), dtype=np.float32)
        _check(_lib.lowbit_context_eval(self._live(), ids, n, all_logits,
                                        out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size))
        return out

    @property
    def tokens(self) -> list:
        """The token ids the context holds."""
        from . import _check
        n = ctypes.c_int64()
        _lib.lowbit_context_tokens(self._live(), None, 0, ctypes.byref(n))
        out = (ctypes.c_int32 * max(n.value, 1))()
        _check(_lib.lowbit_context_tokens(self._live(), out, n.value, ctypes.byref(n)))
        return list(out[:n.value])

    def truncate(self, n: int) -> None:
        """Keeps the first n tokens held."""
        from . import _check, _int
        _check(_lib.lowbit_context_truncate(self._live(), _int(n, "n")))

    def reset(self) -> None:
        self.truncate(0)

    def sample(self, **sampling) -> int:
        """A token drawn from the logits after the last token held."""
        from . import _check
        token = ctypes.c_int32()
        _check(_lib.lowbit_context_sample(self._live(), ctypes.byref(_sampler(sampling)), ctypes.byref(token)))
        return token.value

    def generate(self, prompt, max_tokens: int = 64, on_text=None, **sampling) -> str:
        """Holds `prompt` (text, or token ids; the longest prefix already held is not run again),
        then generates up to max_tokens tokens; returns their text. on_text(piece) gets the text
        of each token as it comes and may return False to stop. Stops at end of sequence or of
        turn, too, and when the context is full."""
        if isinstance(prompt, str):
            prompt = self.model.tokenize(prompt)
        ids, n = _token_array(prompt)
        return self._stream(lambda params, callback, generated: _lib.lowbit_context_generate(
            self._live(), ids, n, max_tokens, params, callback, None, generated), max_tokens, on_text, sampling)

    def chat(self, messages, max_tokens: int = 256, on_text=None, **sampling) -> str:
        """One chat turn: `messages` (dicts with "role" and "content") in the chat template, then
        `generate`. Append the reply as {"role": "assistant", ...} and the next user message to
        reuse the context for the next turn."""
        c_messages, keep = _chat_messages(messages)
        return self._stream(lambda params, callback, generated: _lib.lowbit_context_chat(
            self._live(), c_messages, len(keep), max_tokens, params, callback, None, generated),
            max_tokens, on_text, sampling)

    def _stream(self, call, max_tokens, on_text, sampling):
        from . import _check, _int
        _int(max_tokens, "max_tokens")
        params = _sampler(sampling)
        pieces, failure = [], []

        def forward(user, token, piece, length):
            text = ctypes.string_at(piece, length).decode("utf-8", "replace")
            pieces.append(text)
            try:
                return 0 if on_text is not None and on_text(text) is False else 1
            except BaseException as e:   # carried past the C frames, raised once the call returns
                failure.append(e)
                return 0

        callback = TOKEN_FN(forward)
        generated = ctypes.c_int64()
        status = call(ctypes.byref(params), callback, ctypes.byref(generated))
        if failure:
            raise failure[0]
        _check(status)
        return "".join(pieces)


def _sampler(options):
    from . import ArgumentError, _check, _int
    params = SamplerParams()
    _check(_lib.lowbit_sampler_default_params(ctypes.byref(params)))
    known = {"temperature", "top_k", "top_p", "repetition_penalty", "repetition_window", "seed"}
    for name, value in options.items():
        if name not in known:
            raise ArgumentError(f"unknown sampling option {name!r}: use {', '.join(sorted(known))}")
        if name in ("top_k", "repetition_window", "seed"):
            value = _int(value, name)
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ArgumentError(f"{name} must be a number, not {value!r}")
        setattr(params, name, value)
    return params


def _token_array(tokens, allow_empty=False):
    from . import ArgumentError
    try:
        ids = [int(t) for t in tokens]
    except (TypeError, ValueError):
        raise ArgumentError("tokens must be a sequence of token ids (ints)") from None
    if not ids and not allow_empty:
        raise ArgumentError("tokens must not be empty")
    if any(not -2**31 <= t < 2**31 for t in ids):
        raise ArgumentError("token ids must fit in 32 bits")
    return (ctypes.c_int32 * max(len(ids), 1))(*ids), len(ids)


def _chat_messages(messages):
    """The C array of messages, and the encoded strings it points into (kept alive by the caller)."""
    from . import ArgumentError
    keep = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ArgumentError("each message must be a dict with str 'role' and 'content'")
        keep.append((m["role"].encode(), m["content"].encode()))
    array = (ChatMessage * max(len(keep), 1))(*[ChatMessage(r, c) for r, c in keep])
    return array, keep


def _text_of(call):
    """Text from a call with the out / out_len / written convention: size first, then the text."""
    from . import _check
    written = ctypes.c_int64()
    call(None, 0, ctypes.byref(written))
    size = max(written.value, 1)
    buf = ctypes.create_string_buffer(size)
    _check(call(buf, size, ctypes.byref(written)))
    return buf.raw[:written.value].decode("utf-8", "replace")
