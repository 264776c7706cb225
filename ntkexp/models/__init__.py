"""Architectures as neural-tangents stax triples, one function per config.

Each ``conf/model/NAME.yaml`` has ``_target_: ntkexp.models.NAME`` and the
function's keyword arguments, so ``hydra.utils.instantiate(cfg.model,
out_dim=k)`` returns ``(init_fn, apply_fn, kernel_fn)``: the finite network and
its infinite-width NNGP / NTK from one config.

Every model function has the signature ``fn(*, depth, width, W_std, b_std,
activation, parameterization, out_dim=1, ...)``:

* :func:`fc` -- fully connected (Jacot et al. 2018; Lee et al. 2020).
* :func:`cnn` -- CNN-VEC / CNN-GAP (Arora et al. 2019; Lee et al. 2020); with
  ``weight_sharing=False`` the locally connected LCN (Novak et al. 2019;
  ``model=lcn``), its finite layers through :func:`conv_local`.
* :func:`myrtle` -- Myrtle-5/7/10 (Shankar et al. 2020).
* :func:`wrn` -- Wide ResNet WRN-depth-k (Zagoruyko & Komodakis 2016).
* :func:`resnet` -- residual net with branch scale alpha (Huang et al. 2020;
  Belfer et al. 2021), flat or image inputs.

Helpers: :func:`count_params`, :func:`input_layout`, :func:`check_input` /
:func:`validate_input` (the triple's functions also check their inputs
themselves).
"""

from ntkexp.models.common import ACTIVATIONS, PARAMETERIZATIONS, Scale, count_params
from ntkexp.models.convolutional import MYRTLE_STAGES, READOUTS, cnn, conv_local, myrtle
from ntkexp.models.fully_connected import fc
from ntkexp.models.inputs import LAYOUTS, check_input, input_layout, validate_input
from ntkexp.models.residual import resnet
from ntkexp.models.wide_resnet import wrn, wrn_blocks_per_group

__all__ = [
    'ACTIVATIONS', 'LAYOUTS', 'MYRTLE_STAGES', 'PARAMETERIZATIONS',
    'READOUTS', 'Scale', 'check_input', 'cnn', 'count_params', 'fc',
    'input_layout', 'myrtle', 'resnet', 'validate_input', 'wrn',
    'wrn_blocks_per_group',
]
