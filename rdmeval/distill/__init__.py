"""The RDM distillation trainer (docs/distill.md), kept apart from evaluation.

Nothing else under ``rdmeval/`` imports this subpackage, except the ``rdmeval train`` command
(``rdmeval/cli/train.py``) inside its functions (a test walks the AST to enforce it).

Modules, in the order the objective is built:

- ``kernels``   squared distances, Gaussian RBF, chunked biased kernel means
- ``reference`` median-heuristic bandwidth, k-means landmarks, the Nyström ``ReferenceBundle``
- ``loss``      per-encoder Nyström MMD², self-normalisation, weighted total
- ``gradcache`` exact large-batch gradients through chunked encoders; differentiable all_gather
- ``config``    typed, validated training configs (``debug``, ``flux_tiny``, ``flux_geall``)
- ``trainer``   ``Trainer.train_step()``, resumable checkpoints
- ``toy``       tiny generator/encoders/reference so ``debug`` runs on CPU in seconds
- ``golden``    regenerates the golden loss curve of the ``debug`` config
- ``battery``   what an encoder is (``EncoderSpec``, autograd-safe preprocessing, pools, tiny stand-ins)
- ``encoders``  the released ten-encoder battery as data, and lazy loaders on timm/transformers/dreamsim/torch-fidelity
- ``tables``    sharded, resumable, memory-mapped conditioning tables
- ``conditioning`` the ctx pool and the τ text table of a pool spec (``tables_cli`` builds them)
- ``flux_model`` the differentiable one-step FLUX.2 [klein] render (DiT at t = 1, VAE decode)
- ``flux_task`` the klein task: student, battery, tables, bundles, assets, FSDP2 sharding
- ``tiny_assets`` ``flux_tiny``'s tables and bundles from the tiny klein fixture
- ``checkpoints`` milestone checkpoints ``step_XXXXXXX.pt`` and the ``model.safetensors`` export
- ``run``       a training run in a folder (``rdmeval train``, ``python -m rdmeval.distill``)
- ``curation``  the reference pool's blocks of teacher renders, their seeds, the curated manifest
- ``refprep``   renders → scores → curation → features → bundles, resumable (``refprep_cli`` runs it)
"""
