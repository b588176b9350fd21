"""Model files in other ggml types than the test model's Q4_1: SmolLM2 rewritten by llama.cpp's
own `gguf` package with its layers in Q4_0, Q5_0, Q5_1, Q8_0 and BF16 (a mixed file, as
llama.cpp's "M" quantizations are) loads and runs, as its own blocks and requantized; SmolLM2 as
Q4_K_M, Q6_K and Q8_0 files (K-quant blocks written here, as gguf has no quantizer for them) runs
and scores its perplexity; and a synthetic model with a matrix of every type lowbit reads runs as
the file's own blocks in agreement with its Float32 reference."""
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


def quantize_q6_K(w):
    """ggml's Q6_K blocks of w (rows x cols, cols a multiple of 256), rounded to nearest (not
    llama.cpp's search): per 16 elements an int8 scale of the block's d, values q + 32 of 6 bits,
    low nibbles in 128 bytes and high pairs in 64 (`GroupedBlocks` reads them back)."""
    rows = w.shape[0]
    x = w.reshape(-1, 16, 16).astype(np.float32)
    sub = np.abs(x).max(axis=2) / 31
    d = (sub.max(axis=1) / 127).astype(np.float16)
    d32 = d.astype(np.float32)[:, None]
    sc = np.round(np.divide(sub, d32, out=np.zeros_like(sub), where=d32 > 0)).clip(-128, 127)
    step = (d32 * sc)[..., None]
    q = np.round(np.divide(x, step, out=np.zeros_like(x), where=step != 0)).clip(-32, 31).astype(np.uint8) + 32
    codes = q.reshape(-1, 256)
    ql = np.zeros((codes.shape[0], 128), np.uint8)
    qh = np.zeros((codes.shape[0], 64), np.uint8)
    for n in (0, 128):
        a, b, c, e = (codes[:, n + k:n + k + 32] for k in (0, 32, 64, 96))
        ql[:, n // 2:n // 2 + 32] = (a & 15) | (c & 15) << 4
        ql[:, n // 2 + 32:n // 2 + 64] = (b & 15) | (e & 15) << 4
        qh[:, n // 4:n // 4 + 32] = a >> 4 | (b >> 4) << 2 | (c >> 4) << 4 | (e >> 4) << 6
    blocks = np.concatenate([ql, qh, sc.astype(np.int8).view(np.uint8), d.view(np.uint8).reshape(-1, 2)], axis=1)
    return blocks.reshape(rows, -1)


def quantize_q4_K(w):
    """ggml's Q4_K blocks of w, rounded to nearest: per 32 elements a 6-bit scale and minimum of
    the block's d and dmin, values of 4 bits (two sub-blocks per 32 bytes, low then high nibble)."""
    rows = w.shape[0]
    x = w.reshape(-1, 8, 32).astype(np.float32)
    low = np.minimum(x.min(axis=2), 0)
    scale, minimum = (x.max(axis=2) - low) / 15, -low
    d = (scale.max(axis=1) / 63).astype(np.float16)
    dmin = (minimum.max(axis=1) / 63).astype(np.float16)
    d32, dmin32 = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    sc = np.round(np.divide(scale, d32, out=np.zeros_like(scale), where=d32 > 0)).clip(0, 63).astype(np.uint8)
    mn = np.round(np.divide(minimum, dmin32, out=np.zeros_like(minimum), where=dmin32 > 0)).clip(0, 63)
    mn = mn.astype(np.uint8)
    step, offset = (d32 * sc)[..., None], (dmin32 * mn)[..., None]
    q = np.round(np.divide(x + offset, step, out=np.zeros_like(x), where=step != 0)).clip(0, 15).astype(np.uint8)
    codes = q.reshape(-1, 256)
    qs = np.zeros((codes.shape[0], 128), np.uint8)
    for j in range(0, 256, 64):
        qs[:, j // 2:j // 2 + 32] = codes[:, j:j + 32] | codes[:, j + 32:j + 64] << 4
    packed = np.zeros((codes.shape[0], 12), np.uint8)
    packed[:, 0:4], packed[:, 4:8] = sc[:, 0:4], mn[:, 0:4]
    packed[:, 8:12] = (sc[:, 4:8] & 15) | (mn[:, 4:8] & 15) << 4
    packed[:, 0:4] |= (sc[:, 4:8] >> 4) << 6
    packed[:, 4:8] |= (mn[:, 4:8] >> 4) << 6
    blocks = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2), packed, qs], axis=1)
    return blocks.reshape(rows, -1)


def quantize(values, qtype):
    """`values` as `qtype` blocks: gguf's own quantizer, or the two above where it has none."""
    blocks = {T.Q6_K: quantize_q6_K, T.Q4_K: quantize_q4_K}.get(qtype, lambda v: gguf.quants.quantize(v, qtype))(values)
    # Whatever wrote them, gguf's decoder must read back the values to within the type's rounding.
    back = gguf.quants.dequantize(blocks, qtype).astype(np.float32)
    assert np.linalg.norm(back - values) <= 0.2 * np.linalg.norm(values), qtype
    return blocks


def rewrite_smollm2(path, layer_type):
    """The test model with each layer matrix requantized to layer_type(name, rows, cols, layer)
    (None keeps its Q4_1 blocks), written by gguf; returns the count of each type written."""
    reader = gguf.GGUFReader(MODEL)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    types = {}
    for t in reader.tensors:
        qtype = None
        if t.name.startswith("blk.") and t.tensor_type == T.Q4_1:
            cols, rows = (int(n) for n in t.shape)
            qtype = layer_type(t.name, rows, cols, int(t.name.split(".")[1]))
        if qtype is not None:
            values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            writer.add_tensor(t.name, quantize(values, qtype), raw_dtype=qtype)
            types[qtype.name] = types.get(qtype.name, 0) + 1
        else:
            writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return types


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    """The test model with each layer's matrices requantized to one of LAYER_TYPES in turn."""
    path = tmp_path_factory.mktemp("gguf") / "smollm2-mixed.gguf"
    types = rewrite_smollm2(path, lambda name, rows, cols, layer: LAYER_TYPES[layer % len(LAYER_TYPES)])
    assert set(types) == {q.name for q in LAYER_TYPES}
    return path


# As llama.cpp's mixes make them for SmolLM2: K-quants need rows of whole 256-element blocks,
# which only ffn_down's 1536 inputs are (576 is not), so the other matrices take its fallback
# type; Q4_K_M gives half of the ffn_down matrices Q6_K.
K_QUANT_MIXES = {
    "Q4_K_M": lambda name, rows, cols, layer: (T.Q6_K if layer % 2 else T.Q4_K) if cols % 256 == 0 else T.Q5_0,
    "Q6_K": lambda name, rows, cols, layer: T.Q6_K if cols % 256 == 0 else T.Q8_0,
    "Q8_0": lambda name, rows, cols, layer: T.Q8_0,
}


@pytest.mark.parametrize("mix", list(K_QUANT_MIXES))
def test_a_k_quant_smollm2_runs_and_scores_its_perplexity(tmp_path, mix):
    path = tmp_path / f"smollm2-{mix}.gguf"
    types = rewrite_smollm2(path, K_QUANT_MIXES[mix])
    with lowbit.Model.open(MODEL, weights="reference") as original:
        reference = original.perplexity(GPL, ctx=256, chunks=1)
    with lowbit.Model.open(str(path), weights="file") as own:
        assert own.generate("The capital of France is", max_tokens=2).startswith("The capital of France is Paris")
        perplexity = own.perplexity(GPL, ctx=256, chunks=1)
        own_bytes = own.weight_bytes
    with lowbit.Model.open(str(path), weights="reference") as dequantized:
        exact = dequantized.perplexity(GPL, ctx=256, chunks=1)
    # The file's own blocks score as its values do in Float32 (activations rounded differently),
    # and the values, made from the Q4_1 weights, as those do to within their own rounding (one
    # chunk moves by a percent or two for any small change of the weights; a second rounding to
    # 4 bits costs about 5%).
    assert abs(perplexity / exact - 1) < 0.01, (mix, types, perplexity, exact)
    assert abs(perplexity / reference - 1) < (0.08 if mix == "Q4_K_M" else 0.03), (mix, perplexity, reference)
    # Q6_K and Q8_0 blocks are held as the file's bytes (the embedding's Q8_0 serves the output).
    tensor_bytes = sum(int(t.n_bytes) for t in gguf.GGUFReader(str(path)).tensors)
    if mix != "Q4_K_M":
        assert own_bytes <= tensor_bytes, (mix, own_bytes, tensor_bytes)


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
    for five_bit in ("q5_0", "q5_1"):
        assert holding[five_bit].startswith("lowbit 5-bit codes"), (five_bit, out)
    assert holding["q8_0"].startswith("its own blocks, a scale per 32"), out
    assert holding["bf16"].startswith("exact Float32 values"), out
    assert "  --bits B              dequantized, then requantized to B bits" in out


# Byte offsets of each block type's Float16 scale fields (its values are linear in them).
SCALE_FIELDS = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q2_K: [80, 82],
                T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208], T.IQ4_NL: [0], T.IQ4_XS: [0],
                T.TQ1_0: [52], T.TQ2_0: [64]}
