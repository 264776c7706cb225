"""Fast infinite-width kernels of pooled convolutional networks.

neural-tangents computes the CNN-GP / CNTK of a pooled network (CNN-GAP,
Myrtle) layer by layer on ``(b1, b2, H, H, W, W)`` covariances with depthwise
convolutions and transposes between layers. This package computes the same
numbers (Arora et al. 2019, "On Exact Computation with an Infinitely Wide
Neural Net", Sec. 4; Novak et al. 2019) with a recursion laid out for XLA's
fusion (:mod:`ntkexp.fastconv.recursion`), and plugs it into the models'
triples (:mod:`ntkexp.fastconv.select`): ``model=cnn``, ``model=myrtle``,
``model=wrn`` and the image ``model=resnet`` (the last two in the NTK
parameterisation; :mod:`ntkexp.fastconv.residual`), with any of the models'
activations (:mod:`ntkexp.fastconv.activations`), use it unless
``model.fast_kernel=false``; anything else keeps neural-tangents.
:mod:`ntkexp.fastconv.pallas` and :mod:`ntkexp.fastconv.diagonal` hold
optional Pallas kernels of the hot step (convolution + ReLU, ReLU networks
only), checked in interpret mode.

See ``docs/fastconv.md`` for accuracy and timings.
"""

from ntkexp.fastconv.recursion import ConvNet, kernel
from ntkexp.fastconv.residual import ScaledResNet, WideResNet
from ntkexp.fastconv.select import (MODES, cnn_net, fast_kernel_fn,
                                    myrtle_net, parse_mode, resnet_net,
                                    with_fast_kernel, wrn_net)

__all__ = ['ConvNet', 'MODES', 'ScaledResNet', 'WideResNet', 'cnn_net',
           'fast_kernel_fn', 'kernel', 'myrtle_net', 'parse_mode',
           'resnet_net', 'with_fast_kernel', 'wrn_net']
