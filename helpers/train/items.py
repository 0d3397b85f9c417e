"""Training items and batches: one utterance per `TrainItem`, length-bucketed, right-padded batches, and
which parts of a batch each loss reads (`prosody_mask`: the tokens whose recorded durations are prosody;
`draw_prosody_items`: the utterances that get the F0/N and decoder passes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from helpers.kokoro.forward import style_for
from helpers.kokoro.g2p import spoken_tokens

# --------------------------------------------------------------------------------------------------------
# Data: items, batches, length buckets
# --------------------------------------------------------------------------------------------------------


@dataclass
class TrainItem:
    """One utterance. Stage 1 needs ids and style; stage 2 also the recording's targets."""

    id: str
    token_ids: np.ndarray  # (T,) int, BOS/EOS included
    style: np.ndarray  # (256,) ref_s: [:128] timbre, [128:] prosody
    durations: np.ndarray | None = None  # (T,) 25 ms frames, sum = F
    f0: np.ndarray | None = None  # (2F,) Hz, 0 = unvoiced
    energy: np.ndarray | None = None  # (2F,)
    mel: np.ndarray | None = None  # (80, 2F) normalised log-mel
    n_phonemes: int | None = None  # characters of the phoneme string: picks the style row of a voice pack

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def style_row(self) -> int:
        """The phoneme count a voice pack's row is picked by: n_phonemes, else the tokens between BOS and EOS."""
        return self.n_phonemes if self.n_phonemes is not None else max(len(self) - 2, 1)


def bucketed_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-bucketed batches: similar lengths together (little padding), order random but reproducible."""
    g = np.random.default_rng([seed, epoch])
    jitter = g.random(len(lengths))
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], jitter[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    g.shuffle(batches)
    return batches


def as_train_items(objs) -> list[TrainItem]:
    """Notebook 04's TextItem / ItemTargets (or anything with the same fields) -> TrainItems; TrainItems pass."""
    get = lambda o, k: None if getattr(o, k, None) is None else np.asarray(getattr(o, k))
    return [
        o
        if isinstance(o, TrainItem)
        else TrainItem(
            o.id,
            get(o, "token_ids"),
            get(o, "style").reshape(-1).astype(np.float32),
            get(o, "durations"),
            get(o, "f0"),
            get(o, "energy"),
            get(o, "mel"),
            len(o.phonemes) if getattr(o, "phonemes", None) else None,
        )
        for o in objs
    ]


@dataclass
class Batch:
    ids: torch.Tensor  # (B, T) long, 0-padded
    lengths: torch.Tensor  # (B,)
    pad: torch.Tensor  # (B, T) bool, True on padding
    ref_s: torch.Tensor  # (B, 256)
    items: list[TrainItem] = field(repr=False)
    d_en: torch.Tensor | None = None  # (B, 512, T) frozen upstream features

    def to(self, device) -> Batch:
        move = lambda t: None if t is None else t.to(device)
        return Batch(
            move(self.ids), self.lengths, move(self.pad), move(self.ref_s), self.items, move(self.d_en)
        )


def collate(items: list[TrainItem]) -> Batch:
    T = max(len(it) for it in items)
    ids = torch.zeros(len(items), T, dtype=torch.long)
    for b, it in enumerate(items):
        ids[b, : len(it)] = torch.as_tensor(it.token_ids, dtype=torch.long)
    lengths = torch.tensor([len(it) for it in items])
    pad = torch.arange(T)[None, :] >= lengths[:, None]
    ref_s = torch.stack([torch.as_tensor(it.style, dtype=torch.float32).reshape(-1) for it in items])
    return Batch(ids, lengths, pad, ref_s, items)


def restyle(batch: Batch, voice_bank: dict[str, torch.Tensor], rng: np.random.Generator) -> list[str]:
    """Give every utterance of `batch` the style row of a voice pack drawn from `voice_bank` (in place).

    Distilling across voices teaches the student the style conditioning the LSTM reads; the draw comes from
    `rng` (seeded by the step, so a resumed run draws the same voices). Returns the voices drawn.
    """
    names = sorted(voice_bank)
    drawn = [names[int(i)] for i in rng.integers(0, len(names), len(batch.items))]
    rows = []
    for it, name in zip(batch.items, drawn):
        rows.append(style_for(voice_bank[name], it.style_row).reshape(-1))
    batch.ref_s = torch.stack(rows).to(batch.ref_s)  # (B, 256)
    return drawn


def target_durations(batch: Batch) -> torch.Tensor:
    """(B, T) long: the recordings' target durations (25 ms frames), 0 on padding."""
    dur = torch.zeros_like(batch.ids)
    for b, it in enumerate(batch.items):
        dur[b, : len(it)] = torch.as_tensor(it.durations)
    return dur


def prosody_mask(batch: Batch) -> torch.Tensor:
    """(B, T) bool: the tokens whose recorded durations the stage-2 duration loss may read.

    False on padding, BOS, EOS and the punctuation/spaces next to them (`helpers.kokoro.g2p.spoken_tokens`):
    their target durations are the recording's leading and trailing silences, which no text predicts.
    """
    mask = torch.zeros(batch.ids.shape, dtype=torch.bool)
    for b, it in enumerate(batch.items):
        mask[b, : len(it)] = torch.from_numpy(spoken_tokens(it.token_ids))
    return mask.to(batch.ids.device)


def draw_prosody_items(n_items: int, k: int, seed: int, step: int) -> list[int]:
    """Which k utterances of a batch of n_items get the (B=1) F0/N passes, in the order drawn; the trainer
    sends the first `mel_items` of them through the decoder too.

    Drawn without replacement from a generator seeded by (seed, step), so every utterance gets its turn and
    a resumed run draws the same ones (its stream differs from `restyle`'s, which is seeded by (seed, step)).
    """
    g = np.random.default_rng([seed, step, 1])
    return [int(i) for i in g.permutation(n_items)[: max(0, min(k, n_items))]]
