"""rdmeval: evaluation and benchmarking harness for one-step text-to-image distillation.

Pipeline: prompt sets -> generators -> run store -> scorers -> results -> report, with the
contamination audit beside it. See README.md for the layout.
"""

__version__ = "0.1.0"
