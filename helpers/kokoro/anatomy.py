"""Look inside Kokoro: parameter counts per component, the six LSTMs, and shapes traced through one sentence.

parameter_table(model)        -> DataFrame: component, parameters, share
find_lstms(model)             -> DataFrame: path, input, hidden, directions, parameters
trace_shapes(kokoro, text)    -> DataFrame: one row per stage, shapes and what the time axis counts
"""

from __future__ import annotations

import pandas as pd
import torch

# The components a reader should see, finest where the surgery happens.
COMPONENT_PATHS = [
    "bert",
    "bert_encoder",
    "predictor.text_encoder",
    "predictor.lstm",
    "predictor.duration_proj",
    "predictor.shared",
    "predictor.F0",
    "predictor.N",
    "predictor.F0_proj",
    "predictor.N_proj",
    "text_encoder",
    "decoder",
]


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: torch.nn.Module, paths: list[str] = COMPONENT_PATHS) -> pd.DataFrame:
    """Parameters per component; the rows add up to the whole model."""
    total = count_parameters(model)
    rows = [(p, count_parameters(model.get_submodule(p))) for p in paths]
    covered = sum(n for _, n in rows)
    if covered != total:
        rows.append(("(other)", total - covered))
    df = pd.DataFrame(rows, columns=["component", "parameters"])
    df["millions"] = (df["parameters"] / 1e6).round(2)
    df["share %"] = (100 * df["parameters"] / total).round(1)
    return df


def find_lstms(model: torch.nn.Module) -> pd.DataFrame:
    """Every nn.LSTM in the model: where it is and how big."""
    rows = []
    for path, m in model.named_modules():
        if isinstance(m, torch.nn.LSTM):
            rows.append(
                {
                    "path": path,
                    "input": m.input_size,
                    "hidden": m.hidden_size,
                    "directions": 2 if m.bidirectional else 1,
                    "layers": m.num_layers,
                    "output": m.hidden_size * (2 if m.bidirectional else 1),
                    "parameters": count_parameters(m),
                }
            )
    return pd.DataFrame(rows)


def _shape(x) -> str:
    if isinstance(x, torch.Tensor):
        return str(tuple(x.shape))
    if isinstance(x, (tuple, list)):
        return ", ".join(_shape(v) for v in x if isinstance(v, (torch.Tensor, tuple, list)))
    return type(x).__name__


TRACE_STAGES = {  # module path -> what its output's time axis counts
    "bert": "tokens",
    "bert_encoder": "tokens",
    "predictor.text_encoder": "tokens",
    "predictor.lstm": "tokens",
    "predictor.duration_proj": "tokens",
    "predictor.shared": "frames (25 ms)",
    "predictor.F0_proj": "F0 frames (12.5 ms)",
    "predictor.N_proj": "F0 frames (12.5 ms)",
    "text_encoder": "tokens",
    "decoder": "samples (24 kHz)",
}


def trace_shapes(kokoro, text: str, voice: str | None = None, seed: int = 0) -> tuple[pd.DataFrame, object]:
    """Run one sentence with forward hooks on the main stages; returns (shape table, Synthesis)."""
    from helpers.kokoro.synth import synthesize

    model = getattr(kokoro, "model", kokoro)
    rows, hooks = [], []
    for path, counts in TRACE_STAGES.items():
        module = model.get_submodule(path)

        def hook(mod, inputs, output, path=path, counts=counts):
            out = output[0] if isinstance(mod, torch.nn.LSTM) else output  # LSTMs return (y, (h, c))
            rows.append(
                {
                    "stage": path,
                    "module": type(mod).__name__,
                    "input": _shape(inputs),
                    "output": _shape(out),
                    "time axis counts": counts,
                }
            )

        hooks.append(module.register_forward_hook(hook))
    try:
        syn = synthesize(kokoro, text, voice=voice, seed=seed)
    finally:
        for h in hooks:
            h.remove()
    return pd.DataFrame(rows), syn
