"""Scorers: GenEval (detector + judge) and the other benchmark metrics."""
