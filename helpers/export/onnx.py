"""Export the operated Kokoro (LSTM or an adapter's Mamba/CfC DurationEncoder) to ONNX, and run it.

    python -m helpers.export.onnx --adapter results/distill-cpu/adapter --out kokoro-mamba.onnx
    python -m helpers.export.onnx --adapter none --out kokoro-lstm.onnx

The graph takes what Kokoro's own ONNX exports take, so runtimes built for those (kokoro-onnx and the like)
can load it:

    input_ids (1, T) int64   token ids with BOS/EOS (0) at both ends, T <= 512 (dynamic)
    style     (1, 256) float32   the voice pack row for T - 2 phonemes (`helpers.kokoro.forward.style_for`)
    speed     (1,) float32
    -> waveform (600 F,) float32 at 24 kHz, durations (T,) int64 frames of 25 ms (F = their sum)

What had to change for the export, and nothing else:
* the selective scan runs as one ONNX Loop (`helpers.mamba.scan_loop`), not a trace unrolled to one length;
* the decoder's complex inverse STFT becomes real transposed convolutions (`RealISTFT`; ONNX has no
  complex tensors), swapped in for the export only;
* the path is the one of `helpers.kokoro.forward` for one utterance, with the predictor LSTM run unpacked
  (exact at B = 1) and the decoder's noise drawn by the runtime (so audio matches PyTorch's in spectrum,
  not sample for sample: `tests/export/test_onnx.py` states the bounds).

The TorchScript exporter (`dynamo=False`) is used: it turns the scripted scan into a Loop. It is deprecated
in recent torch and prints warnings; the export is still checked end to end by the test.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.grid import SAMPLE_RATE
from helpers.kokoro.forward import STYLE_DIM, alignment_from_durations, decode, f0_energy, upstream_features

INPUTS = ("input_ids", "style", "speed")
OUTPUTS = ("waveform", "durations")
OPSET = 17


class KokoroForExport(nn.Module):
    """One utterance, tensors in and out: (input_ids (1, T), style (1, 256), speed (1,)) -> audio, durations."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, style: torch.Tensor, speed: torch.Tensor):
        m = self.model
        pad = torch.zeros_like(input_ids, dtype=torch.bool)  # (1, T): one utterance, no padding
        lengths = pad.shape[1] * torch.ones(1, dtype=torch.long)  # (1,)
        d_en = upstream_features(m, input_ids, pad)  # (1, 512, T)
        s = style[:, STYLE_DIM:]  # (1, 128) prosody style
        d = m.predictor.text_encoder(d_en, s, lengths, pad)  # (1, T, 640)
        x, _ = m.predictor.lstm(d)  # (1, T, 512); unpacked = packed at B = 1
        logits = m.predictor.duration_proj(x)  # (1, T, 50)
        dur = torch.round(torch.sigmoid(logits).sum(-1) / speed).clamp(min=1).long()[0]  # (T,)
        f0, n = f0_energy(m, d[0], dur, s)  # (2F,) each
        aln = alignment_from_durations(dur)  # (T, F)
        audio = decode(m, input_ids[0], aln, f0, n, style[:, :STYLE_DIM], seed=None)  # noise from the runtime
        return audio, dur  # (600 F,), (T,)


