"""The package's version: one leaf every layer may ask (results record which googlenet made them)."""

__version__ = "0.1.0"
