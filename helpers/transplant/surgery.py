"""Mamba surgery: cut the LSTMs out of Kokoro's DurationEncoder and transplant Mamba blocks.

The DurationEncoder's contract, which the frozen layers downstream were trained against:

    forward(x (B, 512, T), style (B, 128), text_lengths (B,), mask (B, T) True=pad) -> (B, T, 640)
    with out[..., 512:] == style on every valid token and out == 0 on padding.

Two replacements keep that contract (`SurgeryConfig.design`):

* ``layerwise`` (default) - each BiLSTM(640 -> 2x256) becomes a bidirectional Mamba block 640 -> 512; the
  style-conditioned AdaLayerNorms and the style re-concatenation stay (optionally reusing the pretrained
  AdaLayerNorm weights). Same depth, same widths, same style path: the smallest change to what the
  frozen downstream layers see.

      h = [x ; s] (B, T, 640) -> 3 x ( BiMamba 640->512 -> dropout -> AdaLayerNorm(s) -> [h ; s] ) -> (B, T, 640)

  ``SurgeryConfig.block`` picks what stands in for each BiLSTM: ``"mamba"`` (default; BiMamba or
  SharedBiMamba) or ``"cfc"``, a bidirectional liquid CfC layer with the BiLSTM's own widths, 2 x 256 units
  (helpers.transplant.cfc.BiCfC; its ``cfc_*`` settings below). Either is called ``block(h (B, T, 640),
  lengths) -> (B, T, 512)``, zero on padding, so helpers.train.layerwise teaches both alike.

* ``single`` - the original plan: one (unidirectional, causal) Mamba over [x ; s], d_model 640. Made
  correct here: right padding is exact for a causal scan, its 640 outputs are projected to 512 and the
  style is appended again so the output keeps the contract above. It cannot see the future, which the
  bidirectional LSTMs could: notebook 02 lets you hear what that costs.

`replace_duration_encoder` swaps the module in a loaded KModel and hands back the original as the teacher
for distillation; `replace_lstm` swaps any of the other five LSTMs for a BiMamba with an LSTM-like call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from helpers.mamba.bidirectional import BiMamba, SharedBiMamba
from helpers.mamba.block import Mamba
from helpers.transplant.cfc import MODES, TIMESPANS, BiCfC

DURATION_ENCODER_PATH = "predictor.text_encoder"
DESIGNS = ("layerwise", "single")
BLOCKS = ("mamba", "cfc")


@dataclass
class SurgeryConfig:
    """How the DurationEncoder is rebuilt. Saved with every adapter, so it can be re-applied exactly."""

    design: str = "layerwise"  # "layerwise" | "single"
    d_state: int = 16
    d_conv: int = 4
    expand: float = 2  # d_inner = expand * 640
    bidirectional: str = "separate"  # "separate": BiMamba (two full blocks); "shared": SharedBiMamba (Vim-style)
    combine: str = "sum"  # how BiMamba merges the two directions; recorded in every adapter so a later default change cannot break it
    reuse_norms: bool = True  # layerwise: start the AdaLayerNorms from the pretrained ones
    dropout: float = 0.2  # Kokoro's config value; active in training only
    sty_dim: int = 128
    d_model: int = 512
    n_layers: int = 3
    block: str = "mamba"  # layerwise: "mamba" | "cfc" (absent from older adapters: they are all Mamba)
    cfc_backbone_units: int = 480  # cfc: 1.85M parameters per layer, the BiLSTM's 1.84M
    cfc_backbone_layers: int = 1
    cfc_mode: str = "default"  # ncps CfCCell mode: "default" | "no_gate" | "pure"
    cfc_timespan: str = "unit"  # "unit" | "learned" (helpers.transplant.cfc says why unit, measured)

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(f"unknown design {self.design!r}; choose one of {DESIGNS}")
        if self.block not in BLOCKS:
            raise ValueError(f"unknown block {self.block!r}; choose one of {BLOCKS}")
        if self.block == "cfc" and self.design != "layerwise":
            raise ValueError("block='cfc' needs design='layerwise' (the single design is one causal Mamba)")
        if self.block == "cfc" and self.d_model % 2:
            raise ValueError(f"block='cfc' splits d_model between two directions: {self.d_model} is odd")
        if self.cfc_mode not in MODES:
            raise ValueError(f"unknown cfc_mode {self.cfc_mode!r}; choose one of {MODES}")
        if self.cfc_timespan not in TIMESPANS:
            raise ValueError(f"unknown cfc_timespan {self.cfc_timespan!r}; choose one of {TIMESPANS}")
        if self.bidirectional not in ("separate", "shared"):
            raise ValueError(f"bidirectional must be 'separate' or 'shared', got {self.bidirectional!r}")

    def mamba_kwargs(self) -> dict:
        return {"d_state": self.d_state, "d_conv": self.d_conv, "expand": self.expand}

    def to_dict(self) -> dict:
        return asdict(self)


def _block(d_in: int, d_out: int, cfg: SurgeryConfig) -> nn.Module:
    """One layerwise block d_in -> d_out of the configured kind (BiMamba, SharedBiMamba or BiCfC)."""
    if cfg.block == "cfc":
        return BiCfC(
            d_in, d_out // 2, cfg.cfc_backbone_units, cfg.cfc_backbone_layers, cfg.cfc_mode, cfg.cfc_timespan
        )
    return _bimamba(d_in, d_out, cfg)


def _bimamba(d_in: int, d_out: int, cfg: SurgeryConfig) -> BiMamba | SharedBiMamba:
    if cfg.bidirectional == "shared":
        return SharedBiMamba(d_in, d_out=d_out, **cfg.mamba_kwargs())
    extra = {} if cfg.combine is None else {"combine": cfg.combine}
    return BiMamba(d_in, d_out=d_out, **extra, **cfg.mamba_kwargs())


class MambaDurationEncoder(nn.Module):
    """Drop-in replacement for kokoro.modules.DurationEncoder (same forward signature and output).

    The name is historical: with ``cfg.block == "cfc"`` its blocks are liquid CfC layers, not Mamba.
    """

    def __init__(self, cfg: SurgeryConfig):
        super().__init__()
        from kokoro.modules import AdaLayerNorm

        self.cfg = cfg
        width = cfg.d_model + cfg.sty_dim  # 640
        self.dropout = nn.Dropout(cfg.dropout)
        if cfg.design == "layerwise":
            self.blocks = nn.ModuleList(_block(width, cfg.d_model, cfg) for _ in range(cfg.n_layers))
            self.norms = nn.ModuleList(AdaLayerNorm(cfg.sty_dim, cfg.d_model) for _ in range(cfg.n_layers))
        else:
            self.mamba = Mamba(width, **cfg.mamba_kwargs())
            self.proj = nn.Linear(width, cfg.d_model)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, text_lengths: torch.Tensor, m: torch.Tensor
    ) -> torch.Tensor:
        B, _, T = x.shape
        pad = m.to(torch.bool).reshape(B, T).unsqueeze(-1)  # (B, T, 1) True on padding
        lengths = text_lengths.to(x.device)
        s = style.reshape(B, 1, -1).expand(B, T, -1)  # (B, T, 128)
        h = torch.cat([x.transpose(1, 2), s], dim=-1).masked_fill(pad, 0.0)  # (B, T, 640)
        if self.cfg.design == "layerwise":
            for block, norm in zip(self.blocks, self.norms):
                h = block(h, lengths)  # (B, T, 512), zero on padding
                h = self.dropout(h)
                h = norm(h, style)  # (B, T, 512) style-conditioned LayerNorm
                h = torch.cat([h, s], dim=-1).masked_fill(pad, 0.0)  # (B, T, 640)
            return h
        y = self.mamba(h)  # (B, T, 640): causal, so right padding cannot reach valid steps
        y = self.proj(self.dropout(y))  # (B, T, 512)
        return torch.cat([y, s], dim=-1).masked_fill(pad, 0.0)  # (B, T, 640)


LSTM_BLOCK = "lstm"  # what an adapter or checkpoint of Kokoro's own DurationEncoder records as its block


def is_lstm_encoder(enc: nn.Module) -> bool:
    """True for Kokoro's own DurationEncoder (three BiLSTMs with AdaLayerNorms): the un-operated model's."""
    from kokoro.modules import DurationEncoder

    return isinstance(enc, DurationEncoder)


def encoder_identity(model: nn.Module) -> str:
    """Which DurationEncoder `model` (a KModel, or a LoadedKokoro) holds: its class and a hash of its weights.

    Targets computed through the predictor (notebook 04's DTW reference and teacher durations) depend on it, so it
    is part of their cache key (helpers.data.prepare.settings_record): a student's targets never pass for Kokoro's.
    """
    import hashlib

    enc = getattr(model, "model", model).get_submodule(DURATION_ENCODER_PATH)
    h = hashlib.sha256(type(enc).__qualname__.encode())
    for name, t in sorted(enc.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return f"{type(enc).__name__}:{h.hexdigest()[:16]}"


def encoder_design(enc: nn.Module) -> dict:
    """What a DurationEncoder is, as checkpoints and adapters record it: a transplanted one's SurgeryConfig, or
    ``{"block": "lstm", ...}`` (its widths) for Kokoro's own, which the same-recipe LSTM control trains."""
    if isinstance(enc, MambaDurationEncoder):
        return enc.cfg.to_dict()
    if is_lstm_encoder(enc):
        return {"block": LSTM_BLOCK, "d_model": enc.d_model, "sty_dim": enc.sty_dim, "n_layers": len(enc.lstms) // 2}
    raise TypeError(f"not a DurationEncoder: {type(enc).__name__}")


def same_design(recorded: dict, enc: nn.Module) -> bool:
    """Whether a recorded design (encoder_design, or an older checkpoint's SurgeryConfig) describes `enc`."""
    if recorded.get("block") != LSTM_BLOCK:  # older records lack newer SurgeryConfig fields: defaults fill them
        recorded = SurgeryConfig(**recorded).to_dict()
    return recorded == encoder_design(enc)


def lstm_encoder(design: dict) -> nn.Module:
    """A fresh Kokoro DurationEncoder of the recorded widths (eval mode; weights to be loaded)."""
    import warnings

    from kokoro.modules import DurationEncoder

    with warnings.catch_warnings():  # nn.LSTM warns that dropout does nothing with one layer: Kokoro's own setting
        warnings.simplefilter("ignore", UserWarning)
        enc = DurationEncoder(design["sty_dim"], design["d_model"], design["n_layers"], dropout=0.2)
    return enc.eval()


class BiMambaLSTM(nn.Module):
    """A BiMamba that is called like a batch-first bidirectional nn.LSTM: returns (output, None).

    Accepts a padded tensor (B, T, C) or a PackedSequence (as Kokoro's packed code paths pass),
    and gives back the same kind.
    """

    def __init__(self, input_size: int, hidden_size: int, cfg: SurgeryConfig):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.block = _bimamba(input_size, 2 * hidden_size, cfg)

    def flatten_parameters(self) -> None:  # Kokoro calls this on its LSTMs
        pass

    def forward(self, x, hx=None):
        if isinstance(x, PackedSequence):
            padded, lengths = pad_packed_sequence(x, batch_first=True)  # (B, T, C), (B,)
            y = self.block(padded, lengths.to(padded.device))
            return pack_padded_sequence(y, lengths, batch_first=True, enforce_sorted=False), None
        return self.block(x), None


@dataclass
class SurgeryReport:
    path: str
    removed: nn.Module  # the original module: the teacher for distillation
    added: nn.Module
    config: SurgeryConfig

    @property
    def removed_parameters(self) -> int:
        return sum(p.numel() for p in self.removed.parameters())

    @property
    def added_parameters(self) -> int:
        return sum(p.numel() for p in self.added.parameters())

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "module": self.path,
                    "side": "removed",
                    "type": type(self.removed).__name__,
                    "parameters": self.removed_parameters,
                },
                {
                    "module": self.path,
                    "side": "added",
                    "type": type(self.added).__name__,
                    "parameters": self.added_parameters,
                },
            ]
        )

    def __str__(self) -> str:
        delta = self.added_parameters - self.removed_parameters
        kind = self.config.design + (f", {self.config.block}" if self.config.block != "mamba" else "")
        return (
            f"{self.path}: {type(self.removed).__name__} ({self.removed_parameters:,} params) -> "
            f"{type(self.added).__name__} [{kind}] ({self.added_parameters:,} params, {delta:+,})"
        )


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)


