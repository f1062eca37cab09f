"""The shared figure helper: Agg whatever the environment asks for, matplotlib loaded only when a
figure is drawn, figure files written atomically and the figure closed."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from moelens.plotting import pyplot, save_figure, save_figures

SRC = Path(__file__).resolve().parents[1] / "src"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def _figure(width: float = 2.0, height: float = 1.0):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(width, height))
    ax.plot([0, 1], [1, 0])
    ax.set_title("moelens figure")
    return plt, fig


def test_agg_backend_and_lazy_matplotlib():
    """Another backend asked for by the environment is overridden, and importing the module does
    not load matplotlib."""
    code = ("import sys\nimport moelens.plotting as p\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib loaded on import'\n"
            "plt = p.pyplot()\n"
            "print(plt.get_backend().lower(), plt.rcParams['text.usetex'], plt.rcParams['svg.fonttype'])\n")
    env = {**os.environ, "MPLBACKEND": "pdf", "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["agg", "False", "none"]


def test_save_figure_writes_the_file_and_closes_the_figure(tmp_path):
    plt, fig = _figure(2.0, 1.0)
    target = tmp_path / "new" / "folder" / "line.png"
    assert save_figure(fig, target, dpi=50, bbox_inches=None) == target
    assert _png_size(target) == (100, 50)  # the caller's dpi, the figure's own size
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in target.parent.iterdir()] == ["line.png"]


def test_tight_bbox_is_the_default(tmp_path):
    _, fig = _figure(2.0, 1.0)
    size = _png_size(save_figure(fig, tmp_path / "tight.png", dpi=50))
    assert size != (100, 50)  # cropped to the drawn content


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    plt, fig = _figure()
    target = tmp_path / "kept.png"
    target.write_bytes(b"the previous figure")

    def half_written(fname, **kw):
        Path(fname).write_bytes(b"\x89PNG half")
        raise RuntimeError("disk full")

    fig.savefig = half_written
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, target, dpi=50)
    assert target.read_bytes() == b"the previous figure"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.png"]
    assert not plt.fignum_exists(fig.number)


def test_save_figures_writes_each_format_with_svg_text_as_text(tmp_path):
    plt, fig = _figure()
    paths = save_figures(fig, tmp_path, "both", dpi=50)
    assert paths == [tmp_path / "both.png", tmp_path / "both.svg"]
    _png_size(paths[0])
    svg = paths[1].read_text(encoding="utf-8")
    assert re.search(r"<text\b[^>]*>moelens figure</text>", svg), "SVG text drawn as paths"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.png", "both.svg"]
    assert not plt.fignum_exists(fig.number)


def test_a_failed_format_leaves_no_file_under_its_name(tmp_path):
    plt, fig = _figure()
    with pytest.raises(ValueError):
        save_figures(fig, tmp_path, "odd", dpi=50, formats=("png", "not-a-format"))
    assert [p.name for p in tmp_path.iterdir()] == ["odd.png"]
    assert not plt.fignum_exists(fig.number)
