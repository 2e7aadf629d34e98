"""Section 6: the training recipe (config, engine, the training loop), torchrun/DDP, section 7's ensemble."""
