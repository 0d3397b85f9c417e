"""BiCfC: a bidirectional liquid (closed-form continuous-time, CfC) layer, exact on right-padded batches.

The third kind of block for the layerwise DurationEncoder (``SurgeryConfig(block="cfc")``, helpers.transplant.
surgery): where the LSTM design has BiLSTM(640 -> 2 x 256) and the Mamba design a BiMamba(640 -> 512), this
one has two CfC cells of 256 units each (forward and backward), read out concatenated: 640 -> 512, the same
widths as the BiLSTM it replaces, so the AdaLayerNorms and the style re-concatenation around it stay as they are.

The cells are ``ncps.torch.CfCCell`` (Hasani et al. 2022, "Closed-form continuous-time neural networks"): they
own the parameters (so an adapter's tensors are CfCCell state), and one step of a cell is

    z      = backbone([x_t ; h])                                   (B, backbone_units)
    f1, f2 = tanh(ff1(z)), tanh(ff2(z))                            (B, units) each
    g      = sigmoid(time_a(z) * ts_t + time_b(z))                 the time-dependent gate
    h      = f1 * (1 - g) + g * f2                                 (mode "default"; "no_gate", "pure" differ)

ncps's own ``CfC`` loop has no lengths and no bidirectional option, and it runs through padding. Here:

* the backward cell reads every sequence reversed *within its own length*, so pads stay at the end
  (`helpers.mamba.bidirectional._reverse_index`, the same reversal as BiMamba);
* a padded step never changes the state (``h = where(valid_t, h_new, h)``) and the outputs are zero on padding,
  so a padded batch gives what each sequence gives alone (tests/transplant/test_cfc.py, 1e-5);
* the loop is ours, not ncps's, for speed on CPU (a Python loop over T cannot be avoided: the state feeds
  back through the nonlinear backbone): the input half of the backbone's first Linear is applied to all
  steps at once before the loop, and both directions advance together through batched matmuls (``bmm`` over
  a leading direction axis of 2). The step is otherwise CfCCell.forward itself; the tests check it against
  CfCCell.forward step by step.

Time spans (``ts``, what makes a CfC continuous-time) - ``timespan``:

* ``"unit"`` (default): every token takes one unit of time, as in a discrete RNN. Tokens are not equally
  long when spoken, but their durations are exactly what the predictor downstream computes from this
  encoder's output: they are not known at its input.
* ``"learned"``: a per-token positive span ``softplus(Linear(x_t))`` (one scalar per token, shared by both
  directions), started at exactly 1 (zero weight, bias log(e - 1)), so the layer can learn to give a
  token more or less "time" from what it is.

Measured (`benchmarks/bench_cfc_timespan.py`, 40 layer-matching steps of batch 16, held-out layer MSE; figures
in benchmarks/README.md): learned 0.2939 vs unit 0.2977 at seed 0, while unit alone moved by as much between
two seeds (0.2977, 0.2939). No difference that this budget can see; the learned spans shrank to ~0.5 (they
mostly rescale time_a, which the cell can learn by itself). So "unit" is the default: as good here, no extra
parameters, and nothing assumed about token durations that the encoder cannot know.
"""

from __future__ import annotations

import math

import torch
from ncps.torch import CfCCell
from torch import nn
from torch.nn import functional as F

from helpers.mamba.bidirectional import _reverse_index, _zero_pads

MODES = ("default", "no_gate", "pure")
TIMESPANS = ("unit", "learned")


