"""Deliberately naive reference implementations of every bound and of the NCE loss.

Written as plainly as possible: Python loops over the score entries, candidate lists built one by
one, and the textbook formula of each bound. They use torch scalar operations so that autograd can
differentiate them too, and are only meant for small inputs in the tests.
"""

from __future__ import annotations

import math

import torch


def _positives_and_negatives(scores):
    """Lists of the positive and the negative score entries, locations included."""
    s = scores if scores.dim() == 3 else scores.unsqueeze(-1)
    n, _, n_loc = s.shape
    pos, neg = [], []
    for i in range(n):
        for j in range(n):
            for loc in range(n_loc):
                (pos if i == j else neg).append(s[i, j, loc])
    return torch.stack(pos), torch.stack(neg)


def _log_mean_exp(values):
    return torch.logsumexp(values, dim=0) - math.log(len(values))


def dv(scores):
    pos, neg = _positives_and_negatives(scores)
    return pos.mean() - _log_mean_exp(neg)


def nwj(scores):
    pos, neg = _positives_and_negatives(scores)
    return pos.mean() - math.exp(-1) * torch.exp(neg).mean()


def tuba(scores, log_baseline):
    """``log_baseline``: one value per row ``i`` (a list or 1-d tensor)."""
    s = scores if scores.dim() == 3 else scores.unsqueeze(-1)
    n, _, n_loc = s.shape
    joint, marginal = [], []
    for i in range(n):
        for j in range(n):
            for loc in range(n_loc):
                centred = s[i, j, loc] - log_baseline[i]
                if i == j:
                    joint.append(centred)
                else:
                    marginal.append(torch.exp(centred))
    return torch.stack(joint).mean() - torch.stack(marginal).mean() + 1


def jsd_objective(scores):
    pos, neg = _positives_and_negatives(scores)
    return -torch.log1p(torch.exp(-pos)).mean() - torch.log1p(torch.exp(neg)).mean()


def jsd_readout(scores):
    """NWJ of the shifted critic T + 1."""
    return nwj(scores + 1)


def smile(scores, clip):
    pos, neg = _positives_and_negatives(scores)
    if clip is not None:
        neg = torch.stack([min(max(v, torch.tensor(-clip, dtype=v.dtype)), torch.tensor(clip, dtype=v.dtype))
                           for v in neg])
    return pos.mean() - _log_mean_exp(neg)


def infonce(scores):
    """(N, N): mean_i [T_ii - log (1/N) sum_j e^{T_ij}]; (N, N, L): shared negatives, K = 1 + (N-1) L."""
    s = scores if scores.dim() == 3 else scores.unsqueeze(-1)
    n, _, n_loc = s.shape
    terms = []
    for i in range(n):
        for loc in range(n_loc):
            candidates = [s[i, i, loc]]
            for j in range(n):
                if j != i:
                    for m in range(n_loc):
                        candidates.append(s[i, j, m])
            candidates = torch.stack(candidates)
            terms.append(s[i, i, loc] - (torch.logsumexp(candidates, dim=0) - math.log(len(candidates))))
    return torch.stack(terms).mean()


def interpolated(scores, alpha, log_baseline=1.0):
    """Poole et al. (2019) eq. 11, along rows: m_ij = mean_{k != j} exp(s_ik)."""
    n = scores.shape[0]

    def baseline(i, j):
        m = torch.stack([torch.exp(scores[i, k]) for k in range(n) if k != j]).mean()
        return alpha * m + (1 - alpha) * math.exp(log_baseline)

    joint, marginal = [], []
    for i in range(n):
        for j in range(n):
            if j != i:
                joint.append(scores[i, i] - torch.log(baseline(i, j)))
                marginal.append(torch.exp(scores[i, j]) / baseline(i, i))
    return 1 + torch.stack(joint).mean() - torch.stack(marginal).mean()


def nce_log_probs(scores, pos_offset=0, clip=None):
    """Full softmax for every positive (i, c) of (na, nb, nc) scores; returns (na, nc)."""
    na, nb, nc = scores.shape
    s = scores if clip is None else clip * torch.tanh(scores / clip)
    rows = []
    for i in range(na):
        p = i + pos_offset
        row = []
        for c in range(nc):
            candidates = [s[i, p, c]]
            for j in range(nb):
                if j != p:
                    for m in range(nc):
                        candidates.append(s[i, j, m])
            row.append(torch.log_softmax(torch.stack(candidates), dim=0)[0])
        rows.append(torch.stack(row))
    return torch.stack(rows)


def nce_loss(scores, pos_offset=0, penalty=0.0, clip=None):
    loss = -nce_log_probs(scores, pos_offset, clip).mean()
    if penalty:
        loss = loss + penalty * (scores ** 2).mean()
    return loss


def mixture_nce(scores, tau, alpha, clip=None):
    """Returns (value, objective with entropy) for (N, N, L, K) scores, from per-component loops."""
    n, _, n_loc, k = scores.shape
    per_component = torch.stack([nce_log_probs(scores[..., c], 0, clip) for c in range(k)])   # (K, N, L)
    values, objectives = [], []
    for i in range(n):
        for loc in range(n_loc):
            s = per_component[:, i, loc]
            weights = torch.exp(tau * s) / torch.exp(tau * s).sum()
            entropy = -(weights * torch.log(weights)).sum()
            values.append((weights * s).sum())
            objectives.append((weights * s).sum() + alpha * entropy)
    log_k = math.log(1 + (n - 1) * n_loc)
    return torch.stack(values).mean() + log_k, torch.stack(objectives).mean() + log_k
