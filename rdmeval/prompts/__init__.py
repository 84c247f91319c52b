"""Prompt sets: named, versioned, hashed lists of prompts (GenEval, Pick-a-Pic, COCO-val, files)."""

from rdmeval.prompts.registry import get_spec, load_prompt_set, registry
from rdmeval.prompts.schema import Prompt, PromptSet

__all__ = ["Prompt", "PromptSet", "get_spec", "load_prompt_set", "registry"]
