"""Generators: the contract, seed policies, and backends (dummy; FLUX.2 klein on diffusers)."""

# Names resolve on first use (PEP 562): the CLI reads the registry's names without importing torch.
_EXPORTS = {
    "Generator": "base", "to_uint8": "base",
    "GENEVAL_SEEDS": "noise", "PICKAPIC_SEEDS": "noise", "NoiseSource": "noise", "SeedPolicy": "noise",
}

__all__ = ["GENEVAL_SEEDS", "Generator", "NoiseSource", "PICKAPIC_SEEDS", "SeedPolicy", "to_uint8"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
