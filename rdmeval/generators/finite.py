"""Refuse tensors holding NaN or Inf: a diverged or corrupt checkpoint would otherwise render black images.

``check_finite`` is run on every student checkpoint when it is read, before any image is made, and
names the file and the first offending tensor with its counts of NaN and Inf values.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from rdmeval.errors import RdmevalError


class NonFiniteError(RdmevalError):
    """A tensor holds NaN or Inf values; the message names its source and the tensor."""


def _all_finite(t: torch.Tensor) -> bool:
    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
        return True  # integer and bool tensors cannot hold NaN or Inf
    total = t.sum(dtype=torch.float64) if t.is_floating_point() else t.sum()
    if bool(torch.isfinite(total).all()):
        return True  # NaN and +-Inf propagate into the sum, so a finite sum means finite entries
    return bool(torch.isfinite(t).all())  # the sum may have overflowed: decide element-wise


def check_finite(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`NonFiniteError` naming ``source`` and the first tensor (in key order) with NaN/Inf."""
    bad = [key for key, t in tensors.items() if isinstance(t, torch.Tensor) and not _all_finite(t)]
    if not bad:
        return
    t = tensors[bad[0]]
    n_nan, n_inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    others = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    raise NonFiniteError(
        f"{source}: tensor {bad[0]!r} {tuple(t.shape)} holds {n_nan} NaN and {n_inf} Inf values{others}. "
        "The checkpoint is corrupt or its training diverged, and every image would be garbage; "
        "use another checkpoint (e.g. an earlier one) and check how this file was written"
    )
