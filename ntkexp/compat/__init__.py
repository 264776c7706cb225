"""Make neural-tangents 0.6.5 import and compute on current JAX, without TensorFlow.

neural-tangents 0.6.5 (its last release) was written against JAX 0.4: it imports
names that moved from ``jax.core`` to ``jax.extend.core``, the removed
``jax.util`` module, ``ad.zeros_like_p`` and the old ``ad.linearize``, walks
jaxprs with the JAX 0.4 transpose API, and its package ``__init__`` imports
``neural_tangents.experimental``, which loads TensorFlow. Rather than patching
JAX, :func:`install` registers an import hook that rewrites the source of
neural-tangents' own modules as they are loaded (the fixed, checked list of
textual substitutions :data:`_REWRITES` below, each with its reason), pointing
them at the small shim modules of this package:

* :mod:`ntkexp.compat.jax_core`: the ``jax.core`` names neural-tangents uses;
* :mod:`ntkexp.compat.jax_ad`: ``jax.interpreters.ad`` with the old
  ``linearize`` and a per-equation transpose / JVP built on public JAX;
* :mod:`ntkexp.compat.jax_util`: ``safe_map`` / ``safe_zip``;
* :mod:`ntkexp.compat.lazy`: a lazy ``neural_tangents.experimental``;
* :mod:`ntkexp.compat.rules`: structured-derivative rules for ``slice``, which
  JAX's new ``split`` primitive is lowered to.

A few rewrites fix other drift: SciPy's renamed ``eigvalsh`` keyword,
``Compiled.cost_analysis()`` returning one dict, and ``eval_context()`` no
longer accepting tracers of an enclosing transformation.

JAX's namespaces are never modified. ``neural_tangents.experimental`` stays
importable explicitly (it then needs TensorFlow); it is just no longer imported
by ``import neural_tangents``.
"""

import dataclasses
import importlib.abc
import importlib.machinery
import sys

SUPPORTED_VERSION = '0.6.5'

_PKG = __name__  # 'ntkexp.compat'


@dataclasses.dataclass(frozen=True)
class Rewrite:
    """One textual substitution in one neural-tangents module.

    Attributes:
        module: the module whose source is rewritten.
        old: the exact text to replace.
        new: its replacement.
        count: how many times ``old`` must occur (checked, so that another
            neural-tangents release fails loudly instead of silently).
        why: the JAX change that makes this rewrite necessary.
    """
    module: str
    old: str
    new: str
    count: int
    why: str


_EMP = 'neural_tangents._src.empirical'
_RULES = 'neural_tangents._src.utils.rules'

