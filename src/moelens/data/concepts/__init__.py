"""Token-level concepts: registry, labels, sampling (see ``registry`` for the model).

Typical use by an analysis::

    from moelens.data.concepts import get_concept, token_labels, token_eligible, sample_examples
    concept = get_concept("numerator")                      # or "regex:\\d+", variant="paper"
    labels = token_labels(concept, text, offsets)           # bool per token
    pos_idx, neg_idx = sample_examples(labels, token_eligible(concept, text, offsets),
                                       budget=5000, seed=42)
"""

from moelens.data.concepts import builtins as _builtins  # noqa: F401  (registers groups)
from moelens.data.concepts.duplicates import find_duplicates  # noqa: F401
from moelens.data.concepts.labelling import (  # noqa: F401
    corpus_token_labels,
    spans_to_token_labels,
    token_eligible,
    token_labels,
)
from moelens.data.concepts.lookup import get_concept, resolve_concepts  # noqa: F401
from moelens.data.concepts.registry import (  # noqa: F401
    VARIANTS,
    Concept,
    ConceptUnavailableError,
    Window,
    canonical_concepts,
    groups,
    list_concepts,
    register,
)
from moelens.data.concepts.sampling import DEFAULT_BUDGET, sample_examples  # noqa: F401
from moelens.data.concepts.user import parse_user_concept  # noqa: F401
