"""An independent NumPy implementation of one mfres training step.

Written from DESIGN.md section 1 with whole-batch matrices (the way a
researcher would write it), sharing no code with the C engine. Used by
test_reference.py to check the C gradient and update to 1e-10, and usable
on its own as the "straightforward NumPy" baseline.
"""
import numpy as np

ACTIVATIONS = ["tanh", "relu", "sigmoid", "softplus"]


def activation(name, a):
    """sigma(a) and sigma'(a)."""
    if name == "tanh":
        s = np.tanh(a)
        return s, 1 - s * s
    if name == "relu":
        return np.maximum(a, 0), (a > 0).astype(float)
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-a))
        return s, s * (1 - s)
    if name == "softplus":
        return np.logaddexp(0, a), 1 / (1 + np.exp(-a))
    raise ValueError(name)


def loss_and_adjoint(z_full, y, d_out, loss):
    """Mean loss over the batch and p_L = dE/dX_L (zero beyond d_out)."""
    n = z_full.shape[0]
    z = z_full[:, :d_out]
    p = np.zeros_like(z_full)
    if loss == "mse":
        e = z - y
        p[:, :d_out] = e / n
        return 0.5 * np.sum(e * e) / n, p
    labels = y[:, 0].astype(int)
    zmax = z.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(z - zmax).sum(axis=1)) + zmax[:, 0]
    softmax = np.exp(z - logsum[:, None])
    softmax[np.arange(n), labels] -= 1
    p[:, :d_out] = softmax / n
    return np.mean(logsum - z[np.arange(n), labels]), p


def forward(x, u, w, b, order, act, arch, alpha):
    """The states of the forward pass: [X_0, ..., X_L] (resnet, layer order[k]
    at position k), or [X_0, output] (shallow: every block sees X_0)."""
    L, M, _ = u.shape
    h = alpha / (L * M)
    if arch == "shallow":
        out = x.copy()
        for l in range(L):
            s, _ = activation(act, x @ w[l].T + b[l])
            out += h * s @ u[l]
        return [x, out]
    states = [x]
    for k in range(L):
        l = order[k]
        s, _ = activation(act, states[-1] @ w[l].T + b[l])
        states.append(states[-1] + h * s @ u[l])
    return states


def step(x, y, u, w, b, order, act, loss, arch, alpha, d_out, lr, weight_decay):
    """Loss, gradients (gu, gw, gb) and updated particles of one step.

    x: [n][D] padded inputs; u, w: [L][M][D]; b: [L][M]; order: layer at
    each position of the forward pass.
    """
    L, M, _ = u.shape
    h = alpha / (L * M)
    gu, gw, gb = np.zeros_like(u), np.zeros_like(w), np.zeros_like(b)
    states = forward(x, u, w, b, order, act, arch, alpha)
    if arch == "shallow":
        E, p = loss_and_adjoint(states[-1], y, d_out, loss)
        for l in range(L):
            s, ds = activation(act, x @ w[l].T + b[l])
            q = ds * (p @ u[l].T)
            gu[l], gw[l], gb[l] = h * s.T @ p, h * q.T @ x, h * q.sum(axis=0)
    else:
        E, p = loss_and_adjoint(states[-1], y, d_out, loss)
        for k in reversed(range(L)):
            l, X = order[k], states[k]
            s, ds = activation(act, X @ w[l].T + b[l])
            q = ds * (p @ u[l].T)
            gu[l], gw[l], gb[l] = h * s.T @ p, h * q.T @ X, h * q.sum(axis=0)
            p = p + h * q @ w[l]
    lm = L * M
    new = [theta - lr * (lm * g + weight_decay * theta)
           for theta, g in ((u, gu), (w, gw), (b, gb))]
    return E, (gu, gw, gb), new
