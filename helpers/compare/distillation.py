"""Stage-1 quality that cannot flatter: a student DurationEncoder against the LSTM teacher, per voice.

    python -m helpers.compare.distillation --adapter results/distill-cpu/adapter \\
        --sentences data/text/heldout_test.txt --voices af_heart,am_michael,jf_alpha --json out.json

For every sentence of the file and every voice, teacher (the model's own LSTM DurationEncoder) and student
run the same path (helpers.kokoro.forward), batched over sentences, without the decoder:

    within_1_pct       share of tokens whose rounded duration is within 1 frame (25 ms) of the teacher's
    exact_pct          share of tokens with exactly the teacher's duration
    drift_ms, drift_p95_ms   token-boundary drift: |cumulative student edge - cumulative teacher edge| over
                       the inner token edges (helpers.compare.metrics.boundary_errors_ms), mean and 95th pct.
                       A small per-token bias adds up over a sentence: this is the tempo a listener hears.
    f0_rmse_hz         F0 RMSE on frames voiced in both, the student forced onto the teacher's durations
    energy_mae         mean |N_student - N_teacher| (Kokoro's energy curve, same alignment)
    sentences, tokens  how much was measured

The comparison is helpers.compare.scoring's, the one every scorer uses (`prosody_pair` per utterance, `pooled`).

Reported per voice and pooled over voices ("overall"). `BAR` is the workbook's one distillation bar (notebook 05,
README and results/*/README.md cite it): >= 97% within 1 frame, mean drift <= 25 ms, F0 RMSE <= 10 Hz, for every
voice. Report on `data/text/heldout_test.txt` (the default); choices read `heldout_dev.txt`
(helpers.data.text_corpus.heldout_file).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from helpers.argtypes import name_list, new_file_path, whole
from helpers.compare.scoring import ProsodyPair, pooled, prosody_pair
from helpers.data.readers import decode_lines
from helpers.kokoro.forward import (
    duration_logits,
    durations_from_logits,
    encode,
    style_for,
    upstream_features,
)
from helpers.kokoro.g2p import G2PError, phonemes_to_ids, phonemize

BAR = {"within_1_pct": 97.0, "drift_ms": 25.0, "f0_rmse_hz": 10.0}  # >= , <= , <= : the one bar, defined here only


def _phonemized(sentences: list[str]) -> tuple[list[tuple[str, list[int]]], list[dict]]:
    ok, failed = [], []
    for i, text in enumerate(sentences):
        try:
            ps = phonemize(text)
            ok.append((ps, phonemes_to_ids(ps, strict=False)))
        except G2PError as exc:
            failed.append({"line": i + 1, "text": text, "reason": str(exc)})
    return ok, failed


FIELDS = ("within_1_pct", "exact_pct", "drift_ms", "drift_p95_ms", "f0_rmse_hz", "energy_mae", "sentences",
          "tokens")  # fmt: skip


def _summarise(pairs: list[ProsodyPair]) -> dict:
    summary = pooled(pairs)  # helpers.compare.scoring: the one student-vs-reference summary
    return {k: summary[k] for k in FIELDS}


@torch.no_grad()
def evaluate_distillation(
    kokoro,
    student: torch.nn.Module,
    sentences: list[str],
    voices: list[str],
    teacher: torch.nn.Module | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> dict:
    """Student vs teacher on `sentences` for each voice; see the module docstring for the fields.

    `kokoro` is a LoadedKokoro (or anything with `.model` and `.voice(name)`); `teacher` defaults to the
    model's own DurationEncoder, `student` is any module with the DurationEncoder contract.
    """
    model = kokoro.model.eval()
    device = next(model.parameters()).device
    teacher = (teacher if teacher is not None else model.predictor.text_encoder).eval()
    student = student.eval()
    items, failed = _phonemized(list(sentences))
    reasons = "; ".join(f"sentence {f['line']}: {f['reason']}" for f in failed[:3]) + ("; ..." if len(failed) > 3 else "")
    if not items:
        raise ValueError(f"no sentence can be measured ({len(failed)} refused): {reasons}")
    if failed:
        warnings.warn(f"{len(failed)} of {len(sentences)} sentences left out: {reasons}", stacklevel=2)
    order = sorted(range(len(items)), key=lambda i: len(items[i][1]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    packs = {v: kokoro.voice(v) for v in voices}
    per_voice: dict[str, list[ProsodyPair]] = {v: [] for v in voices}
    bar = tqdm(total=len(batches) * len(voices), desc="distillation eval", disable=not progress)
    for idx in batches:
        T = max(len(items[i][1]) for i in idx)
        ids = torch.zeros(len(idx), T, dtype=torch.long)
        for b, i in enumerate(idx):
            ids[b, : len(items[i][1])] = torch.as_tensor(items[i][1])
        lengths = torch.tensor([len(items[i][1]) for i in idx])
        pad = torch.arange(T)[None, :] >= lengths[:, None]  # (B, T) True on padding
        ids, pad = ids.to(device), pad.to(device)
        d_en = upstream_features(model, ids, pad)  # (B, 512, T): voice-independent, shared by all voices
        for v, pack in packs.items():
            ref_s = torch.cat([style_for(pack, len(items[i][0])) for i in idx]).to(device)  # (B, 256)
            s = ref_s[:, 128:]
            d_t = encode(model, d_en, s, lengths, pad, encoder=teacher)  # (B, T, 640)
            d_s = encode(model, d_en, s, lengths, pad, encoder=student)
            dur_t = durations_from_logits(duration_logits(model, d_t, lengths))  # (B, T)
            dur_s = durations_from_logits(duration_logits(model, d_s, lengths))
            for b in range(len(idx)):  # F0/N one utterance at a time (InstanceNorm), the student teacher-forced
                n = int(lengths[b])
                pair = prosody_pair(model, s[b : b + 1], d_s[b, :n], dur_s[b, :n], dur_t[b, :n], ref_d=d_t[b, :n])
                per_voice[v].append(pair)
            bar.update(1)
    bar.close()
    report = {v: _summarise(pairs) for v, pairs in per_voice.items()}
    report["overall"] = _summarise([p for v in voices for p in per_voice[v]])
    meets = {v: all(_meets(r, k) for k in BAR) for v, r in report.items()}
    return {"voices": report, "meets_bar": meets, "bar": BAR, "refused_sentences": failed}


def _meets(row: dict, key: str) -> bool:
    return row[key] >= BAR[key] if key == "within_1_pct" else row[key] <= BAR[key]


def table(result: dict):
    """The per-voice results as a DataFrame (one row per voice, plus 'overall')."""
    import pandas as pd

    df = pd.DataFrame(result["voices"]).T
    df["meets bar"] = [result["meets_bar"][v] for v in df.index]
    return df


def main(argv: list[str] | None = None) -> dict:
    from helpers.kokoro.loading import load_kokoro
    from helpers.transplant.adapters import encoder_from_adapter

    p = argparse.ArgumentParser(prog="python -m helpers.compare.distillation", description=__doc__.split("\n")[0])
    p.add_argument("--adapter", required=True, help="adapter path (with or without .safetensors)")
    p.add_argument("--sentences", default="data/text/heldout_test.txt", help="one sentence per line (default: the test half)")
    p.add_argument("--voices", type=name_list, default=["af_heart", "am_michael", "jf_alpha"],
                   help="comma-separated voice names")  # fmt: skip
    p.add_argument("--weights", default="auto", help="auto | hub | offline-int8")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=whole(1), default=None, help="only the first N sentences")
    p.add_argument("--json", type=new_file_path, default=None, help="write the result here")
    args = p.parse_args(argv)
    path = Path(args.sentences)
    if not path.is_file():
        p.error(f"argument --sentences: sentence file not found: {path}")
    lines = decode_lines(path)  # UTF-8 (BOM skipped) or UTF-16 with a BOM; a binary file fails here, named
    bad = next((ln for ln in lines if ln.text is None), None)
    if bad is not None:
        p.error(f"argument --sentences: {path}:{bad.no}: {bad.error} (one sentence per line, as text)")
    sentences = [ln.text.strip() for ln in lines if ln.text.strip()]
    if not sentences:
        p.error(f"argument --sentences: {path} holds no sentence (one per line)")
    sentences = sentences[: args.limit] if args.limit else sentences
    kokoro = load_kokoro(args.weights, device=args.device)
    student = encoder_from_adapter(args.adapter, device=args.device)
    voices = args.voices
    result = evaluate_distillation(kokoro, student, sentences, voices)
    result.update(adapter=str(args.adapter), sentences_file=str(path), weights=kokoro.source)
    print(table(result).round(2).to_string())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