class BiCfC(nn.Module):
    """Bidirectional CfC over right-padded batches: forward(x (B, T, d_in), lengths (B,) | None) -> (B, T, 2*units).

    ``cell_fwd`` and ``cell_bwd`` are ncps CfCCells (``mode``, ``backbone_units``, ``backbone_layers``, the
    default LeCun-tanh backbone); the output is [forward states ; backward states], exactly zero on padding.
    """

    def __init__(
        self,
        d_in: int,
        units: int,
        backbone_units: int = 480,
        backbone_layers: int = 1,
        mode: str = "default",
        timespan: str = "unit",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown CfC mode {mode!r}; choose one of {MODES}")
        if timespan not in TIMESPANS:
            raise ValueError(f"unknown time span {timespan!r}; choose one of {TIMESPANS}")
        if backbone_layers < 1:
            raise ValueError(f"backbone_layers must be >= 1, got {backbone_layers} (it projects the input)")
        self.d_in, self.units, self.mode, self.timespan_kind = d_in, units, mode, timespan
        self.d_out = 2 * units
        make = lambda: CfCCell(d_in, units, mode, "lecun_tanh", backbone_units, backbone_layers)
        self.cell_fwd, self.cell_bwd = make(), make()
        if timespan == "learned":
            with torch.random.fork_rng(devices=[]):  # draws nothing: "unit" and "learned" get the same cells
                self.timespan = nn.Linear(d_in, 1)
            nn.init.zeros_(self.timespan.weight)
            nn.init.constant_(self.timespan.bias, math.log(math.e - 1))  # softplus(bias) == 1: unit time
        else:
            self.timespan = None

    # ------------------------------------------------------------------ both cells' weights, stacked (2, ...)

    def _stacked(self, get) -> torch.Tensor:
        return torch.stack([get(self.cell_fwd), get(self.cell_bwd)])

    def _heads(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Output heads as one (2, backbone_units, n*units) weight and (2, 1, n*units) bias: ff1 [ff2 time_a time_b]."""
        names = ("ff1",) if self.mode == "pure" else ("ff1", "ff2", "time_a", "time_b")
        w = self._stacked(lambda c: torch.cat([getattr(c, n).weight for n in names]).t())
        b = self._stacked(lambda c: torch.cat([getattr(c, n).bias for n in names])[None])
        return w, b

    def timespans(self, x: torch.Tensor) -> torch.Tensor | float:
        """ts per token: 1.0 ("unit"), or (..., 1) positive spans softplus(Linear(x)) ("learned")."""
        return 1.0 if self.timespan is None else F.softplus(self.timespan(x))

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, d_in), lengths (B,) valid lengths of right-padded rows (None: all T) -> (B, T, 2*units)."""
        Bsz, T, _ = x.shape
        x, lengths, mask = _zero_pads(x, lengths)
        x_f = x.transpose(0, 1)  # (T, B, d_in)
        if lengths is None:
            idx, x_b = None, x_f.flip(0)
        else:
            idx = _reverse_index(lengths, T).t()[..., None]  # (T, B, 1) reversal within each length
            x_b = torch.gather(x_f, 0, idx.expand(T, Bsz, self.d_in))
        xs = torch.stack([x_f, x_b])  # (2, T, B, d_in): [forward ; backward] reading order
        ts = self.timespans(xs)  # 1.0 or (2, T, B, 1)
        first = [c.backbone[0] for c in (self.cell_fwd, self.cell_bwd)]  # Linear(d_in + units -> bu)
        w_in = torch.stack([f.weight[:, : self.d_in].t() for f in first])  # (2, d_in, bu)
        w_rec = torch.stack([f.weight[:, self.d_in :].t() for f in first])  # (2, units, bu)
        b_in = torch.stack([f.bias for f in first])[:, None]  # (2, 1, bu)
        pre = torch.baddbmm(b_in, xs.reshape(2, T * Bsz, self.d_in), w_in)  # (2, T*B, bu): all steps at once
        pre = pre.reshape(2, T, Bsz, -1)  # (2, T, B, bu)
        ys = self._loop(pre, w_rec, ts, mask)  # (2, T, B, units)
        y_f, y_b = ys[0], ys[1]
        # the backward states back in reading order
        y_b = y_b.flip(0) if idx is None else torch.gather(y_b, 0, idx.expand(T, Bsz, self.units))
        out = torch.cat([y_f, y_b], dim=-1).transpose(0, 1)  # (B, T, 2*units)
        if mask is not None:
            out = torch.where(mask[..., None], out, out.new_zeros(()))
        return out.contiguous()

    def _loop(
        self, pre: torch.Tensor, w_rec: torch.Tensor, ts: torch.Tensor | float, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """The recurrence of both cells at once: pre (2, T, B, bu) -> states (2, T, B, units)."""
        _, T, Bsz, _ = pre.shape
        act = self.cell_fwd.backbone[1]  # the backbone's activation (LeCun tanh), the same in both cells
        deeper = [  # backbone layers after the first: (weight (2, bu, bu), bias (2, 1, bu)) each
            (self._stacked(lambda c, i=i: c.backbone[i].weight.t()), self._stacked(lambda c, i=i: c.backbone[i].bias[None]))
            for i, m in enumerate(self.cell_fwd.backbone)
            if i > 0 and isinstance(m, nn.Linear)
        ]  # fmt: skip
        w_head, b_head = self._heads()  # (2, bu, n*units), (2, 1, n*units)
        w_head, w_rec = w_head.contiguous(), w_rec.contiguous()
        if self.mode == "pure":
            A, w_tau = self._stacked(lambda c: c.A), self._stacked(lambda c: c.w_tau.abs())  # (2, 1, units)
        valid = None if mask is None else mask.t()[None, :, :, None]  # (1, T, B, 1)
        h = pre.new_zeros(2, Bsz, self.units)  # (2, B, units)
        outs = []
        for t in range(T):
            z = act(torch.baddbmm(pre[:, t], h, w_rec))  # (2, B, bu)
            for w, b in deeper:
                z = act(torch.baddbmm(b, z, w))
            g = torch.baddbmm(b_head, z, w_head)  # (2, B, n*units)
            ts_t = ts if isinstance(ts, float) else ts[:, t]  # 1.0 or (2, B, 1)
            if self.mode == "pure":
                h_new = -A * torch.exp(-ts_t * (w_tau + g.abs())) * g + A
            else:
                ff, t_ab = g.split(2 * self.units, dim=-1)  # (2, B, 2*units) each
                (ff1, ff2), (t_a, t_b) = torch.tanh(ff).chunk(2, -1), t_ab.chunk(2, -1)
                gate = torch.sigmoid(t_a * ts_t + t_b)  # (2, B, units)
                h_new = ff1 + gate * ff2 if self.mode == "no_gate" else ff1 * (1.0 - gate) + gate * ff2
            h = h_new if valid is None else torch.where(valid[:, t], h_new, h)  # pads leave the state alone
            outs.append(h_new)
        return torch.stack(outs, dim=1)  # (2, T, B, units)

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, units={self.units} x 2, mode={self.mode}, timespan={self.timespan_kind}"
