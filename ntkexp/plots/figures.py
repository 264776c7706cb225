"""Shared figure plumbing of the plot modules: a headless pyplot, PNG + PDF."""

from __future__ import annotations

from pathlib import Path

#: Display names of the architectures (``model=`` choices) in every figure.
MODEL_LABELS = {'fc': 'FC', 'cnn': 'CNN', 'cnn_vec': 'CNN-VEC',
                'cnn_gap': 'CNN-GAP', 'myrtle': 'Myrtle', 'wrn': 'WRN',
                'wrn_nt': 'WRN', 'resnet': 'ResNet'}


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported lazily)."""
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    return plt


def save(fig, out_dir: Path | str, name: str, dpi: int = 110,
         tight: bool = True) -> list[Path]:
    """Writes ``fig`` as ``<out_dir>/<name>.png`` and ``.pdf``, then closes it.

    Args:
        fig: the figure.
        out_dir: the folder (created if missing).
        name: file name without suffix.
        dpi: resolution of the PNG.
        tight: crop to the drawn content (``bbox_inches='tight'``).

    Returns:
        The two paths, PNG first.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in ('png', 'pdf'):
        path = out_dir / f'{name}.{suffix}'
        fig.savefig(path, dpi=dpi, **({'bbox_inches': 'tight'} if tight else {}))
        paths.append(path)
    pyplot().close(fig)
    return paths
