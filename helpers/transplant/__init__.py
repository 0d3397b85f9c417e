"""The transplant (notebooks 02-03): surgery on the DurationEncoder, PEFT freezing, adapters.

    surgery   `replace_duration_encoder(model, SurgeryConfig(design=..., block=...))`: Mamba (or CfC) blocks in,
              LSTMs out
    cfc       BiCfC: a bidirectional liquid (ncps CfCCell) layer, exact on padded batches (`block="cfc"`)
    peft      freeze all but the new blocks; reports that prove it
    adapters  save / load / inspect what the surgery added (safetensors + JSON), in one place

Imports `helpers.mamba` and `helpers.kokoro` only (and the `ncps` package, for the CfC cells).
"""