class RealISTFT(nn.Module):
    """Kokoro's `TorchSTFT` (torch.stft / torch.istft, center=True, one-sided) with real tensors only: what
    ONNX can hold. Kokoro's decoder analyses its harmonic source with `transform` and ends in `inverse`.

    transform: reflect-pad by n_fft/2, one strided convolution with the windowed DFT basis (cos, -sin) per
    bin, then magnitude and atan2 phase: x (B, S) -> (B, bins, frames) twice.
    inverse: each frame's inverse real DFT times the window is one transposed convolution over (real, imag),
    and the overlap-add is divided by the summed squared window, as torch.istft does:
    magnitude, phase (B, bins, frames) -> (B, 1, hop (frames - 1)). (Kokoro's own `CustomSTFT` skips that
    normalisation and the one-sided bin weights: its audio is 3 dB MCD off torch's, so it is not used.)
    """

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor):
        super().__init__()
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        weight = torch.full_like(k, 2.0)
        weight[0] = weight[-1] = 1.0  # DC and Nyquist once; their imaginary parts do not count
        ang = 2 * torch.pi * k * n / n_fft  # (bins, n_fft)
        win = window.double()
        imag = -weight * torch.sin(ang) / n_fft * win
        imag[0] = imag[-1] = 0.0
        self.register_buffer("basis_re", (weight * torch.cos(ang) / n_fft * win).float()[:, None, :])  # (bins, 1, n)
        self.register_buffer("basis_im", imag.float()[:, None, :])
        self.register_buffer("win_sq", (win**2).float().reshape(1, 1, -1))  # (1, 1, n)
        fwd_im = -torch.sin(ang) * win
        fwd_im[0] = fwd_im[-1] = 0.0  # exactly 0, as an FFT gives (sin(pi n) ~ 1e-16 would flip the phase)
        fwd = torch.cat([torch.cos(ang) * win, fwd_im])  # (2 bins, n): real, then imag rows
        self.register_buffer("basis_fwd", fwd.float()[:, None, :])  # (2 bins, 1, n)
        self.n_fft, self.hop = n_fft, hop

    def transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.n_fft // 2
        x = F.pad(x.unsqueeze(1), (half, half), mode="reflect")  # (B, 1, S + n_fft)
        re, im = F.conv1d(x, self.basis_fwd, stride=self.hop).chunk(2, dim=1)  # (B, bins, frames) each
        # torch.angle: pi where the imaginary part is 0 and the real one negative (the DC and Nyquist bins,
        # whose -0.0 from a convolution would give -pi), 0 at 0 + 0j (ONNX's atan2 gives NaN there)
        phase = torch.where(im == 0, (re < 0).to(re.dtype) * torch.pi, torch.atan2(im, re))
        return torch.sqrt(re * re + im * im), phase

    def inverse(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose1d(magnitude * torch.cos(phase), self.basis_re, stride=self.hop)
        y = y + F.conv_transpose1d(magnitude * torch.sin(phase), self.basis_im, stride=self.hop)  # (B, 1, S)
        env = F.conv_transpose1d(torch.ones_like(magnitude[:, :1]), self.win_sq, stride=self.hop)  # (1, 1, S)
        half = self.n_fft // 2
        return (y / env.clamp(min=1e-11))[..., half:-half]


@contextlib.contextmanager
def real_istft(model: nn.Module):
    """While exporting: the decoder's complex inverse STFT as `RealISTFT` (restored afterwards)."""
    gen = model.decoder.generator
    old = gen.stft
    gen.stft = RealISTFT(old.filter_length, old.hop_length, old.window).to(next(model.parameters()).device)
    try:
        yield
    finally:
        gen.stft = old


def example_inputs(model: nn.Module, n_tokens: int = 32):
    """Example (input_ids, style, speed) for tracing; the traced length is not baked in (dynamic axes)."""
    vocab = sorted(set(getattr(model, "vocab", {}).values())) or list(range(1, 100))
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor(vocab)[torch.randint(len(vocab), (n_tokens - 2,), generator=g)]
    ids = torch.cat([torch.zeros(1, dtype=torch.long), ids, torch.zeros(1, dtype=torch.long)]).reshape(1, -1)
    return ids, torch.randn(1, 256, generator=g) * 0.1, torch.ones(1)


def export_onnx(kokoro, path: str | Path, overwrite: bool = False, opset: int = OPSET) -> Path:
    """Write the model (a LoadedKokoro or KModel, operated or not) to `path` as ONNX; returns the path.

    An existing file is refused unless `overwrite=True`. The graph is checked by onnx's checker.
    """
    import onnx

    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"--out must end in .onnx, got {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists: choose another name, or pass overwrite=True to replace it")
    model = getattr(kokoro, "model", kokoro).float().eval().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    wrapper = KokoroForExport(model).eval()
    with real_istft(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            wrapper,
            example_inputs(model),
            str(tmp),
            dynamo=False,
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_axes={"input_ids": {1: "tokens"}, "waveform": {0: "samples"}, "durations": {0: "tokens"}},
            opset_version=opset,
        )
    onnx.checker.check_model(str(tmp))
    tmp.replace(path)
    return path


def loop_ops(path: str | Path) -> int:
    """How many ONNX Loop ops the graph holds (one per scan: the sequence length is not baked in)."""
    import onnx

    return sum(n.op_type == "Loop" for n in onnx.load(str(path), load_external_data=False).graph.node)


class OnnxKokoro:
    """An exported model in onnxruntime (CPU): `run(ids, style, speed)` -> (audio (samples,), durations (T,))."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path} (python -m helpers.export.onnx makes one)")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(self, ids, style, speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, dtype=np.int64).reshape(1, -1)
        style = np.asarray(style, dtype=np.float32).reshape(1, 256)
        audio, dur = self.session.run(
            list(OUTPUTS), {"input_ids": ids, "style": style, "speed": np.array([speed], dtype=np.float32)}
        )
        return audio, dur

    def synthesize(self, text: str, voice: torch.Tensor, speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """English text and a voice pack [510, 1, 256] -> (audio at 24 kHz, durations)."""
        from helpers.kokoro.forward import style_for
        from helpers.kokoro.g2p import phonemes_to_ids, phonemize

        phonemes = phonemize(text)
        ids = phonemes_to_ids(phonemes, strict=False)
        return self.run(ids, style_for(voice, len(phonemes)).numpy(), speed)


def main(argv: list[str] | None = None) -> int:
    from helpers.speak.model import add_model_args, model_from_args

    p = argparse.ArgumentParser(prog="python -m helpers.export.onnx", description=__doc__.split("\n\n")[0])
    add_model_args(p)
    p.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    args = p.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        p.error(f"{args.out} already exists: choose another --out, or pass --overwrite to replace it")
    try:
        kk = model_from_args(args, device="cpu")
        path = export_onnx(kk, args.out, overwrite=args.overwrite)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB, {loop_ops(path)} scan loops; {kk.note}); "
          f"{SAMPLE_RATE} Hz audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
