"""The transplant (notebooks 02-03): surgery on the DurationEncoder, PEFT freezing, adapters.

    surgery   `replace_duration_encoder(model, SurgeryConfig(design=...))`: Mamba blocks in, LSTMs out
    peft      freeze all but the new blocks; reports that prove it
    adapters  save / load / inspect what the surgery added (safetensors + JSON), in one place

Imports `helpers.mamba` and `helpers.kokoro` only.
"""