EVERY_TYPE = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_NL,
              T.IQ4_XS, T.TQ1_0, T.TQ2_0, T.F16, T.BF16, T.F32]


def random_tensor(rng, qtype, rows, cols):
    """rows x cols of random blocks of `qtype` (every byte pattern is a valid block once its
    scales are finite), scaled to an RMS of 1/sqrt(cols) as trained weights are."""
    if qtype in (T.F16, T.BF16, T.F32):
        values = (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
        return values if qtype == T.F32 else gguf.quants.quantize(values, qtype)
    block_elements, block_bytes = gguf.constants.GGML_QUANT_SIZES[qtype]
    data = rng.integers(0, 256, size=(rows * cols // block_elements, block_bytes), dtype=np.uint8)
    fields = SCALE_FIELDS[qtype]
    scales = rng.uniform(0.5, 1, size=(data.shape[0], len(fields))) * rng.choice([-1, 1], size=(data.shape[0], 1))
    for attempt in range(2):     # the second pass rescales to the target RMS
        for i, offset in enumerate(fields):
            data[:, offset:offset + 2] = scales[:, i].astype(np.float16).view(np.uint8).reshape(-1, 2)
        rms = np.sqrt(np.mean(gguf.quants.dequantize(data.reshape(rows, -1), qtype).astype(np.float64) ** 2))
        scales *= 1 / np.sqrt(cols) / rms
    return data.reshape(rows, -1)


def write_typed_model(path, layer_types, *, width=256, feed_forward=512, layers=3, embedding_type=T.Q4_K,
                      output_type=T.Q6_K, seed=7):
    """A llama of random weights with the test model's tokenizer, its layers' matrices going
    through `layer_types` in turn (width and feed_forward multiples of 256, so K-quant rows are
    whole super-blocks); output_type None ties the output to the embedding. Also the model
    `lowbit bench --model` times per type (docs/BENCHMARKS.md)."""
    rng = np.random.default_rng(seed)
    reader = gguf.GGUFReader(MODEL)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    for field in reader.fields.values():
        if field.name.startswith("tokenizer."):
            kind = field.types[0]
            sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    vocabulary = len(reader.fields["tokenizer.ggml.tokens"].data)
    for add, value in ((writer.add_block_count, layers), (writer.add_context_length, 2048),
                       (writer.add_embedding_length, width), (writer.add_feed_forward_length, feed_forward),
                       (writer.add_head_count, width // 64), (writer.add_head_count_kv, width // 128)):
        add(value)
    writer.add_layer_norm_rms_eps(1e-5)

    def add(name, qtype, rows, cols):
        data = random_tensor(rng, qtype, rows, cols)
        writer.add_tensor(name, data, raw_dtype=None if qtype == T.F32 else qtype)

    add("token_embd.weight", embedding_type, vocabulary, width)
    shapes = {"attn_q": (width, width), "attn_k": (width // 2, width), "attn_v": (width // 2, width),
              "attn_output": (width, width), "ffn_gate": (feed_forward, width), "ffn_up": (feed_forward, width),
              "ffn_down": (width, feed_forward)}
    kinds = iter(list(layer_types) * (7 * layers))
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(width, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(width, dtype=np.float32))
        for name, (rows, cols) in shapes.items():
            add(f"blk.{i}.{name}.weight", next(kinds), rows, cols)
    writer.add_tensor("output_norm.weight", np.ones(width, dtype=np.float32))
    if output_type is not None:
        add("output.weight", output_type, vocabulary, width)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def every_type_model(tmp_path_factory):
    """3 layers of width 256 whose 21 matrices go through EVERY_TYPE, with a Q4_K embedding and a
    Q6_K output, as Q4_K_M files have."""
    return write_typed_model(tmp_path_factory.mktemp("gguf") / "every-type.gguf", EVERY_TYPE)


def test_every_type_runs_as_the_files_own_blocks(every_type_model):
    tokens = [1, 504, 3458, 314, 1915, 28, 216, 2000, 17, 5]
    with lowbit.Model.open(str(every_type_model), weights="reference") as reference:
        expected_states = reference.trace(tokens)
        expected_logits = reference.context().eval(tokens, all_logits=True)
        reference_bytes = reference.weight_bytes
    with lowbit.Model.open(str(every_type_model), weights="file") as own:
        states = own.trace(tokens)
        logits = own.context().eval(tokens, all_logits=True)
        own_bytes = own.weight_bytes
    # The files' values on 16-bit activations, K-quant scales rounded to Float16 in the layouts.
    for layer in range(expected_states.shape[0]):
        error = np.linalg.norm(states[layer] - expected_states[layer]) / np.linalg.norm(expected_states[layer])
        assert error <= 3e-4, (layer, error)
    assert np.linalg.norm(logits - expected_logits) / np.linalg.norm(expected_logits) <= 3e-4
    assert (logits.argmax(axis=-1) == expected_logits.argmax(axis=-1)).all()
    # The Q6_K output (49152 x 256) is held as the file's blocks, 210 bytes per 256 weights
    # instead of Float32's 1024; the layers held as codes or blocks save more besides.
    output_saving = 49152 * 256 * 4 - 49152 * 256 * 210 / 256
    assert own_bytes < reference_bytes - output_saving, (own_bytes, reference_bytes)
    out = subprocess.run(lowbit_tool() + ["gguf", str(every_type_model)], check=True,
                         capture_output=True, text=True).stdout
    for name in ("q4_K", "q5_K", "tq1_0", "tq2_0"):
        assert f"  {name}" in out and "-bit codes" in out.split(f"  {name}")[1].splitlines()[0], out
    for name in ("q2_K", "q3_K", "q6_K", "iq4_nl", "iq4_xs"):
        assert "its own blocks" in out.split(f"  {name}")[1].splitlines()[0], out
