"""The training losses, all masked to valid (non-padding) positions.

Stage 1, distillation (teacher = the original LSTM DurationEncoder, student = the Mamba one):
    feature   L1 between student and teacher DurationEncoder outputs (first 512 channels; the rest is style)
    duration  L1 between summed sigmoids (the continuous durations, in frames), plus the BCE form:
              each of the 50 duration logits against the teacher's probability (StyleTTS2's "CE" term)
    drift     L1 between the *cumulative* continuous durations (token edges, in frames): a bias of a tenth
              of a frame per token is invisible to the per-token terms but moves the 40th edge by 4 frames
    F0, N     smooth-L1 / 10 on F0 (Hz) and L1 on energy, both on the teacher's alignment
Stage 2, fine-tuning on recordings: the same duration/F0/N terms against the dataset targets (durations
from notebook 04's DTW, pYIN F0, log-norm energy) plus the original plan's L1 on log-mel spectrograms of
generated vs real audio (`cropped_mel_loss`: valid because the alignment is teacher-forced from the target
durations). Only what the text can predict is compared: the
duration loss skips BOS/EOS and the punctuation next to them (helpers.train.items.prosody_mask: their
durations are the recording's silences), and the F0 loss the frames pYIN calls unvoiced (F0 = 0 there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from helpers.data.features import torch_log_mel
from helpers.kokoro.forward import alignment_from_durations, decode


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over positions where mask is True (mask broadcastable to x)."""
    mask = mask.to(x.dtype).expand_as(x)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def feature_loss(d_student: torch.Tensor, d_teacher: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """L1 on DurationEncoder outputs (B, T, 640); only the first 512 channels carry learned features."""
    return masked_mean((d_student[..., :512] - d_teacher[..., :512]).abs(), valid.unsqueeze(-1))


def duration_targets(durations: torch.Tensor, max_dur: int = 50) -> torch.Tensor:
    """Integer durations (B, T) -> StyleTTS2's binary targets (B, T, max_dur): the first k entries are 1."""
    steps = torch.arange(max_dur, device=durations.device)
    return (steps[None, None, :] < durations.unsqueeze(-1)).float()


def duration_loss(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 on summed sigmoids, BCE per logit). `target` is (B, T, 50) probabilities or binary targets."""
    l1 = masked_mean((torch.sigmoid(logits).sum(-1) - target.sum(-1)).abs(), valid)
    bce = masked_mean(
        F.binary_cross_entropy_with_logits(logits, target, reduction="none"), valid.unsqueeze(-1)
    )
    return l1, bce


def cumulative_duration_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean |edge_student - edge_teacher| in frames over valid tokens; edges = cumsum of continuous durations.

    logits (B, T, 50), target (B, T, 50) probabilities or binary targets, valid (B, T). Padding adds nothing
    to the cumulative sums (it sits after the last valid token and is zeroed anyway).
    """
    keep = valid.to(logits.dtype)  # (B, T)
    edges_s = (torch.sigmoid(logits).sum(-1) * keep).cumsum(-1)  # (B, T)
    edges_t = (target.sum(-1) * keep).cumsum(-1)  # (B, T)
    return masked_mean((edges_s - edges_t).abs(), valid)


def f0_loss(pred: torch.Tensor, target: torch.Tensor, voiced: torch.Tensor | None = None) -> torch.Tensor:
    """Smooth-L1 on F0 in Hz, divided by 10 (StyleTTS2's scaling), over all frames or only the `voiced` ones
    (stage 2: pYIN's 0 on an unvoiced frame is no pitch to imitate; the teacher's F0 in stage 1 has none)."""
    err = F.smooth_l1_loss(pred, target, reduction="none")  # (2F,)
    return (err.mean() if voiced is None else masked_mean(err, voiced)) / 10.0


def energy_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target)


def mel_loss(audio: torch.Tensor, target_mel: torch.Tensor) -> torch.Tensor:
    """L1 between the log-mel of generated audio and the target log-mel (same grid, same normalisation)."""
    return F.l1_loss(torch_log_mel(audio), target_mel)


def cropped_mel_loss(
    model,
    mel,
    ids: torch.Tensor,
    ref_s: torch.Tensor,
    f0: torch.Tensor,
    n_curve: torch.Tensor,
    durations: torch.Tensor,
    crop_frames: int,
) -> torch.Tensor:
    """The decoder on a random crop of W <= crop_frames frames (alignment teacher-forced from `durations`)
    vs the recording's log-mel `mel` (80, 2F) array. ids (T,), ref_s (1, 256), f0/n_curve (2F,), durations (T,).
    The crop start comes from torch's (checkpointed) RNG."""
    F_ = int(durations.sum())
    W = min(crop_frames, F_)
    a = int(torch.randint(0, F_ - W + 1, (1,)))
    aln = alignment_from_durations(durations)  # (T, F)
    audio = decode(model, ids, aln, f0, n_curve, ref_s[:, :128], seed=None, crop=(a, a + W))  # (600 W,)
    target = torch.as_tensor(mel[:, 2 * a : 2 * (a + W)], device=ids.device)  # (80, 2W)
    return mel_loss(audio.reshape(-1), target)