def replace_duration_encoder(model: nn.Module, cfg: SurgeryConfig | None = None) -> SurgeryReport:
    """Swap the DurationEncoder of a loaded KModel for a MambaDurationEncoder (in place)."""
    cfg = cfg or SurgeryConfig()
    original = model.get_submodule(DURATION_ENCODER_PATH)
    if isinstance(original, MambaDurationEncoder):
        raise ValueError("this model's DurationEncoder is already a MambaDurationEncoder")
    device = next(original.parameters()).device
    new = MambaDurationEncoder(cfg).to(device)
    if cfg.design == "layerwise" and cfg.reuse_norms:
        pretrained_norms = [m for m in original.lstms if not isinstance(m, nn.LSTM)]  # lstms.1/.3/.5
        for norm, old in zip(new.norms, pretrained_norms):
            norm.load_state_dict(old.state_dict())
    new.train(original.training)
    _set_submodule(model, DURATION_ENCODER_PATH, new)
    return SurgeryReport(DURATION_ENCODER_PATH, original, new, cfg)


def replace_lstm(model: nn.Module, path: str, cfg: SurgeryConfig | None = None) -> SurgeryReport:
    """Swap one of Kokoro's bidirectional LSTMs (e.g. 'predictor.lstm') for a BiMambaLSTM of equal widths."""
    cfg = cfg or SurgeryConfig()
    original = model.get_submodule(path)
    if not (isinstance(original, nn.LSTM) and original.bidirectional and original.batch_first):
        raise TypeError(f"{path} is a {type(original).__name__}, not a batch-first bidirectional LSTM")
    device = next(original.parameters()).device
    new = BiMambaLSTM(original.input_size, original.hidden_size, cfg).to(device)
    _set_submodule(model, path, new)
    return SurgeryReport(path, original, new, cfg)


def restore(model: nn.Module, report: SurgeryReport) -> None:
    """Undo a surgery: put the original module back."""
    _set_submodule(model, report.path, report.removed)


def design_parameter_table(
    configs: dict[str, SurgeryConfig], original: nn.Module | None = None
) -> pd.DataFrame:
    """Parameters of each candidate DurationEncoder, next to the original LSTM one."""
    rows = []
    if original is not None:
        rows.append(
            {"design": "original (3 x BiLSTM)", "parameters": sum(p.numel() for p in original.parameters())}
        )
    for name, cfg in configs.items():
        enc = MambaDurationEncoder(cfg)
        rows.append({"design": name, "parameters": sum(p.numel() for p in enc.parameters())})
    df = pd.DataFrame(rows)
    df["millions"] = (df["parameters"] / 1e6).round(2)
    if original is not None:
        df["x original"] = (df["parameters"] / df["parameters"].iloc[0]).round(2)
    return df
