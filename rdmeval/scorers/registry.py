"""The scorers a suite may name: registry name -> a factory that loads the scorer's models.

Entries are lazy ("module:attribute"), so listing them imports neither mmdet nor transformers. A
new scorer is one module with a ``build(options) -> Scorer`` function plus one line here
(``docs/architecture.md`` shows a worked example).
"""

from __future__ import annotations

from rdmeval.api import Registry, ScorerFactory

SCORERS: Registry[ScorerFactory] = Registry("scorer")
SCORERS.register("geneval", "rdmeval.scorers.geneval.scorer:build",
                 "GenEval with the official mmdet scorer (detect once, judge many)")
SCORERS.register("pickscore", "rdmeval.scorers.pickscore.scorer:build",
                 "PickScore: logit_scale * cos(image, text), mean over prompts")
