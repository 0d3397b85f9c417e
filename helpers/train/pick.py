"""Which stage-1 adapter stage 2 starts from: the best on the dev half of the held-out sentences, and why.

    pick = pick_stage1(kokoro, S)          # kokoro: Kokoro as shipped (its LSTM DurationEncoder is the teacher)
    finetune(kokoro, data, pack, cfg, "mamba", init=pick.adapter, out=..., start_choice=pick.record())

The candidates (`stage1_candidates`) are your own stage-1 adapters of the block (every ``adapter`` under
`runs_root()` whose JSON says stage "distill": notebook 05's, `python -m helpers.train --stage distill`'s and
`python -m helpers.train.recipe`'s; untrained fixtures and the recipe's per-milestone snapshots are not) and the one
shipped with the workbook (`SHIPPED_ADAPTERS`). Each is scored against the LSTM teacher by
`helpers.compare.distillation.evaluate_distillation`, the scorer the recipe chooses its milestones with, on the
dev half (`data/text/heldout_dev.txt`; CI mode: its first `recipe.CI_HELDOUT` sentences) for the recipe's
evaluation voices; the one with the smallest overall token-boundary drift (`RULE`, the recipe's own) is picked.
No choice reads the test half. Notebook 05's stage 2 and `python -m helpers.train --stage finetune` both call it,
and the stage-2 adapter's JSON records the pick (`init_choice`: every candidate's figures, the rule, the winner);
notebook 06 then reads the start back from that JSON (`helpers.compare.systems.stage1_of`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

RULE = "the smallest overall token-boundary drift on the dev half (the recipe's milestone rule)"


@dataclasses.dataclass
class Stage1Pick:
    """The adapter picked, why, and every candidate's dev-half figures (or why it was skipped)."""

    adapter: Path
    why: str
    scores: dict[str, dict]  # candidate path -> {"within_1_pct", "drift_ms", "f0_rmse_hz", ...} or {"skipped": why}
    sentences: str = ""

    def record(self) -> dict:
        """What the stage-2 adapter's JSON keeps as ``init_choice``."""
        return {"adapter": str(self.adapter), "why": self.why, "rule": RULE, "sentences": self.sentences,
                "candidates": self.scores}  # fmt: skip


def stage1_candidates(kind: str = "mamba", runs: str | Path | None = None) -> list[Path]:
    """Your stage-1 adapters of block `kind` under `runs` (default runs_root()), newest first, then the shipped one."""
    from helpers.settings import runs_root
    from helpers.transplant.adapters import SHIPPED_ADAPTERS, adapter_block, adapter_info, adapter_paths

    runs = Path(runs) if runs is not None else runs_root()
    own = []
    for js in runs.rglob("adapter.json") if runs.is_dir() else []:
        try:
            info = adapter_info(js)
        except (OSError, ValueError):
            continue
        meta = info.get("metadata", {})
        if adapter_block(info) == kind and meta.get("stage") == "distill" and not meta.get("fixture"):
            own.append(js.with_suffix(""))
    own.sort(key=lambda p: adapter_paths(p)[0].stat().st_mtime, reverse=True)
    shipped = SHIPPED_ADAPTERS[kind]
    return own + ([shipped] if adapter_paths(shipped)[1].is_file() else [])


def pick_stage1(kokoro, settings=None, kind: str = "mamba", candidates=None, sentences: list[str] | None = None,
                voices=None) -> Stage1Pick:  # fmt: skip
    """Score `candidates` (default `stage1_candidates(kind)`) on the dev half with Kokoro's LSTM as the teacher and
    pick the one `RULE` prefers (module docstring). `kokoro` must hold Kokoro's own DurationEncoder."""
    from helpers.compare.distillation import evaluate_distillation
    from helpers.data.corpus import load_sentences
    from helpers.data.text_corpus import heldout_file
    from helpers.settings import Settings
    from helpers.train.recipe import CI_HELDOUT, EVAL_VOICES
    from helpers.transplant.adapters import encoder_from_adapter
    from helpers.transplant.peft import student_kind

    if student_kind(kokoro.model) != "lstm":
        raise ValueError("pick_stage1 scores against Kokoro's own LSTM DurationEncoder: pass the un-operated model")
    S = settings or Settings.from_env()
    candidates = list(candidates) if candidates is not None else stage1_candidates(kind)
    if not candidates:
        raise FileNotFoundError(f"no stage-1 {kind} adapter to start from: train stage 1 first (notebook 05)")
    half = heldout_file("dev", S.data_dir)
    if sentences is None:
        sentences = load_sentences(half)[: CI_HELDOUT if S.is_ci else None]
    voices = list(voices or EVAL_VOICES)
    device = next(kokoro.model.parameters()).device
    scores: dict[str, dict] = {}
    for path in candidates:
        try:
            student = encoder_from_adapter(path, device)
        except (OSError, ValueError, KeyError) as e:
            scores[str(path)] = {"skipped": f"{type(e).__name__}: {str(e)[:200]}"}
            continue
        r = evaluate_distillation(kokoro, student, sentences, voices, progress=False)
        scores[str(path)] = {k: r["voices"]["overall"][k] for k in ("within_1_pct", "drift_ms", "f0_rmse_hz")}
    scored = [p for p in candidates if "drift_ms" in scores[str(p)]]
    if not scored:
        raise ValueError(f"none of the stage-1 adapters loads: {scores}")
    best = min(scored, key=lambda p: scores[str(p)]["drift_ms"])
    s = scores[str(best)]
    why = (f"the best of {len(scored)} stage-1 adapter(s) on {len(sentences)} dev-half sentences x {len(voices)} voices "
           f"(drift {s['drift_ms']:.1f} ms, {s['within_1_pct']:.1f}% within one frame, F0 RMSE {s['f0_rmse_hz']:.1f} Hz)")  # fmt: skip
    return Stage1Pick(Path(best), why, scores, f"{half.name} [{len(sentences)}] x {','.join(voices)}")
