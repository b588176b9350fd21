"""The Llama-family architectures the runner knows (llama with Llama 3's RoPE factors and linear
scaling, qwen2, qwen3), each as a tiny synthetic model written with llama.cpp's `gguf` package:
random weights, the test model's tokenizer. Each is held to the independent numpy forward pass
(numpy_llama.py) layer by layer: in Float32, and as Q4_0 / Q8_0 blocks on lowbit's kernels."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import lowbit
from numpy_llama import hidden_states
from test_gguf_types import lowbit_tool

gguf = pytest.importorskip("gguf")   # scripts/test.sh installs it beside the wheel
MODEL = os.environ.get("LOWBIT_MODEL") or str(
    Path(__file__).resolve().parents[3] / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
pytestmark = pytest.mark.skipif(not Path(MODEL).exists(), reason="model not fetched (scripts/fetch-model.sh)")
TOKENS = [1, 504, 3458, 314, 1915, 28, 216, 2000, 17, 5, 4923, 30]


def write_model(path, arch, *, head_dim=None, biases=False, head_norms=False, rope_factors=False,
                linear_scale=None, tied=True, blocks=False, tokenizer=None, sentencepiece=None, seed=0):
    """A 2-layer model of width 64 (4 query heads, 2 key/value heads) with the test model's
    tokenizer: what sets `arch` apart and nothing else. `blocks`: matrices in Q4_0 and the
    embedding in Q8_0, as llama.cpp quantizes; else Float32 matrices and a Float16 embedding.
    `tokenizer`: string fields that replace the test model's (pre-tokenizer, chat template).
    `sentencepiece`: a SentencePiece processor whose vocabulary replaces the test model's, as
    llama.cpp's converter writes a Llama 2 tokenizer."""
    tokenizer = tokenizer or {}
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch=arch)
    if sentencepiece is None:
        reader = gguf.GGUFReader(MODEL)
        for field in reader.fields.values():
            if field.name.startswith("tokenizer.") and field.name not in tokenizer:
                kind = field.types[0]
                sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
                writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
        vocabulary = len(reader.fields["tokenizer.ggml.tokens"].data)
    else:
        vocabulary = write_sentencepiece_vocabulary(writer, sentencepiece)
    for key, value in tokenizer.items():
        writer.add_string(key, value)
    embedding, heads, kv_heads, feed_forward, layers = 64, 4, 2, 96, 2
    d = head_dim or embedding // heads
    writer.add_block_count(layers)
    writer.add_context_length(256)
    writer.add_embedding_length(embedding)
    writer.add_feed_forward_length(feed_forward)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1e6 if arch != "llama" else 5e5)
    if head_dim:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if linear_scale:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(linear_scale)

    def matrix(name, rows, cols, kind=gguf.GGMLQuantizationType.Q4_0):
        values = (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
        if blocks:
            writer.add_tensor(name, gguf.quants.quantize(values, kind), raw_dtype=kind)
        else:
            writer.add_tensor(name, values)

    def vector(name, count, around=1.0, spread=0.1):
        writer.add_tensor(name, (around + spread * rng.standard_normal(count)).astype(np.float32))

    if blocks:
        matrix("token_embd.weight", vocabulary, embedding, gguf.GGMLQuantizationType.Q8_0)
    else:
        writer.add_tensor("token_embd.weight", rng.standard_normal((vocabulary, embedding)).astype(np.float16))
    if rope_factors:   # Llama 3's: long wavelengths slowed down, as its scaling does
        writer.add_tensor("rope_freqs.weight", np.geomspace(1, 8, d // 2).astype(np.float32))
    for i in range(layers):
        p = f"blk.{i}."
        vector(p + "attn_norm.weight", embedding)
        vector(p + "ffn_norm.weight", embedding)
        matrix(p + "attn_q.weight", heads * d, embedding)
        matrix(p + "attn_k.weight", kv_heads * d, embedding)
        matrix(p + "attn_v.weight", kv_heads * d, embedding)
        matrix(p + "attn_output.weight", embedding, heads * d)
        matrix(p + "ffn_gate.weight", feed_forward, embedding)
        matrix(p + "ffn_up.weight", feed_forward, embedding)
        matrix(p + "ffn_down.weight", embedding, feed_forward)
        if biases:
            vector(p + "attn_q.bias", heads * d, around=0, spread=0.5)
            vector(p + "attn_k.bias", kv_heads * d, around=0, spread=0.5)
            vector(p + "attn_v.bias", kv_heads * d, around=0, spread=0.5)
        if head_norms:
            vector(p + "attn_q_norm.weight", d)
            vector(p + "attn_k_norm.weight", d)
    vector("output_norm.weight", embedding)
    if not tied:
        matrix("output.weight", vocabulary, embedding)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_sentencepiece_vocabulary(writer, sp):
    """The fields llama.cpp's converter writes for a SentencePiece model; returns its size."""
    def token_type(i):
        for kind, test in ((gguf.TokenType.CONTROL, sp.is_control), (gguf.TokenType.UNKNOWN, sp.is_unknown),
                           (gguf.TokenType.BYTE, sp.is_byte), (gguf.TokenType.UNUSED, sp.is_unused)):
            if test(i):
                return kind
        return gguf.TokenType.NORMAL

    size = sp.get_piece_size()
    writer.add_tokenizer_model("llama")
    writer.add_token_list([sp.id_to_piece(i) for i in range(size)])
    writer.add_token_scores([sp.get_score(i) for i in range(size)])
    writer.add_token_types([token_type(i) for i in range(size)])
    writer.add_bos_token_id(sp.bos_id())
    writer.add_eos_token_id(sp.eos_id())
    writer.add_unk_token_id(sp.unk_id())
    return size


ARCHITECTURES = {
    "llama3": dict(arch="llama", rope_factors=True, tied=False),
    "llama-linear-rope": dict(arch="llama", linear_scale=4.0),
    "qwen2": dict(arch="qwen2", biases=True),
    "qwen3": dict(arch="qwen3", head_dim=32, head_norms=True),   # heads wider than 64 / 4
}


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def architecture(request):
    return request.param


@pytest.fixture(scope="module")
def model(architecture, tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("arch") / f"{architecture}.gguf", **ARCHITECTURES[architecture])


@pytest.fixture(scope="module")
def model_in_blocks(architecture, tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("arch") / f"{architecture}-blocks.gguf", blocks=True,
                       **ARCHITECTURES[architecture])


def relative_errors(got, expected):
    return [np.linalg.norm(got[i] - expected[i]) / np.linalg.norm(expected[i]) for i in range(expected.shape[0])]


def test_every_layer_agrees_with_numpy(model):
    expected = hidden_states(model, TOKENS)
    with lowbit.Model.open(str(model), weights="reference") as m:
        got = m.trace(TOKENS)
    assert got.shape == expected.shape == (3, len(TOKENS), 64)
    errors = relative_errors(got, expected)
    # Both round keys and values to float16 for the cache; where a value lies within float32
    # rounding of a float16 tie, the runner and numpy round it one float16 step apart (2^-10
    # relative), which moves a layer's output by ~1e-5. A wrong architecture detail moves it by
    # more than 1e-3 (test_the_rotation_and_its_factors_matter).
    assert max(errors) <= 1e-4, errors


def test_each_architecture_runs_on_lowbit_kernels(model_in_blocks):
    """The file's Q4_0 blocks on lowbit's 4-bit kernels (16-bit activations) and its Q8_0
    embedding: the same weights as numpy reads, so only the activations' rounding differs."""
    expected = hidden_states(model_in_blocks, TOKENS)
    with lowbit.Model.open(str(model_in_blocks), weights="file") as m:
        got = m.trace(TOKENS)
        assert len(m.generate("The capital of France is", max_tokens=4)) > len("The capital of France is")
    errors = relative_errors(got, expected)
    assert max(errors) <= 3e-4, errors
    with lowbit.Model.open(str(model_in_blocks), bits=2, group_size=32) as m:   # requantized: runs
        assert m.trace(TOKENS).shape == expected.shape


def test_the_rotation_and_its_factors_matter(tmp_path):
    """The numpy pass itself tells the variants apart: the same weights with llama's rotation,
    with Llama 3's factors and with qwen's pairs give different states after the first layer."""
    plain = hidden_states(write_model(tmp_path / "plain.gguf", "llama"), TOKENS)
    factors = hidden_states(write_model(tmp_path / "factors.gguf", "llama", rope_factors=True), TOKENS)
    halves = hidden_states(write_model(tmp_path / "halves.gguf", "qwen2"), TOKENS)
    for other in (factors, halves):
        assert min(relative_errors(other[1:], plain[1:])) > 1e-3


def test_other_architectures_and_malformed_hyperparameters_are_refused(tmp_path):
    path = write_model(tmp_path / "phi3.gguf", "phi3")
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.Model.open(str(path))
    assert e.value.status_name == "UNSUPPORTED" and "architecture 'phi3'" in e.value.message
    path = write_model(tmp_path / "qwen2-no-bias.gguf", "qwen2")
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.Model.open(str(path))
    assert "attn_q.bias" in e.value.message


LLAMA3_TEMPLATE = ("{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}"
                   "<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
                   "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


def test_llama3_chat_format_and_pre_tokenizer(tmp_path):
    path = write_model(tmp_path / "llama3-chat.gguf", "llama", rope_factors=True, tokenizer={
        "tokenizer.chat_template": LLAMA3_TEMPLATE, "tokenizer.ggml.pre": "llama-bpe"})
    with lowbit.Model.open(str(path), weights="reference") as m:
        text = m.chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        assert text == ("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\n")
        # Llama 3's pattern keeps a run of line breaks in one piece, which BPE then merges;
        # SmolLM2's pattern leaves the last break a piece of its own.
        assert [m.detokenize([t]) for t in m.tokenize("end.\n\nNext", add_special=False)] == [
            "end", ".", "\n\n", "Next"]
    with lowbit.Model.open(MODEL, weights="reference") as smollm:
        assert [smollm.detokenize([t]) for t in smollm.tokenize("end.\n\nNext", add_special=False)] == [
            "end", ".", "\n", "\n", "Next"]


def test_unknown_tokenizers_and_chat_formats_are_unsupported(tmp_path):
    path = write_model(tmp_path / "falcon-pre.gguf", "llama", tokenizer={"tokenizer.ggml.pre": "falcon"})
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.Model.open(str(path))
    assert e.value.status_name == "UNSUPPORTED" and "'falcon'" in e.value.message
    path = write_model(tmp_path / "unigram.gguf", "llama", tokenizer={"tokenizer.ggml.model": "t5"})
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.Model.open(str(path))
    assert e.value.status_name == "UNSUPPORTED" and "model 't5'" in e.value.message
    gemma = "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>{% endfor %}"
    path = write_model(tmp_path / "gemma.gguf", "llama", tokenizer={"tokenizer.chat_template": gemma})
    with lowbit.Model.open(str(path), weights="reference") as m, pytest.raises(lowbit.LowbitError) as e:
        m.chat_template([{"role": "user", "content": "Hi"}])
    assert e.value.status_name == "UNSUPPORTED"


LLAMA2_TEMPLATE = ("{% for message in loop_messages %}{% if message['role'] == 'user' %}"
                   "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'system' %}"
                   "{{ '<<SYS>>\\n' + content.strip() + '\\n<</SYS>>\\n\\n' }}{% else %}"
                   "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
MISTRAL_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
                    "{{ message['content'] + eos_token}}{% endif %}{% endfor %}")
GPL = Path("/usr/share/common-licenses/GPL-3")


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory):
    """A SentencePiece BPE vocabulary of 800 pieces trained on the GPL (byte fallback, no
    normalization, as Llama 2's), and a Llama 2 style model that carries it."""
    spm = pytest.importorskip("sentencepiece")   # scripts/test.sh installs it beside gguf
    import io
    proto = io.BytesIO()
    lines = [line for line in GPL.read_text().splitlines() if line.strip()]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=proto, vocab_size=800,
                                   model_type="bpe", byte_fallback=True, normalization_rule_name="identity",
                                   remove_extra_whitespaces=False, split_digits=True, num_threads=1,
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    path = write_model(tmp_path_factory.mktemp("spm") / "llama2.gguf", "llama", sentencepiece=sp,
                       tokenizer={"tokenizer.chat_template": LLAMA2_TEMPLATE})
    return sp, path


SENTENCEPIECE_TEXTS = [
    "Hello world", "The GNU General Public License is a free, copyleft license.", "  two  spaces ",
    " leading", "trailing\n", "\n\ttabs\n\nand lines", "version 3, 29 June 2007: 12345 numbers",
    "naïve café — 日本語 🙂 ünïcödé", "e\u0301 and é", "a▁literal▁mark", "", " ",
    "copyrightcopyright",
]


def test_sentencepiece_tokenizer_agrees_with_sentencepiece(sentencepiece_model):
    """Llama 2 / Mistral files carry SentencePiece's BPE: lowbit encodes and decodes as the
    sentencepiece package does, spaces, digits, unknown characters (as bytes) and all."""
    sp, path = sentencepiece_model
    texts = SENTENCEPIECE_TEXTS + [GPL.read_text()[:20000]]
    with lowbit.Model.open(str(path), weights="reference") as m:
        for text in texts:
            ids = sp.encode(text)
            assert m.tokenize(text, add_special=False) == ids, text
            assert m.tokenize(text) == [sp.bos_id()] + ids, text
            assert m.detokenize(ids) == sp.decode(ids), text
        fallback = m.tokenize("日本", add_special=False)
        assert all(sp.is_byte(t) for t in fallback[1:]) and len(fallback) == 7   # ▁ then six bytes
    listing = subprocess.run(lowbit_tool() + ["gguf", str(path)], check=True, capture_output=True, text=True).stdout
    assert "tokenizer: SentencePiece BPE, 800 tokens" in listing


def test_llama2_and_mistral_chat_formats(sentencepiece_model, tmp_path):
    sp, path = sentencepiece_model
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hi "},
                    {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
    with lowbit.Model.open(str(path), weights="reference") as m:
        text = m.chat_template(conversation)
        assert text == "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello</s><s>[INST] Bye [/INST]"
        ids = m.tokenize(text, parse_special=True)
        assert ids.count(sp.bos_id()) == 2 and ids.count(sp.eos_id()) == 1 and ids[0] == sp.bos_id()
        # A continuation keeps the space before its first word: the prompt is its start.
        assert m.generate("Hi there", max_tokens=3).startswith("Hi there")
    mistral = write_model(tmp_path / "mistral.gguf", "llama", sentencepiece=sp,
                          tokenizer={"tokenizer.chat_template": MISTRAL_TEMPLATE})
    with lowbit.Model.open(str(mistral), weights="reference") as m:
        assert m.chat_template(conversation) == "[INST] Be brief.\n Hi  [/INST]Hello</s>[INST] Bye [/INST]"


def test_the_tool_prints_a_perplexity_beyond_any_integer(sentencepiece_model):
    """A random model's perplexity is astronomical (about 1e19 here): the tool prints it as
    the library computes it, where formatting it once trapped."""
    _, path = sentencepiece_model
    with lowbit.Model.open(str(path), weights="reference") as m:
        expected = m.perplexity(GPL.read_text()[:30000], ctx=128, chunks=4)
    assert expected > 1e15
    out = subprocess.run(lowbit_tool() + ["perplexity", "--model", str(path), "--text", str(GPL), "--ctx", "128",
                                          "--chunks", "4", "--weights", "reference"],
                         check=True, capture_output=True, text=True).stdout
    printed = float(out.strip().splitlines()[-1].split()[1])
    assert abs(printed / expected - 1) < 0.01, (printed, expected)
