"""Is a fitted voice closer to the reader than a stock one? Held-out MCD and F0 RMSE, leave one clip out.

How the pieces fit (the fitting itself, `helpers.train.fit_voice`, is passed in as `fit`: compare does not
import train; `python -m helpers.train.voice_loo` wires the two together):

    score_pack(kokoro, item, pack)     one held-out clip, one pack [510, 1, 256] -> {mcd_db, f0_rmse_hz, ...}
        the clip's phonemes spoken with the pack on the clip's target durations (teacher-forced: the timing
        is the recording's, only timbre and pitch differ); F0 and energy from the model's own predictor
        with that pack. MCD (dB, c1..c24, DTW, band limited to the recording's bandwidth) of the synthesis
        vs the recording's audio; F0 RMSE (Hz) of the predicted F0 vs the clip's pYIN F0 on the frames
        voiced in both (both on the 12.5 ms grid: 2F frames for F duration frames).
    side_by_side(kokoro, item, packs)  players (the recording, then each pack) and their scores (notebook 04)
    loo_folds(ids)                     one Fold per clip: test = that clip, dev = the next clip (cyclic, for
                                       fit_voice's early stopping), train = the rest; needs >= 3 clips
    leave_one_out_table(kokoro, items, fit, reference, voices)
                                       per fold: fit(train, dev) -> (pack, info), timed; then the fitted
                                       pack and every stock pack scored on the test clip only
    summarize(scores, folds, reference)  the per-fold table (fitted / nearest stock / best stock) and the
                                       summary: means, n, 95% paired t-intervals (helpers.compare.stats)

"Nearest stock" is the dataset's reference voice (nearest in F0 register, notebook 04). "Best stock" is the
stock pack with the lowest mean MCD over all folds, chosen *after* seeing the held-out clips: an oracle
choice that favours the stock side. Caveat: each clip's target durations (and so the teacher-forced timing
of every system) were found by DTW against the reference voice's synthesis; all systems share them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.compare import metrics as M
from helpers.compare.ab import match_loudness
from helpers.compare.stats import compare_paired
from helpers.grid import SAMPLE_RATE
from helpers.kokoro.synth import synthesize

METRIC_COLUMNS = {"mcd_db": "MCD (dB)", "f0_rmse_hz": "F0 RMSE (Hz)"}
MIN_CLIPS = 3  # a fold needs a test clip, an early-stopping clip and at least one clip to fit on


def spoken(kokoro, item, pack, seed: int = 0):
    """The clip's phonemes spoken with `pack` (a pack [510, 1, 256] or a name) on the clip's durations (T,):
    a Synthesis whose audio (600 F,) and F0 (2F,) share the recording's grid."""
    return synthesize(kokoro, phonemes=item.phonemes, voice=pack, durations=np.asarray(item.durations), seed=seed)


def score_pack(kokoro, item, pack, seed: int = 0, synthesis=None) -> dict[str, float]:
    """One pack on one recorded clip: {mcd_db, f0_rmse_hz, f0_shape_rmse_hz, voicing_err_pct}.

    `item`: a prepared clip (helpers.data.targets.ItemTargets or alike) with phonemes, durations (T,),
    f0 (2F,) Hz (0 = unvoiced) and audio (600 F,) at 24 kHz (prepare_dataset's store_audio=True).
    `pack`: a voice pack [510, 1, 256] or a stock pack's name. Deterministic for a given seed.
    `synthesis`: `spoken(kokoro, item, pack, seed)` when already at hand.
    """
    if getattr(item, "audio", None) is None:
        raise ValueError(f"{item.id}: no audio stored with the targets: prepare with PrepareConfig(store_audio=True)")
    syn = synthesis if synthesis is not None else spoken(kokoro, item, pack, seed)
    audio = np.asarray(item.audio, dtype=np.float32)  # (600 F,)
    fmax = M.effective_bandwidth(audio)  # the recording's band (a 16 kHz source has nothing above 8 kHz)
    return {"mcd_db": M.mcd(syn.audio, audio, fmax=fmax), **M.f0_errors(syn.f0, item.f0)}  # f0: (2F,) each


def side_by_side(kokoro, item, packs: dict, seed: int = 0) -> tuple[str, pd.DataFrame]:
    """(HTML, scores) for listening: the recording, then each of `packs` (name -> pack) on the clip's
    durations, one player each in a row (loudness-matched); and one score_pack row per pack."""
    import html

    from IPython.display import Audio

    syns = {name: spoken(kokoro, item, pack, seed) for name, pack in packs.items()}
    scores = pd.DataFrame([{"clip": item.id, "voice": name, **score_pack(kokoro, item, None, seed, syn)}
                           for name, syn in syns.items()])  # fmt: skip
    audio, _ = match_loudness(np.asarray(item.audio, dtype=np.float32), *(s.audio for s in syns.values()))
    cells = [f"<td style='padding:4px 12px'><b>{html.escape(name)}</b><br>"
             f"{Audio(y, rate=SAMPLE_RATE, normalize=False)._repr_html_()}</td>"
             for name, y in zip(["recording", *syns], audio)]  # fmt: skip
    return "<table><tr>" + "".join(cells) + "</tr></table>", scores