_REWRITES = [
    Rewrite(
        'neural_tangents', 'from . import experimental\n',
        f'from {_PKG}.lazy import experimental_getattr as __getattr__\n', 1,
        '`experimental` imports TensorFlow; load it only on attribute access.'),
    # --- empirical.py: imports ---------------------------------------------
    Rewrite(
        _EMP, 'from jax import core\n',
        f'from {_PKG} import jax_core as core\n', 1,
        'jaxpr types moved to jax.extend.core; get_aval / lattice_join / '
        'DShapedArray were removed.'),
    Rewrite(
        _EMP, 'from jax.core import ', f'from {_PKG}.jax_core import ', 6,
        'Jaxpr, JaxprEqn, Literal, Var, ... moved to jax.extend.core.'),
    Rewrite(
        _EMP, 'from jax.interpreters import ad\n',
        f'from {_PKG} import jax_ad as ad\n', 1,
        'old ad.linearize signature, ad.config, ad.source_info_util are gone.'),
    Rewrite(
        _EMP, 'from jax.util import ', f'from {_PKG}.jax_util import ', 2,
        'the jax.util module was removed.'),
    # --- empirical.py: per-equation transpose and JVP ----------------------
    Rewrite(
        _EMP,
        '    if eqn.primitive.call_primitive or eqn.primitive.map_primitive:\n'
        '      cts_in_avals = [v.aval for v in eqn.outvars]\n'
        '      params = dict(eqn.params)\n'
        '      call_jaxpr = params.pop(\'call_jaxpr\')\n'
        '      cts_out = ad.get_primitive_transpose(eqn.primitive)(\n'
        '          params, call_jaxpr, invals, cts_in, cts_in_avals, ())\n'
        '    elif eqn.primitive in ad.reducing_transposes:\n'
        '      cts_out = ad.reducing_transposes[eqn.primitive](\n'
        '          (), (cts_in,), *invals, **eqn.params)\n'
        '    else:\n'
        '      cts_out = ad.get_primitive_transpose(eqn.primitive)(cts_in, '
        '*invals,\n'
        '                                                          '
        '**eqn.params)\n',
        '    cts_out = ad.transpose_eqn(eqn, cts_in, invals)\n', 1,
        'Primitive.map_primitive, reducing_transposes and the 6-argument call '
        'transpose are gone, and many transposes moved to the accumulator-'
        'based fancy_transposes; transpose one equation with the public '
        'jax.linear_transpose instead.'),
    Rewrite(
        _EMP,
        '  jvp_fn = ad.primitive_jvps[eqn.primitive]\n'
        '  out = jvp_fn(new_invals, new_tangents, **eqn.params)[1]\n',
        '  out = ad.jvp_eqn(eqn, new_invals, new_tangents)\n', 1,
        'calling primitive_jvps directly misses call primitives and '
        'bind-parameter conversion; use the public jax.jvp of the equation.'),
    Rewrite(
        _EMP, '.strip_weak_type().strip_named_shape()', '.strip_weak_type()', 2,
        'named shapes were removed from avals (only reached with '
        'jax_enable_checks).'),
    Rewrite(
        _EMP,
        '    analysis = e.compile().cost_analysis()[0]\n',
        '    analysis = e.compile().cost_analysis()\n'
        '    if isinstance(analysis, (list, tuple)):  # (older JAX)\n'
        '      analysis = analysis[0]\n', 1,
        'Compiled.cost_analysis() returns one dict now, not a list of dicts '
        '(used by NtkImplementation.AUTO to pick the cheapest method).'),
    Rewrite(
        _EMP, '      lu.wrap_init(fn), in_tree)\n',
        '      lu.wrap_init(fn, debug_info=jax.api_util.debug_info(\n'
        '          \'empirical_ntk_fn\', fn, primals_in, {})), in_tree)\n', 1,
        'lu.wrap_init without a DebugInfo is deprecated.'),
    Rewrite(
        _EMP, '  ndim = sum(map(jnp.size, leaves))\n',
        '  ndim = sum(map(np.size, leaves))\n', 1,
        'jnp.size of an abstract value (ShapedArray) is deprecated and will '
        'become an error; np.size reads its .size the same way.'),
    Rewrite(
        _EMP,
        '  shapes = [arr.shape[:axis] + jnp.shape(l) + arr.shape[axis + 1:]\n'
        '            for l in leaves]\n'
        '  parts = jnp.split(arr, np.cumsum([jnp.size(l) for l in '
        'leaves[:-1]]), axis)\n',
        '  shapes = [arr.shape[:axis] + np.shape(l) + arr.shape[axis + 1:]\n'
        '            for l in leaves]\n'
        '  parts = jnp.split(arr, np.cumsum([np.size(l) for l in '
        'leaves[:-1]]), axis)\n', 1,
        'as above, for jnp.shape / jnp.size of abstract values.'),
    # --- rules.py ------------------------------------------------------------
    Rewrite(
        _RULES, 'from jax.core import ', f'from {_PKG}.jax_core import ', 7,
        'Jaxpr, JaxprEqn, Literal, Primitive, Var, ... moved to '
        'jax.extend.core.'),
    Rewrite(
        _RULES,
        'STRUCTURE_RULES[jax.interpreters.ad.zeros_like_p] = _eye_s\n'
        'JACOBIAN_RULES[jax.interpreters.ad.zeros_like_p] = _zeros_like_j\n',
        '# (ntkexp.compat: zeros_like_p no longer exists in JAX)\n', 1,
        'ad.zeros_like_p was removed from JAX.'),
    Rewrite(
        _RULES,
        'STRUCTURE_RULES[copy_p] = _eye_s\n'
        'JACOBIAN_RULES[copy_p] = _eye_j\n',
        'STRUCTURE_RULES[copy_p] = _eye_s\n'
        'JACOBIAN_RULES[copy_p] = _eye_j\n'
        f'from {_PKG}.rules import register as _ntkexp_register\n'
        '_ntkexp_register(STRUCTURE_RULES, JACOBIAN_RULES, EQN_PARAMS_RULES)\n',
        1,
        'add structured-derivative rules for `slice`, which the new `split` '
        'primitive is lowered to (see ntkexp.compat.rules).'),
    # --- other modules -------------------------------------------------------
    Rewrite(
        'neural_tangents._src.predict', 'from jax import grad\n',
        f'from jax import grad\nfrom {_PKG} import jax_core as _ntkexp_core\n',
        1, 'import for the next rewrite.'),
    Rewrite(
        'neural_tangents._src.predict', 'with jax.core.eval_context():',
        'with _ntkexp_core.eval_context_unless_traced(k_train_train):', 2,
        'with stackless tracing, tracers of an enclosing jit/vmap cannot be '
        'used inside eval_context(); gradient_descent_mse built inside '
        'jit/vmap raised UnexpectedTracerError.'),
    Rewrite(
        'neural_tangents._src.predict', 'eigvals=(', 'subset_by_index=(', 1,
        'scipy.linalg.eigvalsh lost `eigvals=` in SciPy 1.14 (renamed '
        '`subset_by_index=`, same meaning); used by max_learning_rate.'),
    Rewrite(
        'neural_tangents._src.utils.utils', 'from jax import core\n',
        f'from {_PKG} import jax_core as core\n', 1,
        'jaxpr types moved to jax.extend.core.'),
    Rewrite(
        'neural_tangents._src.stax.requirements', 'from jax.core import ',
        f'from {_PKG}.jax_core import ', 1,
        'ShapedArray import location.'),
    Rewrite(
        'neural_tangents._src.stax.linear', 'from jax.core import ',
        f'from {_PKG}.jax_core import ', 1,
        'ShapedArray import location.'),
]


