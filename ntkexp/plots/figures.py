"""Shared figure plumbing of the plot modules: a headless pyplot, PNG + PDF."""

from __future__ import annotations

from pathlib import Path

#: Display names of the architectures (``model=`` choices) in every figure.
MODEL_LABELS = {'fc': 'FC', 'cnn': 'CNN', 'cnn_vec': 'CNN-VEC',
                'cnn_gap': 'CNN-GAP', 'myrtle': 'Myrtle', 'wrn': 'WRN',
                'wrn_nt': 'WRN (nt)', 'resnet': 'ResNet', 'lcn': 'LCN'}

#: A PNG larger than this is re-saved with a 256-colour palette (plots use a
#: handful of colours: the same picture, about a third of the bytes), so that
#: committed figures stay under results/README.md's 300 KB.
MAX_PNG_BYTES = 300_000


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
        if suffix == 'png' and path.stat().st_size > MAX_PNG_BYTES:
            _palette_png(path)
        paths.append(path)
    pyplot().close(fig)
    return paths


def _palette_png(path: Path) -> None:
    """Re-saves the PNG at ``path`` with a 256-colour palette (on white)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with Image.open(path) as image:
        rgba = image.convert('RGBA')
    flat = Image.new('RGBA', rgba.size, 'white')
    flat.alpha_composite(rgba)
    flat.convert('RGB').quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
        path, optimize=True)


def legend_below(fig, handles, labels, fontsize: float = 7) -> None:
    """One legend for the figure, below its panels (constrained layout).

    As many columns as the figure's width holds; the figure grows by the
    legend's height, so that a long legend never squeezes the panels
    (constrained layout gives up when it would, and the legend then covers
    them).
    """
    if not handles:
        return
    char_inches = 0.55 * fontsize / 72  # a label's average character width
    column_inches = 0.6 + char_inches * max(len(label) for label in labels)
    ncol = int(max(1, min(len(labels), fig.get_figwidth() // column_inches)))
    rows = -(-len(labels) // ncol)
    fig.set_figheight(fig.get_figheight() + 1.5 * fontsize / 72 * rows + 0.15)
    fig.legend(handles, labels, loc='outside lower center', ncol=ncol,
               fontsize=fontsize)


def depth_exponent_text(gamma) -> str:
    """The ResNet's residual-branch scale set by ``model.alpha_gamma``,
    ``alpha = L^(-gamma)`` (Huang et al. 2020), as a legend label."""
    return rf'$\alpha = L^{{-{float(gamma):g}}}$'


def value_text(value) -> str:
    """A value in a legend or label: ``128`` for 128.0, ``0.001`` for 1e-3
    (``:g``), anything else as ``str`` gives it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f'{value:g}'
    return str(value)
