"""Critics: learnable functions ``T(x, y)`` that turn a batch into the ``(N, N)`` score matrix.

Every critic maps ``x`` of shape ``(N, x_dim)`` and ``y`` of shape ``(N, y_dim)`` to
``scores[i, j] = T(x_i, y_j)``: the diagonal holds the N joint pairs, the off-diagonal the
N(N-1) pairs from the product of marginals (the convention of :mod:`mi_estimators.bounds.base`).

* :class:`SeparableCritic` ``T(x, y) = g(x)ᵀ h(y)`` with two MLP embeddings; one matrix product
  gives all N² scores (Poole et al. 2019, arXiv:1905.06922, "separable").
* :class:`ConcatCritic` ``T(x, y) = f([x, y])``, one MLP applied to all N² concatenated pairs
  (Poole et al.'s "concat"/"joint" critic; MINE's statistics network, Belghazi et al. 2018,
  arXiv:1801.04062).
* :class:`ProjectedCritic` ``T(x, y) = T₀([P_x x, ‖x‖²/d_x], [P_y y, ‖y‖²/d_y])``: any critic on
  fixed linear projections of each side (in :func:`mi_estimators.estimate`, the leading canonical
  directions: a critic of few inputs for wide data whose dependence is in a few directions).
* :class:`BilinearCritic` ``T(x, y) = xᵀ W y`` (plus, with ``quadratic=True``, ``xᵀAx + yᵀBy + c``,
  which contains the exact log density ratio of any Gaussian pair), trained like the others.
  The Gaussian log density ratio *fitted in closed form* to data is not a critic here but in
  :mod:`mi_estimators.copula` (:class:`~mi_estimators.copula.EllipticalCopulaCritic` with
  ``df=inf``: the Gaussian copula, on normal scores).

The MLP critics take ``norm_feature=True`` to append ``‖x‖²/d`` (and ``‖y‖²/d``) to their inputs:
the squared radius, which a ReLU or SiLU network otherwise has to build from many units, and on
which the density ratio of rotations, spirals and radial families depends.

Every critic takes ``n_models=K`` to hold K independent copies with stacked weights: then
``critic(x, y)`` returns ``(K, N, N)`` and one batched matrix product trains all K at once (how
the validation suite trains one critic per bound in a single pass). Copy ``k`` behaves exactly as
an unstacked critic with the same weights; :func:`stack` and
:func:`unstack` convert between the two layouts. A stacked :class:`SeparableCritic` also takes
``(K, N, d)`` inputs, copy k its own rows: K critics fitted to different rows (the folds of a
cross-fit) train as one.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from mi_estimators.options import integer, positive_int

__all__ = ["BilinearCritic", "ConcatCritic", "EnsembleCritic", "MLP", "ProjectedCritic", "SeparableCritic",
           "StackedLinear", "inner_critic", "inner_inputs", "stack", "unstack", "with_norm_feature"]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "tanh": nn.Tanh, "silu": nn.SiLU,
    "softplus": nn.Softplus,
}


def _activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {', '.join(sorted(_ACTIVATIONS))}"
        ) from None


class StackedLinear(nn.Module):
    """K independent affine maps applied with one batched matmul.

    ``weight`` has shape ``(K, in, out)`` and ``bias`` ``(K, 1, out)``; the input is
    ``(K, N, in)`` (or ``(N, in)``, shared by all K) and the output ``(K, N, out)``. Each copy is
    initialised like :class:`torch.nn.Linear` (uniform in ``±1/sqrt(in)``).
    """

    def __init__(self, n_models: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.n_models = n_models
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n_models, in_features, out_features).uniform_(-bound, bound))
        self.bias = (nn.Parameter(torch.empty(n_models, 1, out_features).uniform_(-bound, bound))
                     if bias else None)

    @classmethod
    def from_linears(cls, linears: list[nn.Linear]) -> "StackedLinear":
        """Stack K ``nn.Linear`` layers of the same shape (copies their weights)."""
        first = linears[0]
        out = cls(len(linears), first.in_features, first.out_features, bias=first.bias is not None)
        with torch.no_grad():
            out.weight.copy_(torch.stack([lin.weight.t() for lin in linears]))
            if out.bias is not None:
                out.bias.copy_(torch.stack([lin.bias[None] for lin in linears]))
        return out

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # (N, in) shared by every copy
            x = x.expand(self.n_models, *x.shape)
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)  # (K, N, out)

    def extra_repr(self) -> str:
        return f"n_models={self.n_models}, in_features={self.in_features}, out_features={self.out_features}"


def _linear(n_models: int | None, i: int, o: int) -> nn.Module:
    return nn.Linear(i, o) if n_models is None else StackedLinear(n_models, i, o)


class MLP(nn.Sequential):
    """``layers`` hidden layers of width ``hidden`` with an activation, then a linear output.

    With ``n_models=K`` every layer is a :class:`StackedLinear`: input ``(N, in)`` or
    ``(K, N, in)``, output ``(K, N, out)``.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, layers: int = 2,
                 activation: str = "relu", n_models: int | None = None):
        positive_int("hidden", hidden)
        integer("layers", layers, 0)
        modules: list[nn.Module] = []
        width = in_dim
        for _ in range(layers):
            modules += [_linear(n_models, width, hidden), _activation(activation)]
            width = hidden
        modules.append(_linear(n_models, width, out_dim))
        super().__init__(*modules)


