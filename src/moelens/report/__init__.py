"""The HTML report: every analysis result of a run directory on one self-contained page.

``moelens report RUN_DIR`` (:mod:`.command`) -> :func:`.build.build`: :mod:`.results` finds
result files, each module of :mod:`.sections` reads its own and renders its part, :mod:`.html`
escapes and assembles, :mod:`.figures` draws, :mod:`.assets` inlines the vendored Grid.js.
"""
