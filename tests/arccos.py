"""Closed-form kernels the tests compare against (not a test module).

``relu_kernels``: the NNGP and NTK of a fully connected ReLU network by the
arc-cosine recursion in float64 (Cho & Saul 2009; Jacot et al. 2018; Arora et
al. 2019), used by ``test_models.py``, ``test_depth_degeneracy.py`` and
``test_fastconv_dense.py``.
"""

import numpy as np


def relu_kernels(x1, x2, depth, W_std, b_std):
    """NNGP and NTK of an FC ReLU net by the arc-cosine recursion (float64).

    For a layer pair with covariance ``[[q1, s], [s, q2]]`` and
    ``c = s / sqrt(q1 q2) = cos(theta)`` (Cho & Saul 2009):
    ``E[relu(u) relu(v)] = sqrt(q1 q2) (sin theta + (pi - theta) cos theta) /
    (2 pi)`` and ``E[relu'(u) relu'(v)] = (pi - theta) / (2 pi)``; then
    ``Sigma' = W^2 E[relu relu] + b^2`` and
    ``Theta' = Sigma' + W^2 E[relu' relu'] Theta`` (Jacot et al. 2018; Arora et
    al. 2019), starting from ``Sigma = Theta = W^2 x.x' / d + b^2``.
    ``x2=None`` means ``x2 = x1``; its diagonal then has ``theta = 0`` exactly.
    """
    same = x2 is None
    x2 = x1 if same else x2
    d = x1.shape[1]
    w2, b2 = W_std ** 2, (0.0 if b_std is None else b_std ** 2)
    q1 = w2 * np.sum(x1 ** 2, axis=1) / d + b2
    q2 = w2 * np.sum(x2 ** 2, axis=1) / d + b2
    nngp = w2 * x1 @ x2.T / d + b2
    ntk = nngp.copy()
    for _ in range(depth):
        norm = np.sqrt(np.outer(q1, q2))
        c = np.clip(nngp / norm, -1.0, 1.0)
        if same:
            np.fill_diagonal(c, 1.0)
        theta = np.arccos(c)
        e = norm * (np.sin(theta) + (np.pi - theta) * c) / (2 * np.pi)
        e_dot = (np.pi - theta) / (2 * np.pi)
        nngp = w2 * e + b2
        ntk = nngp + w2 * e_dot * ntk
        q1, q2 = w2 * q1 / 2 + b2, w2 * q2 / 2 + b2
    return nngp, ntk
