"""LSTM vs Mamba vs CfC, side by side (notebook 06): listen (A/B), measure (objective metrics), time (latency).

Every comparison takes the contenders as one mapping name -> model, the reference (the LSTM) first:
``{"LSTM": lstm, "Mamba": mamba, "CfC": cfc}``; any number of them.

    metrics      every metric once: durations, boundary ms, F0 RMSE (voiced in both), MCD, WER
    scoring      one utterance, a student's durations and F0 against a reference's (its own durations, its F0 on
                 the reference's): the comparison under evaluation, distillation and the Trainer's dev scores
    contenders   the models compared: the LSTM and its twins with an adapter applied (shared frozen weights);
                 which adapter of each kind (pick_adapter: the user's, the shipped one, an untrained fixture)
    ab           one sentence by every model, same voice, speed and decoder seed, loudness matched; player
    evaluation   held-out recordings (vs targets) and sentences (vs the LSTM teacher), one row per item
    report       summaries, conclusions, result files under runs/compare/
    stats        t-intervals over utterances, paired t-tests, Holm's correction, the verdict (none below n = 8)
    systems      four systems (LSTM shipped / stage 2, Mamba stage 1 / 2) on the test recordings, one voice:
                 table with n, t-intervals, parameters and dropout; Holm-adjusted paired verdicts; the conclusion
    latency      DurationEncoder and whole-synthesis timings, models interleaved

The names notebook 06 uses are re-exported here (`from helpers import compare as C`).
"""

from helpers.compare.ab import (
    ABResult,
    ab_compare,
    ab_player,
    active_rms,
    match_loudness,
    players_html,
    show_ab,
)
from helpers.compare.contenders import (
    FIXTURE_NOTE,
    KINDS,
    MODELS,
    adapter_twin,
    as_contenders,
    load_mamba_kokoro,
    mamba_twin,
    pick_adapter,
    shallow_twin,
)
from helpers.compare.evaluation import (
    METRICS,
    SETS,
    EvalItem,
    EvalSentence,
    eval_items,
    eval_sentences,
    evaluate,
    evaluate_recordings,
)
from helpers.compare.latency import benchmark_ids, measure_latency, parameter_table
from helpers.compare.report import conclusions, save_results, summarize
from helpers.compare.stats import MIN_N, compare_paired, holm, paired_t, paired_table, t_interval
from helpers.compare.systems import (
    ARCHITECTURE,
    PRIMARY_METRIC,
    SYSTEMS,
    TABLE_METRICS,
    Systems,
    analysis_plan,
    conclusion_lines,
    default_pairs,
    evaluate_systems,
    four_systems,
    lines_agree,
    systems_differences,
    systems_table,
    verdict_lines,
    wide_table,
)
from helpers.kokoro.synth import predict_prosody
from helpers.transplant.adapters import (
    adapter_info,
    describe_adapter,
    find_adapter,
    list_adapters,
    make_fixture_adapter,
)

__all__ = [
    "ABResult", "ab_compare", "ab_player", "active_rms", "match_loudness", "players_html", "show_ab",
    "FIXTURE_NOTE", "KINDS", "MODELS", "adapter_twin", "as_contenders", "load_mamba_kokoro", "mamba_twin",
    "pick_adapter", "shallow_twin",
    "METRICS", "SETS", "EvalItem", "EvalSentence", "eval_items", "eval_sentences", "evaluate",
    "benchmark_ids", "measure_latency", "parameter_table", "conclusions", "save_results", "summarize",
    "predict_prosody", "adapter_info", "describe_adapter", "find_adapter", "list_adapters",
    "make_fixture_adapter",
    "compare_paired", "holm", "paired_t", "paired_table", "t_interval", "evaluate_recordings",
    "MIN_N", "ARCHITECTURE", "PRIMARY_METRIC", "TABLE_METRICS", "analysis_plan", "conclusion_lines",
    "SYSTEMS", "Systems", "default_pairs", "evaluate_systems", "four_systems", "lines_agree",
    "systems_differences", "systems_table", "verdict_lines", "wide_table",
]
