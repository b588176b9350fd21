"""An independent float64 forward pass of the Llama family in numpy, reading the GGUF file
itself: the check the runner is held to, layer by layer (test_model.py, test_architectures.py).
F32, F16, Q8_0, Q4_0 and Q4_1 tensors; RMSNorm; grouped-query attention; SiLU-gated feed-forward; RoPE
on adjacent pairs (llama) or on pairs half a head apart (qwen2, qwen3), with Llama 3's per-pair
factors and linear scaling; qwen2's q/k/v biases; qwen3's per-head q/k norms and head width."""
import struct

import numpy as np

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class GGUF:
    def __init__(self, path):
        self.data = open(path, "rb").read()
        self.pos = 0
        assert self._take(4) == b"GGUF"
        version, n_tensors, n_kv = struct.unpack("<IQQ", self._take(20))
        assert version in (2, 3)
        self.meta = {}
        for _ in range(n_kv):
            key = self._string()
            self.meta[key] = self._value(struct.unpack("<I", self._take(4))[0])
        self.tensors = {}
        for _ in range(n_tensors):
            name = self._string()
            n_dims = struct.unpack("<I", self._take(4))[0]
            dims = struct.unpack(f"<{n_dims}Q", self._take(8 * n_dims))
            kind, offset = struct.unpack("<IQ", self._take(12))
            self.tensors[name] = (dims, kind, offset)
        align = self.meta.get("general.alignment", 32)
        self.start = (self.pos + align - 1) // align * align

    def _take(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def _string(self):
        n = struct.unpack("<Q", self._take(8))[0]
        return self._take(n).decode("utf-8")

    def _value(self, kind):
        if kind == 8:
            return self._string()
        if kind == 9:
            inner, count = struct.unpack("<IQ", self._take(12))
            return [self._value(inner) for _ in range(count)]
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def array(self, name):
        """The tensor as float64, shape (rows, cols) = (dims[1], dims[0]) for matrices."""
        dims, kind, offset = self.tensors[name]
        count = int(np.prod(dims))
        base = self.start + offset
        if kind == 0:
            values = np.frombuffer(self.data, dtype="<f4", count=count, offset=base).astype(np.float64)
        elif kind == 1:
            values = np.frombuffer(self.data, dtype="<f2", count=count, offset=base).astype(np.float64)
        elif kind == 8:   # Q8_0: f16 d, 32 int8
            blocks = np.frombuffer(self.data, dtype=np.uint8, count=count // 32 * 34, offset=base).reshape(-1, 34)
            d = blocks[:, :2].copy().view("<f2").astype(np.float64)
            values = (d * blocks[:, 2:].view(np.int8).astype(np.float64)).reshape(-1)
        elif kind == 2:   # Q4_0: f16 d, 16 bytes of nibbles q, weights d * (q - 8)
            blocks = np.frombuffer(self.data, dtype=np.uint8, count=count // 32 * 18, offset=base).reshape(-1, 18)
            d = blocks[:, 0:2].copy().view("<f2").astype(np.float64)
            q = np.concatenate([blocks[:, 2:] & 15, blocks[:, 2:] >> 4], axis=1).astype(np.float64)
            values = (d * (q - 8)).reshape(-1)
        elif kind == 3:   # Q4_1: f16 d, f16 m, 16 bytes of nibbles (low: weights 0-15, high: 16-31)
            blocks = np.frombuffer(self.data, dtype=np.uint8, count=count // 32 * 20, offset=base).reshape(-1, 20)
            d = blocks[:, 0:2].copy().view("<f2").astype(np.float64)
            m = blocks[:, 2:4].copy().view("<f2").astype(np.float64)
            q = np.concatenate([blocks[:, 4:] & 15, blocks[:, 4:] >> 4], axis=1).astype(np.float64)
            values = (d * q + m).reshape(-1)
        else:
            raise ValueError(f"tensor type {kind} not handled here")
        return values.reshape(tuple(reversed(dims))) if len(dims) > 1 else values


def hidden_states(path, tokens):
    """Hidden states (layers + 1, n, hidden): after the embedding, then after each layer."""
    g = GGUF(path)
    arch = g.meta["general.architecture"]
    meta = {key[len(arch) + 1:]: value for key, value in g.meta.items() if key.startswith(arch + ".")}
    layers, heads = meta["block_count"], meta["attention.head_count"]
    kv_heads = meta.get("attention.head_count_kv", heads)
    eps = meta.get("attention.layer_norm_rms_epsilon", 1e-5)
    base = meta.get("rope.freq_base", 10000.0)
    scale = meta.get("rope.scaling.factor", 1.0) if meta.get("rope.scaling.type") == "linear" else 1.0
    x = g.array("token_embd.weight")[np.asarray(tokens)]
    n, e = x.shape
    d = meta.get("attention.key_length", e // heads)
    factors = g.array("rope_freqs.weight") if "rope_freqs.weight" in g.tensors else np.ones(d // 2)
    frequencies = base ** (-2.0 * np.arange(d // 2) / d) / factors / scale

    def norm(v, w):
        return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + eps) * w

    def rope(v, count):
        # llama: pairs (2i, 2i + 1); qwen: pairs (i, i + d/2).
        v = v.reshape(n, count, d // 2, 2) if arch == "llama" else v.reshape(n, count, 2, d // 2).swapaxes(2, 3)
        v = v.copy()
        angle = np.arange(n)[:, None] * frequencies
        cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
        a, b = v[..., 0].copy(), v[..., 1].copy()
        v[..., 0], v[..., 1] = a * cos - b * sin, a * sin + b * cos
        v = v if arch == "llama" else v.swapaxes(2, 3)
        return v.reshape(n, count * d)

    def project(h, name):
        out = h @ g.array(name + ".weight").T
        return out + g.array(name + ".bias") if name + ".bias" in g.tensors else out

    def head_norm(v, count, name):
        if name not in g.tensors:
            return v
        return norm(v.reshape(n, count, d), g.array(name)).reshape(n, count * d)

    states = [x.copy()]
    causal = np.triu(np.full((n, n), -np.inf), k=1)
    for i in range(layers):
        p = f"blk.{i}."
        h = norm(x, g.array(p + "attn_norm.weight"))
        q = rope(head_norm(project(h, p + "attn_q"), heads, p + "attn_q_norm.weight"), heads)
        k = rope(head_norm(project(h, p + "attn_k"), kv_heads, p + "attn_k_norm.weight"), kv_heads)
        v = project(h, p + "attn_v")
        # The KV cache holds keys and values as float16 (as llama.cpp's does by default), rounded
        # from the float32 values the runner computes.
        k, v = (a.astype(np.float32).astype(np.float16).astype(np.float64) for a in (k, v))
        out = np.zeros((n, heads * d))
        for head in range(heads):
            kvh = head // (heads // kv_heads)
            qh, kh, vh = q[:, head * d:(head + 1) * d], k[:, kvh * d:(kvh + 1) * d], v[:, kvh * d:(kvh + 1) * d]
            scores = qh @ kh.T / np.sqrt(d) + causal
            weights = np.exp(scores - scores.max(axis=1, keepdims=True))
            out[:, head * d:(head + 1) * d] = (weights / weights.sum(axis=1, keepdims=True)) @ vh
        x = x + out @ g.array(p + "attn_output.weight").T
        h = norm(x, g.array(p + "ffn_norm.weight"))
        gate, up = h @ g.array(p + "ffn_gate.weight").T, h @ g.array(p + "ffn_up.weight").T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ g.array(p + "ffn_down.weight").T
        states.append(x.copy())
    return np.stack(states)
