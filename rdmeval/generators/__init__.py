"""Generators: the contract, seed policies, and backends (dummy; FLUX.2 klein on diffusers)."""

from rdmeval.generators.base import Generator, to_uint8
from rdmeval.generators.noise import GENEVAL_SEEDS, PICKAPIC_SEEDS, NoiseSource, SeedPolicy

__all__ = ["GENEVAL_SEEDS", "Generator", "NoiseSource", "PICKAPIC_SEEDS", "SeedPolicy", "to_uint8"]
