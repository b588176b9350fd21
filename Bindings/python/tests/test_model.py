"""The runner through Python, on SmolLM2-135M (fetched by scripts/fetch-model.sh)."""
import ctypes
import os
from pathlib import Path

import numpy as np
import pytest

import lowbit

MODEL = os.environ.get("LOWBIT_MODEL") or str(
    Path(__file__).resolve().parents[3] / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
pytestmark = pytest.mark.skipif(not Path(MODEL).exists(), reason="model not fetched (scripts/fetch-model.sh)")
GPL = Path("/usr/share/common-licenses/GPL-3").read_text()


def test_generate_and_perplexity_match_between_reference_and_q4_1():
    with lowbit.Model.open(MODEL, weights="q4_1") as q41:
        out = q41.generate("The capital of France is", max_tokens=3)
        assert out.startswith("The capital of France is Paris")
        assert q41.weight_bytes > 50_000_000
        with lowbit.Model.open(MODEL, weights="reference") as ref:
            a, b = ref.perplexity(GPL, ctx=512, chunks=1), q41.perplexity(GPL, ctx=512, chunks=1)
        assert 10 < a < 30 and abs(b / a - 1) < 0.01
        with pytest.raises(lowbit.LowbitError):
            q41.set_budget("64MB")                      # not a stack
        with pytest.raises(lowbit.LowbitError):
            q41.perplexity("too short", ctx=512)


def test_requantized_and_errors():
    with lowbit.Model.open(MODEL, bits=4, group_size=64, kernel="lut") as m:
        assert m.generate("Hello", max_tokens=4).startswith("Hello")
    with pytest.raises(lowbit.LowbitError):
        lowbit.Model.open(MODEL, bits=5)
    with pytest.raises(lowbit.LowbitError):
        lowbit.Model.open("/nonexistent.gguf")
    with pytest.raises(lowbit.LowbitError):
        lowbit.Model.open(MODEL, weights="fp8")
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.Model.open(__file__)
    assert e.value.status_name == "BAD_FORMAT"


def test_calibrated_requantization():
    apache = open("/usr/share/common-licenses/Apache-2.0").read()
    gpl = open("/usr/share/common-licenses/GPL-3").read()
    with lowbit.Model.open(MODEL, bits=3, group_size=64, calibration=apache) as calibrated, \
            lowbit.Model.open(MODEL, bits=3, group_size=64) as plain:
        assert calibrated.perplexity(gpl, ctx=256, chunks=1) < 0.8 * plain.perplexity(gpl, ctx=256, chunks=1)
    with pytest.raises(lowbit.ArgumentError):
        lowbit.Model.open(MODEL, calibration=apache)            # no bits=
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.Model.open(MODEL, bits=3, calibration="too short")
    assert "16 or more" in str(e.value)


def test_quantized_model_file_loads_as_the_requantization_it_holds(tmp_path):
    out = tmp_path / "m3.gguf"
    lowbit.Model.quantize(MODEL, out, bits=3, group_size=32)
    gpl = open("/usr/share/common-licenses/GPL-3").read()
    with lowbit.Model.open(out, kernel="dequant") as loaded, \
            lowbit.Model.open(MODEL, bits=3, group_size=32, kernel="dequant") as made:
        assert loaded.weight_bytes == made.weight_bytes
        assert loaded.perplexity(gpl, ctx=64, chunks=2) == made.perplexity(gpl, ctx=64, chunks=2)
    for bad in [dict(), dict(bits=4, target_size="60MB"), dict(target_size="60MB"),
                dict(bits=4, group_size=48), dict(bits=4, calibration=b"bytes")]:
        with pytest.raises((lowbit.ArgumentError, lowbit.LowbitError)):
            lowbit.Model.quantize(MODEL, tmp_path / "bad.gguf", **bad)
    with pytest.raises(lowbit.LowbitError, match="already a lowbit model file"):
        lowbit.Model.quantize(out, tmp_path / "bad.gguf", bits=4)
    assert not (tmp_path / "bad.gguf").exists()


def test_reference_runner_matches_an_independent_numpy_forward_pass_layer_by_layer():
    from numpy_llama import hidden_states
    tokens = [1, 504, 3458, 314, 1915, 28, 216, 2000, 17, 5]
    expected = hidden_states(MODEL, tokens)
    with lowbit.Model.open(MODEL, weights="reference") as ref:
        got = ref.trace(tokens)
    assert got.shape == expected.shape == (31, len(tokens), 576)
    for layer in range(expected.shape[0]):
        rel = np.linalg.norm(got[layer] - expected[layer]) / np.linalg.norm(expected[layer])
        assert rel <= 1e-4, (layer, rel)
    with pytest.raises(lowbit.ArgumentError):
        ref.trace([])
    with lowbit.Model.open(MODEL, weights="reference") as ref, pytest.raises(lowbit.LowbitError):
        ref.trace([1, 10 ** 6])                           # outside the vocabulary


def test_a_stack_of_other_tensors_is_refused(tmp_path):
    """A stack must hold the model's own linear layers at the model's shapes: anything else is
    an error when the model opens, never a product written out of bounds."""
    path = str(tmp_path / "foreign.lbs")
    lowbit.stack.build({"blk.0.attn_q.weight": np.ones((16, 64), np.float32)}, path, blocks=2, rank=2)
    with pytest.raises(lowbit.LowbitError) as error:
        lowbit.Model.open(MODEL, stack=path, budget="1GB")
    assert error.value.status_name == "BAD_FORMAT" and "blk.0.attn_k.weight" in error.value.message


def test_generate_asks_for_the_size_it_needs():
    with lowbit.Model.open(MODEL, weights="q4_1") as m:
        lib = lowbit._lib
        written = ctypes.c_int64(-1)
        status = lib.lowbit_model_generate(m._live(), b"Hello", 0, 3, 0.0, 1.0, 1, None, 0, ctypes.byref(written))
        assert status == 4 and written.value >= 1
        buf = ctypes.create_string_buffer(written.value)
        status = lib.lowbit_model_generate(m._live(), b"Hello", 0, 3, 0.0, 1.0, 1, buf, written.value,
                                           ctypes.byref(written))
        assert status == 0
        assert len(buf.value) == written.value


@pytest.fixture(scope="module")
def model():
    with lowbit.Model.open(MODEL) as m:
        yield m


def test_tokenizer_round_trips_and_special_tokens(model):
    text = "Low-bit weights, naïve café — 日本語 🙂 12345"
    ids = model.tokenize(text, add_special=False)
    assert model.detokenize(ids) == text
    assert model.detokenize([]) == ""
    end = model.special_token("end_of_turn")
    assert model.tokenize("<|im_end|>", add_special=False, parse_special=True) == [end]
    assert model.tokenize("<|im_end|>", add_special=False) != [end]
    assert model.special_token("eos") is not None and 0 < model.vocab_size and model.context_length >= 2048
    with pytest.raises(lowbit.ArgumentError):
        model.special_token("pad")
    with pytest.raises(lowbit.LowbitError):
        model.detokenize([model.vocab_size])


def test_chat_template(model):
    text = model.chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(lowbit.LowbitError):
        model.chat_template([{"role": "two words", "content": "x"}])
    with pytest.raises(lowbit.ArgumentError):
        model.chat_template([("user", "Hi")])


def test_reused_context_gives_the_logits_of_a_fresh_one(model):
    """A second chat turn on the same context, against the whole conversation run at once on a
    fresh context: the same logits, bit for bit (each row is computed on its own)."""
    ctx = model.context(1024)
    conversation = [{"role": "user", "content": "What is the capital of France?"}]
    reply = ctx.chat(conversation, max_tokens=16)
    assert "Paris" in reply
    held_after_first = ctx.tokens
    conversation += [{"role": "assistant", "content": reply}, {"role": "user", "content": "And of Italy?"}]
    prompt = model.tokenize(model.chat_template(conversation), parse_special=True)
    shared = next(i for i, (a, b) in enumerate(zip(held_after_first + [-1], prompt)) if a != b)
    assert shared >= len(model.tokenize(model.chat_template(conversation[:1]), parse_special=True))
    ctx.truncate(shared)
    reused = ctx.eval(prompt[shared:])
    fresh = model.context(1024).eval(prompt)
    assert np.array_equal(reused, fresh)
    assert ctx.tokens == prompt
    every = model.context(1024).eval(prompt, all_logits=True)
    assert every.shape == (len(prompt), model.vocab_size) and np.array_equal(every[-1], fresh)


def test_streaming_stops_when_asked_and_sampling_is_seeded(model):
    pieces = []
    ctx = model.context(256)
    text = ctx.generate("The history of Paris", max_tokens=40, on_text=lambda p: pieces.append(p) or len(pieces) < 5,
                        temperature=0.8, seed=11)
    assert len(pieces) == 5 and text == "".join(pieces)
    again = model.context(256).generate("The history of Paris", max_tokens=5, temperature=0.8, seed=11)
    assert again == text
    # A failing callback stops the generation and its exception comes out of the call.
    with pytest.raises(ZeroDivisionError):
        model.context(256).generate("Hello", max_tokens=8, on_text=lambda p: 1 / 0)
    with pytest.raises(lowbit.ArgumentError):
        ctx.generate("Hello", temprature=1.0)
    with pytest.raises(lowbit.LowbitError):
        ctx.generate("Hello", top_p=0.0)


def test_context_errors_change_nothing(model):
    ctx = model.context(8)
    ctx.eval([1, 2, 3])
    for bad in ([model.vocab_size], [], list(range(1, 7))):
        with pytest.raises(lowbit.LowbitError):
            ctx.eval(bad)
    with pytest.raises(lowbit.LowbitError):
        ctx.truncate(4)
    assert ctx.tokens == [1, 2, 3]
    assert isinstance(ctx.sample(temperature=0.5, top_k=3), int)
    ctx.reset()
    assert ctx.tokens == []
    with pytest.raises(lowbit.LowbitError):
        ctx.sample()
    with pytest.raises(lowbit.LowbitError):
        model.context(-1)
