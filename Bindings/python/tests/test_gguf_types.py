"""A model file in other ggml types than the test model's Q4_1: SmolLM2 rewritten by llama.cpp's
own `gguf` package with its layers in Q4_0, Q5_0, Q5_1, Q8_0 and BF16 (a mixed file, as
llama.cpp's "M" quantizations are) loads and runs, as its own blocks and requantized."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lowbit

gguf = pytest.importorskip("gguf")   # scripts/test.sh installs it beside the wheel
MODEL = os.environ.get("LOWBIT_MODEL") or str(
    Path(__file__).resolve().parents[3] / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
pytestmark = pytest.mark.skipif(not Path(MODEL).exists(), reason="model not fetched (scripts/fetch-model.sh)")
GPL = Path("/usr/share/common-licenses/GPL-3").read_text()
T = gguf.GGMLQuantizationType
LAYER_TYPES = [T.Q4_0, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16]


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    """The test model with each layer's matrices requantized to one of LAYER_TYPES in turn."""
    reader = gguf.GGUFReader(MODEL)
    path = tmp_path_factory.mktemp("gguf") / "smollm2-mixed.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    types = {}
    for t in reader.tensors:
        if t.name.startswith("blk.") and t.tensor_type == T.Q4_1:
            qtype = LAYER_TYPES[int(t.name.split(".")[1]) % len(LAYER_TYPES)]
            values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            writer.add_tensor(t.name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)
            types[qtype.name] = types.get(qtype.name, 0) + 1
        else:
            writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert set(types) == {q.name for q in LAYER_TYPES}
    return path


def test_a_mixed_file_runs_as_its_own_blocks_and_requantized(mixed_model):
    with lowbit.Model.open(MODEL) as original:
        reference = original.perplexity(GPL, ctx=256, chunks=1)
    with lowbit.Model.open(str(mixed_model), weights="file") as own:
        assert own.generate("The capital of France is", max_tokens=2).startswith("The capital of France is Paris")
        perplexity = own.perplexity(GPL, ctx=256, chunks=1)
        # Every type holds at least the 4 bits of the Q4_1 weights it was made from, with
        # scales of its own: a few percent either way.
        assert abs(perplexity / reference - 1) < 0.05, (perplexity, reference)
        own_bytes = own.weight_bytes
    with lowbit.Model.open(str(mixed_model), bits=4, group_size=32) as requantized:
        assert requantized.weight_bytes < own_bytes   # the BF16 and Q8_0 layers shrink to 4 bits
        assert requantized.generate("The capital of France is", max_tokens=2).startswith(
            "The capital of France is Paris")


def lowbit_tool():
    """The wheel's own tool (`python -m lowbit`), or a source build's dist/bin/lowbit."""
    if (Path(lowbit.__file__).resolve().parent / "bin" / "lowbit").exists():
        return [sys.executable, "-m", "lowbit"]
    built = Path(__file__).resolve().parents[3] / "dist/bin/lowbit"
    if not built.exists():
        pytest.skip("no lowbit tool: build the wheel (scripts/build-wheel.sh) or scripts/build.sh")
    return [str(built)]


def test_the_gguf_command_says_how_each_type_runs(mixed_model):
    out = subprocess.run(lowbit_tool() + ["gguf", str(mixed_model)], check=True,
                         capture_output=True, text=True).stdout
    section = out.split("matrices with --weights file (the default), by type:\n")[1]
    section = section.split("matrices of every type, held otherwise:\n")[0]
    holding = dict(line.split(maxsplit=1) for line in section.splitlines())
    assert holding["q4_0"].startswith("lowbit 4-bit codes")
    assert holding["q8_0"].startswith("its own Q8_0 blocks")
    for float_held in ("q5_0", "q5_1", "bf16"):
        assert holding[float_held].startswith("exact Float32 values"), (float_held, out)
    assert "  --bits B              dequantized, then requantized to B bits" in out