@dataclass(frozen=True)
class Fold:
    test: str  # the clip scored
    dev: str  # the clip fit_voice stops early on
    train: tuple[str, ...]  # the clips it fits on


def loo_folds(ids: Sequence[str]) -> list[Fold]:
    """One fold per clip (ids sorted): test = clip k, dev = clip k + 1 (cyclic), train = the others."""
    ids = sorted(ids)
    if len(set(ids)) != len(ids):
        raise ValueError("clip ids must be unique")
    if len(ids) < MIN_CLIPS:
        raise ValueError(
            f"leave-one-out needs at least {MIN_CLIPS} usable clips of the speaker (one to test, one for early "
            f"stopping, one or more to fit on); got {len(ids)}: {ids}"
        )
    n = len(ids)
    return [Fold(ids[k], ids[(k + 1) % n], tuple(ids[j] for j in range(n) if j not in (k, (k + 1) % n)))
            for k in range(n)]  # fmt: skip


Fit = Callable[[list, list], tuple]  # fit(train_items, dev_items) -> (pack [510, 1, 256], info dict)


def leave_one_out_table(
    kokoro, items: Sequence, fit: Fit, reference: str, voices: Sequence[str], seed: int = 0, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, folds): one score row per (clip, system), one row per fold (ids, fit seconds, fit's info).

    Systems: "fitted" (this fold's pack) and "stock:<name>" for every name in `voices` (and `reference`).
    A stock pack's score does not depend on the fold: each clip is scored once per pack.
    """
    from tqdm.auto import tqdm

    by_id = {it.id: it for it in items}
    folds = loo_folds(list(by_id))
    stock = list(dict.fromkeys([reference, *voices]))
    scores, rows = [], []
    for k, fold in enumerate(tqdm(folds, desc="leave one out", disable=not progress)):
        t0 = time.perf_counter()
        pack, info = fit([by_id[i] for i in fold.train], [by_id[fold.dev]])
        fit_s = time.perf_counter() - t0
        rows.append({"fold": k, "test": fold.test, "dev": fold.dev, "train": list(fold.train), "fit_s": fit_s,
                     **(info or {})})  # fmt: skip
        test = by_id[fold.test]
        scores.append({"fold": k, "id": fold.test, "system": "fitted", **score_pack(kokoro, test, pack, seed)})
        for name in stock:
            scores.append({"fold": k, "id": fold.test, "system": f"stock:{name}",
                           **score_pack(kokoro, test, kokoro.voice(name), seed)})  # fmt: skip
    return pd.DataFrame(scores), pd.DataFrame(rows)


def best_stock(scores: pd.DataFrame, metric: str = "mcd_db") -> str:
    """The stock pack with the lowest mean `metric` over all held-out clips (an oracle, chosen on them)."""
    stock = scores[scores["system"].str.startswith("stock:")]
    return str(stock.groupby("system")[metric].mean().idxmin()).removeprefix("stock:")


def summarize(scores: pd.DataFrame, folds: pd.DataFrame, reference: str, seed: int = 0) -> dict:
    """The per-fold table and the summary of fitted vs nearest stock (`reference`) vs best stock.

    Returns {"best_stock", "per_fold" (DataFrame: one row per fold, then a "mean" row), "summary"
    (DataFrame: one row per (metric, stock side) with means, n, the paired difference fitted - stock and
    its 95% t-interval, and the verdict of stats.compare_paired), "stock_means" (every pack)}.
    """
    best = best_stock(scores)
    wide = scores.pivot_table(index="fold", columns="system", values=list(METRIC_COLUMNS), aggfunc="first")
    per_fold = folds[["fold", "test", "fit_s"]].set_index("fold").copy()
    sides = {"fitted": "fitted", "nearest": f"stock:{reference}", "best": f"stock:{best}"}
    for metric in METRIC_COLUMNS:
        for side, system in sides.items():
            per_fold[f"{metric}_{side}"] = wide[(metric, system)]
    mean = per_fold.drop(columns="test").mean().to_frame("mean").T
    mean.insert(0, "test", f"mean of {len(per_fold)}")
    table = pd.concat([per_fold.reset_index(), mean.reset_index(names="fold")], ignore_index=True)
    rows = []
    for metric, label in METRIC_COLUMNS.items():
        for side in ("nearest", "best"):
            c = compare_paired(wide[(metric, sides[side])], wide[(metric, "fitted")], "lower",
                               (sides[side].removeprefix("stock:"), "fitted"))  # fmt: skip
            rows.append({"metric": label, "stock": f"{side} ({sides[side].removeprefix('stock:')})", "n": c.n,
                         "fitted": c.b, "stock_mean": c.a, "fitted_minus_stock": c.diff, "ci_lo": c.diff_lo,
                         "ci_hi": c.diff_hi, "verdict": c.verdict})  # fmt: skip
    stock_means = scores.groupby("system")[list(METRIC_COLUMNS)].mean().sort_values("mcd_db")
    return {"best_stock": best, "per_fold": table, "summary": pd.DataFrame(rows), "stock_means": stock_means}
