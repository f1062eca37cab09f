"""How the experiments write a number measured once per training seed: ``mean ± sd (n=k)``.

The chess and language experiments both report their seeded models this way, with the sample
standard deviation (ddof 1: three seeds are a sample, not the population), so the two tables
read alike; missing and NaN values (a stage not run, a metric undefined) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def mean_sd(values: Iterable[Any], digits: int = 3, single: str = "{:.{d}f}",
            none: str = "–") -> str:
    """``'m ± sd (n=k)'`` over the given values; one value as ``single`` (a format with ``d``
    for the digits), none as ``none``."""
    vals = [float(v) for v in values
            if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return none
    if len(vals) == 1:
        return single.format(vals[0], d=digits)
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f} (n={len(vals)})"
