"""The files the page inlines: the vendored Grid.js (tables), the report's CSS and script.

Everything is read from the installed package (``importlib.resources``), so a report builds
offline and the page fetches nothing: the HTML file carries all of it.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

GRIDJS_VERSION = "6.2.0"
"""The vendored Grid.js release (see ``vendor/gridjs/SOURCE.md`` for its origin and checksums)."""

GRIDJS_SHA256 = {
    "gridjs.umd.js": "f7402f347715568c73f061781edd8e7dceeecdd7e2503c28a1012b7ccbc12509",
    "mermaid.min.css": "ab9585e3983a57267a8f22f708fe40ad70f8c1bd5688ebfba31d11a0c7cca331",
}
"""sha256 of each vendored file as it came out of the npm tarball."""

_SOURCE_MAP = re.compile(r"\n?/[/*]# sourceMappingURL=[^\n]*\s*$")


def _read(*parts: str) -> str:
    return resources.files("moelens.report").joinpath(*parts).read_text(encoding="utf-8")


def vendored(name: str) -> str:
    """A vendored Grid.js file, its trailing source-map comment removed (the map is not shipped,
    and a page opened from disk must not ask for it)."""
    return _SOURCE_MAP.sub("\n", _read("vendor", "gridjs", name))


def vendored_sha256(name: str) -> str:
    data = resources.files("moelens.report").joinpath("vendor", "gridjs", name).read_bytes()
    return hashlib.sha256(data).hexdigest()


def template(name: str) -> str:
    """A file of ``report/templates/`` (the page skeleton, its CSS and script)."""
    return _read("templates", name)
