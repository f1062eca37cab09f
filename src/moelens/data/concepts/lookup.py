"""Finding concepts by what a user types: a name, ``group.name``, a group, or a user spec.

Kept apart from :mod:`.registry` (which only holds what is registered) because user specs
(:mod:`.user`) are built from the registry's types: the lookup depends on both, neither on it.
"""

from __future__ import annotations

from moelens.data.concepts import registry
from moelens.data.concepts.registry import VARIANTS, Concept
from moelens.data.concepts.user import is_user_spec, parse_user_concept
from moelens.errors import ConfigError


def get_concept(name: str, variant: str = "fixed") -> Concept:
    """A concept by ``name`` or ``group.name``; user specs (``regex:…``) are parsed too."""
    if is_user_spec(name):
        return parse_user_concept(name, variant=variant)
    if variant not in VARIANTS:
        raise ConfigError(f"concept variant {variant!r} is not one of {', '.join(VARIANTS)}")
    group, _, bare = name.rpartition(".")
    found = registry.registered(variant, bare)
    if found is not None and (not group or group == found.group):
        return found
    raise ConfigError(
        f"unknown concept {name!r} (variant {variant}); groups are {', '.join(registry.groups())}, "
        "see their names with `python -c \"from moelens.data.concepts import list_concepts; "
        "print([c.name for c in list_concepts('GROUP')])\"`, or give regex:/tokens:/callable: specs"
    )


def resolve_concepts(specs: list[str], variant: str = "fixed") -> list[Concept]:
    """Expand a list of group names, concept names and user specs into concepts (no repeats)."""
    out: dict[str, Concept] = {}
    for spec in specs:
        chosen = (registry.list_concepts(spec, variant) if spec in registry.groups()
                  else [get_concept(spec, variant)])
        for c in chosen:
            out.setdefault(c.qualified_name, c)
    return list(out.values())
