"""One module per report section, each with the same small surface:

- ``ID``, ``TITLE``: the section's anchor and heading;
- ``detect(path, files) -> bool``: whether a directory holds this section's results;
- ``read(dirs, shared)``: read those results, add what the comparison table and the expert
  cards need to ``shared`` (:class:`moelens.report.results.Shared`), return the section's data;
- ``render(data, shared) -> Section``: the HTML, or a "not run" note.

:data:`ORDER` is the page order; sections read in that order too, except that the comparison
table and the expert browser render after every other section has read (they gather from all).
"""

from __future__ import annotations

from moelens.report.sections import (autointerp, boardgame, comparison, experts, legal,
                                     overview, probing, specialization, training)

ORDER = [overview, comparison, training, legal, probing, boardgame, autointerp, specialization, experts]
"""Sections in page order."""