def with_norm_feature(x: Tensor, projection: Tensor | None = None) -> Tensor:
    """``[x, ‖x‖²/d]``: the rows of ``x`` (``(..., d)``) with their mean square appended; with a
    ``projection`` P ``(k, d)``, ``[P x, ‖x‖²/d]`` (the rows projected, the mean square of the rows).

    >>> with_norm_feature(torch.tensor([[1.0, 3.0]])).tolist()
    [[1.0, 3.0, 5.0]]
    >>> with_norm_feature(torch.tensor([[1.0, 3.0]]), torch.tensor([[1.0, 1.0]])).tolist()
    [[4.0, 5.0]]
    """
    head = x if projection is None else x @ projection.T.to(x.dtype)
    return torch.cat([head, x.pow(2).mean(-1, keepdim=True)], dim=-1)


class _Critic(nn.Module):
    """Shared input checks and the optional norm feature; subclasses implement :meth:`scores`.

    ``config`` holds the keyword options the critic was built with (besides the dimensions and
    ``n_models``), so that an unstacked copy is ``type(critic)(x_dim, y_dim, **critic.config)``.
    """

    #: whether a stacked copy (``n_models=K``) also takes inputs ``(K, N, d)``, copy k its own rows
    _per_copy_inputs = False

    def __init__(self, x_dim: int, y_dim: int, n_models: int | None, norm_feature: bool = False, **config):
        super().__init__()
        self.x_dim = positive_int("x_dim", x_dim)
        self.y_dim = positive_int("y_dim", y_dim)
        self.n_models = None if n_models is None else positive_int("n_models", n_models)
        self.norm_feature = bool(norm_feature)
        self.config = dict(config, norm_feature=self.norm_feature) if norm_feature else dict(config)
        #: the MLPs' input widths (one more column per side with the norm feature)
        self.in_dims = (x_dim + self.norm_feature, y_dim + self.norm_feature)

    def _inputs(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x, y = self._check(x, y)
        return (with_norm_feature(x), with_norm_feature(y)) if self.norm_feature else (x, y)

    def _check(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        for name, t, d in (("x", x, self.x_dim), ("y", y, self.y_dim)):
            if not isinstance(t, Tensor) or not t.is_floating_point():
                raise ValueError(
                    f"{name} must be a floating-point torch.Tensor of shape (N, {d}), got "
                    f"{getattr(t, 'dtype', type(t).__name__)}; use torch.as_tensor(a, dtype=torch.float32)"
                )
            if self._per_copy_inputs and self.n_models is not None and t.dim() == 3 \
                    and t.shape[0] == self.n_models and t.shape[2] == d:
                continue  # (K, N, d): copy k scores its own rows
            if t.dim() != 2 or t.shape[1] != d:
                raise ValueError(
                    f"{name} must have shape (N, {d}) for this critic ({name}_dim={d}), got "
                    f"{tuple(t.shape)}; reshape 1-D data with {name}[:, None]"
                )
        return x, y

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores ``(N, N)`` (``(K, N, N)`` with ``n_models=K``): ``scores[..., i, j] = T(x_i, y_j)``.

        ``x`` and ``y`` may also hold different numbers of rows (``(Nx, Ny)`` scores): how a large
        held-out score matrix is computed in row chunks.

        With ``n_models=K``, a :class:`SeparableCritic` also takes ``(K, N, d)`` inputs: copy k scores
        its own rows (how K critics fitted to different rows train as one, :func:`stack`).
        """
        return self.scores(*self._inputs(x, y))

    def scores(self, x: Tensor, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class SeparableCritic(_Critic):
    """``T(x, y) = g(x)ᵀ h(y)``: two MLP embeddings of size ``embed_dim``, one dot product.

    Poole et al. 2019, "On Variational Bounds of Mutual Information", arXiv:1905.06922 (the
    separable critic of their Figure 2: 2 hidden layers of 256, 32-d embedding — the defaults).
    ``norm_feature=True`` appends ``‖x‖²/d`` and ``‖y‖²/d`` to the inputs (see the module notes).
    All N² scores cost two MLP passes over N points and one matrix product, so a held-out set
    can be scored against *all* its pairs (see :meth:`embed`).

    >>> import torch
    >>> critic = SeparableCritic(x_dim=3, y_dim=2, hidden=16, embed_dim=4)
    >>> critic(torch.randn(5, 3), torch.randn(5, 2)).shape
    torch.Size([5, 5])
    >>> SeparableCritic(3, 2, hidden=16, n_models=4)(torch.randn(5, 3), torch.randn(5, 2)).shape
    torch.Size([4, 5, 5])
    """

    _per_copy_inputs = True

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 256, layers: int = 2, embed_dim: int = 32,
                 activation: str = "relu", n_models: int | None = None, norm_feature: bool = False):
        super().__init__(x_dim, y_dim, n_models, norm_feature, hidden=hidden, layers=layers, embed_dim=embed_dim,
                         activation=activation)
        positive_int("embed_dim", embed_dim)
        self.g = MLP(self.in_dims[0], embed_dim, hidden, layers, activation, n_models)
        self.h = MLP(self.in_dims[1], embed_dim, hidden, layers, activation, n_models)

    def embed(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The embeddings ``(g(x), h(y))``; ``g(x) @ h(y).mT`` are the scores."""
        x, y = self._inputs(x, y)
        return self.g(x), self.h(y)

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        gx, hy = self.g(x), self.h(y)  # (N, E) or (K, N, E)
        return gx @ hy.transpose(-1, -2)


class ConcatCritic(_Critic):
    """``T(x, y) = f([x, y])``: one MLP on the concatenation, evaluated on all N² pairs.

    Poole et al. 2019 (arXiv:1905.06922), the "concat" critic (2 hidden layers of 256 by
    default); Belghazi et al. 2018, MINE (arXiv:1801.04062). The first layer is affine, so
    ``W [x_i, y_j] + b = W_x x_i + (W_y y_j + b)`` is computed as an ``(N, 1, H) + (1, N, H)``
    broadcast instead of materialising N² concatenated inputs; the result is identical.

    >>> import torch
    >>> ConcatCritic(x_dim=3, y_dim=2, hidden=16)(torch.randn(5, 3), torch.randn(5, 2)).shape
    torch.Size([5, 5])
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 256, layers: int = 2,
                 activation: str = "relu", n_models: int | None = None, norm_feature: bool = False):
        super().__init__(x_dim, y_dim, n_models, norm_feature, hidden=hidden, layers=layers, activation=activation)
        positive_int("layers", layers)
        self.f = MLP(sum(self.in_dims), 1, hidden, layers, activation, n_models)

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        first = self.f[0]
        n, m = x.shape[0], y.shape[0]

        def rest(h: Tensor) -> Tensor:
            for layer in list(self.f)[1:]:
                h = layer(h)
            return h

        dx = self.in_dims[0]
        if self.n_models is None:
            w_x, w_y = first.weight[:, :dx], first.weight[:, dx:]  # (H, dx), (H, dy)
            hx = x @ w_x.t()  # (N, H)
            hy = y @ w_y.t() + first.bias  # (N, H)
            pre = hx[:, None, :] + hy[None, :, :]  # (N, N, H): row i = x_i, column j = y_j
            return rest(pre).reshape(n, m)
        w_x, w_y = first.weight[:, :dx], first.weight[:, dx:]  # (K, dx, H), (K, dy, H)
        hx = torch.matmul(x, w_x)  # (K, N, H)
        hy = torch.baddbmm(first.bias, y.expand(self.n_models, *y.shape), w_y)  # (K, N, H)
        pre = hx[:, :, None, :] + hy[:, None, :, :]  # (K, N, N, H)
        return rest(pre.reshape(self.n_models, n * m, -1)).reshape(self.n_models, n, m)


class BilinearCritic(_Critic):
    """``T(x, y) = xᵀ W y`` (+ ``xᵀ A x + yᵀ B y + c`` with ``quadratic=True``).

    The bilinear critic of Oord et al. 2018 (CPC, arXiv:1807.03748, ``f = exp(zᵀ W c)``). For
    jointly Gaussian (x, y) the log density ratio ``log p(x, y) / p(x)p(y)`` is exactly such a
    quadratic form, so ``quadratic=True`` can represent the optimal critic; the plain form is
    optimal for InfoNCE when the marginal of y is isotropic (terms in x alone cancel there).
    ``W`` starts at zero (the independence critic). The fitted closed form of that ratio is
    :meth:`mi_estimators.copula.EllipticalCopulaCritic.fit` with ``df=inf``.

    >>> import torch
    >>> BilinearCritic(x_dim=3, y_dim=2)(torch.randn(5, 3), torch.randn(5, 2)).shape
    torch.Size([5, 5])
    """

    def __init__(self, x_dim: int, y_dim: int, quadratic: bool = False, n_models: int | None = None):
        super().__init__(x_dim, y_dim, n_models, quadratic=bool(quadratic))
        lead = () if n_models is None else (n_models,)
        self.quadratic = bool(quadratic)
        self.weight = nn.Parameter(torch.zeros(*lead, x_dim, y_dim))
        if self.quadratic:
            self.a = nn.Parameter(torch.zeros(*lead, x_dim, x_dim))
            self.b = nn.Parameter(torch.zeros(*lead, y_dim, y_dim))
            self.c = nn.Parameter(torch.zeros(*lead, 1, 1))

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        s = x @ self.weight @ y.t()  # (N, N) or (K, N, N)
        if self.quadratic:
            qx = ((x @ self.a) * x).sum(-1)  # (N,) or (K, N)
            qy = ((y @ self.b) * y).sum(-1)
            s = s + qx[..., :, None] + qy[..., None, :] + self.c
        return s


class EnsembleCritic(nn.Module):
    """``T(x, y) = (1/K) Σ_k T_k(x, y)``: the mean score of K critics (e.g. trained from different
    seeds). Any function of ``(x, y)`` is a critic, so a bound read out on held-out rows stays a
    bound; averaging cancels part of each member's overfitting noise.

    >>> import torch
    >>> members = [ConcatCritic(1, 1, hidden=4) for _ in range(3)]
    >>> x, y = torch.randn(5, 1), torch.randn(5, 1)
    >>> bool(torch.allclose(EnsembleCritic(members)(x, y), sum(m(x, y) for m in members) / 3))
    True
    """

    def __init__(self, critics: list[nn.Module]):
        super().__init__()
        if not critics:
            raise ValueError("EnsembleCritic needs at least one critic")
        self.members = nn.ModuleList(critics)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.stack([critic(x, y) for critic in self.members]).mean(0)


class ProjectedCritic(nn.Module):
    """``T(x, y) = T₀([P_x x, ‖x‖²/d_x], [P_y y, ‖y‖²/d_y])``: the critic ``T₀`` applied to fixed
    linear projections of each side, each with its full mean square appended.

    ``px`` ``(k_x, x_dim)`` and ``py`` ``(k_y, y_dim)`` are buffers (not trained); ``critic`` takes
    ``k_x + 1`` and ``k_y + 1`` columns. With the k leading canonical directions of the training
    rows as projections (:meth:`mi_estimators.copula.Canonical.of`), a critic of 25 + 25 inputs
    becomes one of k + 1 per side: far fewer weights to fit from a few thousand rows when the
    dependence lives in a few directions and the radius (as in the spiral tasks, whose turning
    angle depends on ‖x‖²). Any function of ``(x, y)`` is a critic, so bounds stay bounds.

    >>> import torch
    >>> inner = SeparableCritic(3, 2, hidden=8, embed_dim=4)
    >>> critic = ProjectedCritic(inner, torch.randn(2, 5), torch.randn(1, 4))
    >>> x, y = torch.randn(6, 5), torch.randn(6, 4)
    >>> a, b = x @ critic.px.T, y @ critic.py.T
    >>> bool(torch.allclose(critic(x, y), inner(torch.cat([a, x.pow(2).mean(1, keepdim=True)], 1),
    ...                                           torch.cat([b, y.pow(2).mean(1, keepdim=True)], 1))))
    True
    """

    def __init__(self, critic: nn.Module, px: Tensor, py: Tensor):
        super().__init__()
        for name, p in (("px", px), ("py", py)):
            if not isinstance(p, Tensor) or p.dim() != 2 or not p.is_floating_point():
                raise ValueError(f"{name} must be a 2-D floating-point tensor (k, dim), got "
                                 f"{getattr(p, 'shape', type(p).__name__)}")
            self.register_buffer(name, p.detach().clone())
        self.critic = critic
        self.x_dim, self.y_dim = px.shape[1], py.shape[1]

    def _side(self, name: str, t: Tensor, p: Tensor) -> Tensor:
        if not isinstance(t, Tensor) or t.dim() != 2 or t.shape[1] != p.shape[1]:
            raise ValueError(f"{name} must have shape (N, {p.shape[1]}) for this critic, got "
                             f"{tuple(getattr(t, 'shape', ()))}")
        return with_norm_feature(t, p)

    def inputs(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """What the inner critic takes: ``([P_x x, ‖x‖²/d_x], [P_y y, ‖y‖²/d_y])``."""
        return self._side("x", x, self.px), self._side("y", y, self.py)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.critic(*self.inputs(x, y))


def inner_critic(critic: nn.Module) -> nn.Module:
    """The trained critic of ``critic``: the one inside a fixed input map (a wrapper with an
    ``inputs(x, y)`` method around ``.critic``, such as :class:`ProjectedCritic`), else ``critic``."""
    return critic.critic if hasattr(critic, "inputs") else critic


def inner_inputs(critic: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """What :func:`inner_critic` takes for the rows ``(x, y)``: ``critic.inputs(x, y)`` for a fixed
    input map, else ``(x, y)``; ``critic(x, y) == inner_critic(critic)(*inner_inputs(critic, x, y))``.

    >>> inner = SeparableCritic(2, 2, hidden=4, embed_dim=2)  # one direction a side, plus its mean square
    >>> critic = ProjectedCritic(inner, torch.eye(3)[:1], torch.eye(2)[:1])
    >>> x, y = torch.randn(4, 3), torch.randn(4, 2)
    >>> inner_critic(critic) is inner and bool(torch.equal(critic(x, y), inner(*inner_inputs(critic, x, y))))
    True
    """
    return critic.inputs(x, y) if hasattr(critic, "inputs") else (x, y)


def stack(critics: list[_Critic]) -> _Critic:
    """K critics of one kind, dimensions and options as one critic with ``n_models=K`` whose copy k
    holds the weights of ``critics[k]`` (the inverse of :func:`unstack`).

    >>> import torch
    >>> members = [SeparableCritic(3, 2, hidden=8, embed_dim=4) for _ in range(2)]
    >>> x, y = torch.randn(5, 3), torch.randn(5, 2)
    >>> bool(torch.allclose(stack(members)(x, y)[1], members[1](x, y)))
    True
    """
    first = critics[0]
    if not isinstance(first, (SeparableCritic, ConcatCritic, BilinearCritic)) or first.n_models is not None:
        raise ValueError(f"cannot stack a {type(first).__name__}: stack unstacked separable, concat or "
                         "bilinear critics")
    key = (type(first), first.x_dim, first.y_dim, first.config)
    if any((type(c), c.x_dim, c.y_dim, c.config) != key for c in critics):
        raise ValueError("stack needs critics of one kind with the same dimensions and options")
    out = type(first)(first.x_dim, first.y_dim, n_models=len(critics), **first.config)
    with torch.no_grad():
        for m_stacked, *ms in zip(out.modules(), *(c.modules() for c in critics)):
            if isinstance(m_stacked, StackedLinear):
                m_stacked.weight.copy_(torch.stack([m.weight.t() for m in ms]))
                if m_stacked.bias is not None:
                    m_stacked.bias.copy_(torch.stack([m.bias[None] for m in ms]))
            elif isinstance(m_stacked, BilinearCritic):
                for name, p in m_stacked.named_parameters():
                    p.copy_(torch.stack([getattr(m, name) for m in ms]))
    return out.to(next(first.parameters()).device)


def unstack(critic: _Critic, k: int) -> _Critic:
    """Copy ``k`` of a critic built with ``n_models=K``, as an ordinary (unstacked) critic."""
    if critic.n_models is None:
        raise ValueError("unstack needs a critic built with n_models=K")
    if not 0 <= k < critic.n_models:
        raise ValueError(f"k must be in [0, {critic.n_models}), got {k}")
    if not isinstance(critic, (SeparableCritic, ConcatCritic, BilinearCritic)):
        raise ValueError(f"cannot unstack a {type(critic).__name__}")
    single = type(critic)(critic.x_dim, critic.y_dim, **critic.config)
    with torch.no_grad():
        for m_single, m_stacked in zip(single.modules(), critic.modules()):
            if isinstance(m_stacked, StackedLinear):  # (K, in, out) -> nn.Linear's (out, in)
                m_single.weight.copy_(m_stacked.weight[k].t())
                if m_stacked.bias is not None:
                    m_single.bias.copy_(m_stacked.bias[k, 0])
            elif isinstance(m_stacked, BilinearCritic):
                for name, p in m_single.named_parameters():
                    p.copy_(getattr(m_stacked, name)[k])
    return single.to(next(critic.parameters()).device)