def _rewrite(fullname: str, source: str) -> str:
    """Applies the :data:`_REWRITES` for module ``fullname`` to ``source``.

    Args:
        fullname: the module name, e.g. ``'neural_tangents._src.empirical'``.
        source: the module's source text.

    Returns:
        The rewritten source.

    Raises:
        ImportError: a substitution's text does not occur the expected number
            of times, i.e. the installed neural-tangents is not 0.6.5.
    """
    for rw in _REWRITES:
        if rw.module != fullname:
            continue
        found = source.count(rw.old)
        if found != rw.count:
            raise ImportError(
                f'ntkexp.compat expected {rw.count} occurrence(s) of '
                f'{rw.old!r} in {fullname} but found {found}: '
                f'neural-tangents=={SUPPORTED_VERSION} is required '
                f'(pip install neural-tangents=={SUPPORTED_VERSION}).')
        source = source.replace(rw.old, rw.new)
    return source


class _RewritingLoader(importlib.machinery.SourceFileLoader):
    """Loads a neural-tangents module from its source after :func:`_rewrite`."""

    def get_code(self, fullname):
        source = self.get_data(self.path).decode('utf-8')
        return compile(_rewrite(fullname, source), self.path, 'exec',
                       dont_inherit=True)


class _NeuralTangentsFinder(importlib.abc.MetaPathFinder):
    """Routes ``neural_tangents`` and its submodules through the rewriting loader.

    ``neural_tangents.experimental`` (TensorFlow interop) is left alone.
    """

    def find_spec(self, fullname, path, target=None):
        del target
        if fullname != 'neural_tangents' and not fullname.startswith(
                'neural_tangents.'):
            return None
        if fullname.startswith('neural_tangents.experimental'):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(
                spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _RewritingLoader(fullname, spec.origin)
        return spec


_FINDER = _NeuralTangentsFinder()


def install() -> None:
    """Registers the import hook (idempotent) and imports neural-tangents.

    Raises:
        ImportError: neural-tangents was imported before the hook, or its
            version is not 0.6.5.
    """
    if _FINDER not in sys.meta_path:
        module = sys.modules.get('neural_tangents')
        if module is not None and not isinstance(
                getattr(getattr(module, '__spec__', None), 'loader', None),
                _RewritingLoader):
            raise ImportError(
                'neural_tangents was imported before ntkexp; import ntkexp '
                'first.')
        sys.meta_path.insert(0, _FINDER)
    import neural_tangents  # pylint: disable=import-outside-toplevel
    if neural_tangents.__version__ != SUPPORTED_VERSION:
        raise ImportError(
            f'ntkexp needs neural-tangents=={SUPPORTED_VERSION}, found '
            f'{neural_tangents.__version__} '
            f'(pip install neural-tangents=={SUPPORTED_VERSION}).')
