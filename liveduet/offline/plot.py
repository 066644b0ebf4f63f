"""Piano roll of a duet (optional ``plot`` extra; matplotlib is imported only here, lazily)."""

from __future__ import annotations

import os
from typing import Any

from liveduet.errors import ConfigError
from liveduet.offline.render import Duet

HUMAN = "#1f77b4"
MACHINE = ("#ff7f0e", "#d62728", "#2ca02c", "#9467bd")
PHASE_COLOUR = {"answering": "#ff7f0e", "listening": "#1f77b4", "accompanying": "#2ca02c",
                "idle": "#7f7f7f"}


def _matplotlib() -> tuple[Any, Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError as err:
        raise ConfigError("--plot needs matplotlib, which is not installed; install the plot "
                          "extra: pip install 'liveduet[plot]' (or drop --plot)") from err
    return Figure, FigureCanvasAgg, Rectangle


def plot_duet(duet: Duet, path: str | os.PathLike[str], title: str = "") -> None:
    """Draw human and machine notes in two colours with bar lines and turn boundaries."""
    figure_cls, canvas_cls, rect = _matplotlib()
    width = min(40.0, max(8.0, duet.beats / 6))
    fig = figure_cls(figsize=(width, 5.5), dpi=100)
    canvas_cls(fig)
    ax = fig.add_subplot(1, 1, 1)
    pitches = [n.pitch for n in duet.human] + [n.pitch for ns in duet.machine.values()
                                               for n in ns]
    low, high = (min(pitches) - 2, max(pitches) + 2) if pitches else (48, 84)
    for bar in duet.bar_lines():
        ax.axvline(bar, color="#bbbbbb", linewidth=0.8, zorder=0)
    for pos, phase in duet.turns:
        ax.axvline(pos, color=PHASE_COLOUR.get(phase, "#000000"), linestyle="--",
                   linewidth=1.0, zorder=1)
        ax.text(pos, high + 0.5, phase, fontsize=7, rotation=90, va="bottom",
                color=PHASE_COLOUR.get(phase, "#000000"))
    for n in duet.human:
        ax.add_patch(rect((n.start, n.pitch - 0.4), n.end - n.start, 0.8, color=HUMAN,
                          zorder=2))
    for i, (v, notes) in enumerate(duet.machine.items()):
        colour = MACHINE[i % len(MACHINE)]
        for n in notes:
            ax.add_patch(rect((n.start, n.pitch - 0.4), n.end - n.start, 0.8, color=colour,
                              alpha=0.85, zorder=3))
        ax.plot([], [], color=colour, linewidth=6, label=f"liveduet {duet.voice_names[v]}")
    ax.plot([], [], color=HUMAN, linewidth=6, label="human")
    ax.set_xlim(0, max(duet.beats, 4))
    ax.set_ylim(low, high + 4)
    metres = ", ".join(label for _, label in duet.metres.labels())
    ax.set_xlabel(f"quarter notes (bar lines of {metres})")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or "liveduet duet")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(os.fspath(path))
    except OSError as err:
        raise ConfigError(f"cannot write the plot {path} ({err}); check the folder") from err
