"""kokoro-mamba helpers: the shared code behind the numbered notebooks, one room per notebook.

    settings.py   the one `Settings` dataclass (CI mode vs full mode, device, paths, seeds)
    grid.py       Kokoro's time grid (24 kHz; 25 ms duration frames; 12.5 ms F0/energy/mel frames)
    argtypes.py   the commands' argument types: a bad value is refused while parsing, named
    outputs.py    where runs write: refusals before overwriting, one run per folder (a lock), atomic writes
    kokoro/       notebook 01: weights, loading, g2p, forward (THE prosody/synthesis path), synth, anatomy
    mamba/        notebook 02: the Mamba block (pure PyTorch or mamba-ssm's fused kernels), BiMamba
    transplant/   notebooks 02-03: surgery, PEFT freezing, adapters
    data/         notebook 04: audio, readers, validation, features, DTW targets, corpus, preparation
    train/        notebook 05: config, items, losses, checkpoints, the Trainer, `python -m helpers.train`
    compare/      notebook 06: metrics, contenders, A/B, evaluation, report, latency
    plots.py      every figure

Imports go one way: kokoro and mamba at the bottom; transplant and data above them; train and compare
(and plots) at the top. Nothing below imports anything above it.
"""

__version__ = "0.1.0"
