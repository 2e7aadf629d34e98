"""The network: Table 1 as data (spec), its layers, the model, the registry of variants, Table 1 summary."""
