"""The bootstrap pieces now live in :mod:`rdmeval.bootstrap` (shared with the results layer); re-exported here."""

from rdmeval.bootstrap import check_level, check_n_resamples, percentile_interval, resample_indices

__all__ = ["check_level", "check_n_resamples", "percentile_interval", "resample_indices"]
