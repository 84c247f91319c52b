"""klein's text conditioning layers: Qwen3 hidden states 9, 18 and 27 (index 0 is the embedding output).

A module of its own, without torch, so that the CLI can show the default while it builds its parser.
"""

DEFAULT_TEXT_LAYERS: tuple[int, ...] = (9, 18, 27)
