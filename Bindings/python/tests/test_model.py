"""The runner through Python, on SmolLM2-135M (fetched by scripts/fetch-model.sh)."""
import ctypes
import os
from pathlib import Path

import numpy as np
import pytest

import lowbit

MODEL = os.environ.get("LOWBIT_MODEL") or str(Path(__file__).resolve().parents[3] / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
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
