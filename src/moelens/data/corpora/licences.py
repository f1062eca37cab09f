"""Per-document licences for sources that mix many upstreams (site-packages, /usr/include)."""

from __future__ import annotations

import importlib.metadata as md
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _top_level_to_dists() -> dict[str, list[str]]:
    return md.packages_distributions()


@lru_cache(maxsize=None)
def distribution_licence(dist: str) -> str:
    """A distribution's licence from its metadata (expression, field or classifier)."""
    try:
        meta = md.metadata(dist)
    except md.PackageNotFoundError:
        return "unknown (no distribution metadata)"
    expr = meta.get("License-Expression")
    if expr:
        return expr
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                   if c.startswith("License ::")]
    if classifiers:
        return "; ".join(classifiers)
    field = (meta.get("License") or "").strip().splitlines()
    return field[0][:120] if field and field[0] else "unknown (no licence in metadata)"


def python_file_licence(path: Path, root: Path) -> str:
    """Licence of a site-packages file, from the distribution owning its top-level name."""
    top = path.relative_to(root).parts[0]
    top = top[:-3] if top.endswith(".py") else top
    dists = _top_level_to_dists().get(top)
    if not dists:
        return "unknown (no distribution owns this file)"
    return f"{dists[0]}: {distribution_licence(dists[0])}"


@lru_cache(maxsize=4)
def _dpkg_owners(system_root: str) -> dict[str, str]:
    """File path -> Debian package, from the dpkg file lists under ``system_root``."""
    owners: dict[str, str] = {}
    info = Path(system_root) / "var/lib/dpkg/info"
    if not info.is_dir():
        return owners
    for lst in info.glob("*.list"):
        package = lst.stem.split(":")[0]
        try:
            for line in lst.read_text(errors="replace").splitlines():
                if line.startswith("/usr/include/"):
                    owners[line] = package
        except OSError:
            continue
    return owners


def debian_file_licence(path: Path, system_root: Path) -> str:
    """Where the licence of a system file is documented (its Debian package's copyright)."""
    rel = "/" + str(path.relative_to(system_root))
    package = _dpkg_owners(str(system_root)).get(rel)
    if package is None:
        return "unknown (no Debian package owns this file)"
    return f"Debian package {package}: see /usr/share/doc/{package}/copyright"
