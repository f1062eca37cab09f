"""What a store must offer for an SAE to be trained on it (numpy only, so bad input fails fast)."""

from __future__ import annotations

from moelens.errors import ConfigError, StoreError
from moelens.store import ActivationStore
from moelens.store import derived as dspace


def check_request(store: ActivationStore, layer: int, space: str, name: str) -> int:
    """The source width, or a StoreError/ConfigError saying what is wrong with the request."""
    if layer not in store.layers:
        raise StoreError(f"layer {layer} is not in the store {store.root}; it holds layers {store.layers}")
    have = store.spaces(layer)
    if space not in have:
        raise StoreError(f"space {space!r} is not in the store at layer {layer}; it holds {', '.join(have)}")
    if space not in dspace.SOURCE_SPACES:
        why = ("is itself derived" if dspace.name_problem(space) is None
               else "has no dense [tokens, units] view")
        raise ConfigError(f"space {space!r} {why}; train an SAE on a dense space "
                          f"({', '.join(s for s in dspace.SOURCE_SPACES if s in have) or 'none here'})")
    if (problem := dspace.name_problem(name)) is not None:
        raise ConfigError(problem + "; choose another --name")
    return store.width(layer, space)
