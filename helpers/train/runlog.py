"""What a run leaves behind: one CSV row per logged step (metrics.csv), TensorBoard when it is installed,
and listening samples (samples/*.wav).

Only rank 0 writes when training runs under torchrun (see helpers.train.cli).
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

FIELDS = [
    "step",
    "loss",
    "layer",
    "chained",
    "feature",
    "dur_l1",
    "dur_bce",
    "dur_cum",
    "f0",
    "energy",
    "mel",
    "grad_norm",
    "lr",
    "skipped",
    "val_dur_within_1",
    "val_boundary_ms",
    "val_boundary_tempo_ms",
    "val_f0_rmse_hz",
    "sec_per_step",
]


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) under torch.distributed, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class RunLog:
    """Appends rows to `out/metrics.csv` (and TensorBoard scalars under `out/tensorboard`)."""

    def __init__(self, out: Path):
        self.path = Path(out) / "metrics.csv"
        self.out = Path(out)
        self._tb = None

    def _header(self) -> list[str]:
        with open(self.path, newline="") as f:
            return next(csv.reader(f), None) or FIELDS

    def write(self, row: dict) -> None:
        if rank_and_world()[0] != 0:
            return
        new = not self.path.exists()
        fields = FIELDS if new else self._header()  # a run resumed by newer code keeps its file's columns
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tensorboard"))
            except Exception:
                self._tb = False
        if self._tb:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, row["step"])


@torch.no_grad()
def write_samples(model, teacher, text: str, voice_pack: torch.Tensor, out_dir: Path, name: str) -> dict[str, Path]:
    """`text` spoken by the student (as `name`) and, once per run, by the teacher; seeded, global RNG untouched."""
    import soundfile as sf

    from helpers.grid import SAMPLE_RATE
    from helpers.kokoro.forward import style_for, synthesize_ids
    from helpers.kokoro.g2p import phonemes_to_ids, phonemize

    ps = phonemize(text)
    ids, ref_s = phonemes_to_ids(ps, strict=False), style_for(voice_pack, len(ps))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    teacher_path = out_dir / "teacher.wav"
    if teacher is not None and not teacher_path.exists():
        audio = synthesize_ids(model, ids, ref_s, seed=0, encoder=teacher)["audio"]
        sf.write(teacher_path, audio.float().cpu().numpy(), SAMPLE_RATE)
    if teacher_path.exists():
        paths["teacher"] = teacher_path
    path = out_dir / name
    sf.write(path, synthesize_ids(model, ids, ref_s, seed=0)["audio"].float().cpu().numpy(), SAMPLE_RATE)
    paths["student"] = path
    return paths
