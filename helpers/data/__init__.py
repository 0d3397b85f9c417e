"""Datasets (notebook 04): (text, wav) pairs -> validated items -> per-token targets on Kokoro's grid.

    audio       robust loading (down-mix, resample) and saving
    readers     LJSpeech metadata.csv and (wav, txt) folders -> Items
    validate    the validation report: every refusal with a code, the value and the limit
    features    THE log-mel (NumPy and a differentiable torch twin), F0 (pYIN), energy
    align       per-token durations by pause-aware DTW against Kokoro's own synthesis
    asr         the one pocketsphinx set-up (recognition and forced alignment)
    wordcheck   the pocketsphinx cross-check of DTW word edges
    targets     one item's training targets (`ItemTargets`) and voice-pack styles
    reference_voice  the English pack nearest a speaker's F0 register (style and DTW reference)
    corpus      the text corpus for distillation
    prepare     cached, split datasets (prepared: what it returns; pool: its clips over a process pool);
                text_corpus: the distillation corpus with token ids

Imports `helpers.kokoro` (and `helpers.grid`, `helpers.settings`) only.
"""
