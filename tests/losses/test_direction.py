"""Direction regularization (Mohan et al. 2020): naive-loop oracles over all (a, p, n), reduction to
the base losses at γ = 0, gradcheck, learning sanity, edge cases, proxies in param_groups."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from dmlstudy.losses import build_loss, loss_hyperparameters
from dmlstudy.losses.direction import length_floor
from tests.losses import pair_checks as checks

BASES = ("triplet", "multi_similarity", "proxy_nca")


def _cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(u @ v) / max(float(u.norm() * v.norm()), 1e-8)


def naive_triplet(
    x: torch.Tensor, y: torch.Tensor, gamma: float, margin: float, miner: str
) -> float:
    x = F.normalize(x, dim=1)
    b = len(y)

    def d(i: int, j: int) -> float:
        return float((x[i] - x[j]).norm())

    terms = []
    for a in range(b):
        pos = [p for p in range(b) if p != a and y[p] == y[a]]
        neg = [n for n in range(b) if y[n] != y[a]]
        if miner == "hard":
            if not pos or not neg:
                continue
            pos, neg = [max(pos, key=lambda p: d(a, p))], [min(neg, key=lambda n: d(a, n))]
        for p in pos:
            for n in neg:
                if miner == "semihard" and not 0 < d(a, n) - d(a, p) <= margin:
                    continue
                terms.append(
                    max(d(a, p) - d(a, n) + margin - gamma * _cos(x[n] - x[a], x[p] - x[a]), 0.0)
                )
    nonzero = [t for t in terms if t > 0]
    return sum(nonzero) / len(nonzero) if nonzero else 0.0


def naive_ms(x, y, gamma, alpha, beta, lam, eps, mining) -> float:
    x = F.normalize(x, dim=1)
    s = (x @ x.T).tolist()
    b, total = len(y), 0.0
    for i in range(b):
        pos = [p for p in range(b) if p != i and y[p] == y[i]]
        neg = [n for n in range(b) if y[n] != y[i]]
        keep_p, keep_n = pos, neg
        if mining:
            min_pos = min((s[i][p] for p in pos), default=math.inf)
            max_neg = max((s[i][n] for n in neg), default=-math.inf)
            keep_p = [p for p in pos if s[i][p] - eps < max_neg]
            keep_n = [n for n in neg if s[i][n] + eps > min_pos]
        hardest = min(pos, key=lambda p: s[i][p]) if pos else None
        pos_sum = sum(math.exp(-alpha * (s[i][p] - lam)) for p in keep_p)
        neg_sum = 0.0
        for n in keep_n:
            c = _cos(x[n] - x[i], x[hardest] - x[i]) if hardest is not None else 0.0
            neg_sum += math.exp(beta * (s[i][n] - lam - gamma * c))
        total += math.log1p(pos_sum) / alpha + math.log1p(neg_sum) / beta
    return total / b


def naive_proxy_nca(x, y, proxies, gamma, scale, include_positive) -> float:
    x, p = F.normalize(x, dim=1), F.normalize(proxies, dim=1)
    total = 0.0
    for i in range(len(y)):
        t = int(y[i])
        den = 0.0
        for c in range(len(p)):
            if c == t:
                den += (
                    math.exp(-scale * float(((x[i] - p[c]) ** 2).sum()))
                    if include_positive
                    else 0.0
                )
                continue
            dc = float(((x[i] - p[c]) ** 2).sum())
            den += math.exp(-scale * dc - gamma * _cos(p[c] - x[i], p[t] - x[i]))
        total += scale * float(((x[i] - p[t]) ** 2).sum()) + math.log(den)
    return total / len(y)


def _build(base: str, seed: int = 0, num_classes: int = 5, gamma: float = 0.5, **base_params):
    with torch.random.fork_rng(
        devices=[]
    ):  # proxies are drawn from the global generator: isolate it
        torch.manual_seed(seed)
        return build_loss(
            "direction",
            base=base,
            base_params=base_params,
            gamma=gamma,
            num_classes=num_classes,
            embedding_dim=6,
        ).double()


def test_defaults_and_runtime_values() -> None:
    hp = loss_hyperparameters("direction")
    assert hp == {"base": "triplet", "base_params": None, "gamma": 0.5}
    default = build_loss("direction")
    assert (default.margin, default.miner) == (0.1, "all")  # the triplet loss's own defaults
    assert default.param_groups(0.1) == []
    with pytest.raises(ValueError, match="num_classes"):
        build_loss("direction", base="proxy_nca")
    with pytest.raises(ValueError, match="triplet, multi_similarity, proxy_nca"):
        build_loss("direction", base="proxy_anchor")


def test_base_params_are_the_base_loss_keywords() -> None:
    """base_params nest the base loss's own keywords, validated with the registry's errors."""
    with pytest.raises(TypeError, match=r"direction \(base 'triplet'\).*did you mean 'margin'"):
        build_loss("direction", base_params={"margn": 0.2})
    with pytest.raises(TypeError, match="Valid choices: alpha, beta, threshold, epsilon, mining"):
        build_loss("direction", base="multi_similarity", base_params={"margin": 0.2})
    with pytest.raises(ValueError, match=r"\(did you mean 'multi_similarity'\?\)"):
        build_loss("direction", base="multi_similarity_")
    with pytest.raises(
        ValueError, match=r"direction \(base 'triplet'\).*margin -1 is outside \[0, 2\]"
    ):
        build_loss("direction", base_params={"margin": -1.0})
    ms = build_loss("direction", base="multi_similarity", base_params={"beta": 40.0})
    assert (ms.alpha, ms.beta, ms.threshold, ms.epsilon, ms.mining) == (2.0, 40.0, 0.5, 0.1, True)


@pytest.mark.parametrize("miner", ["all", "semihard", "hard"])
@pytest.mark.parametrize(("gamma", "margin", "seed"), [(0.5, 0.1, 0), (1.3, 0.4, 1)])
def test_triplet_matches_naive_loop(miner: str, gamma: float, margin: float, seed: int) -> None:
    x, y = checks.make_batch(seed, per_class=3, num_classes=4, dim=5)
    ours = build_loss(
        "direction", base="triplet", gamma=gamma, base_params={"margin": margin, "miner": miner}
    )(x, y)
    expected = naive_triplet(x, y, gamma, margin, miner)
    assert expected > 0
    assert ours.item() == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("mining", [True, False])
@pytest.mark.parametrize(("gamma", "seed"), [(0.5, 0), (2.0, 1)])
def test_multi_similarity_matches_naive_loop(mining: bool, gamma: float, seed: int) -> None:
    x, y = checks.make_batch(seed, per_class=3, num_classes=4, dim=5)
    y[0] = 9  # an anchor without positives (cos term defined as 0)
    loss = build_loss(
        "direction",
        base="multi_similarity",
        gamma=gamma,
        base_params={"mining": mining, "beta": 10.0, "epsilon": 0.3},
    )
    expected = naive_ms(x, y, gamma, 2.0, 10.0, 0.5, 0.3, mining)
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("include_positive", [False, True])
@pytest.mark.parametrize(("gamma", "scale"), [(0.5, 1.0), (1.5, 3.0)])
def test_proxy_nca_matches_naive_loop(include_positive: bool, gamma: float, scale: float) -> None:
    loss = _build("proxy_nca", gamma=gamma, softmax_scale=scale, include_positive=include_positive)
    x, y = checks.make_batch(2, per_class=2, num_classes=5, dim=6)
    expected = naive_proxy_nca(x, y, loss.proxies.detach(), gamma, scale, include_positive)
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-7)


def test_gamma_zero_is_the_base_loss() -> None:
    x, y = checks.make_batch(4, per_class=3, num_classes=5, dim=6)
    for miner in ("all", "semihard", "hard"):
        torch.testing.assert_close(
            build_loss("direction", gamma=0.0, base_params={"miner": miner})(x, y),
            build_loss("triplet", miner=miner)(x, y),
        )
    torch.testing.assert_close(
        build_loss("direction", base="multi_similarity", gamma=0.0)(x, y),
        build_loss("multi_similarity")(x, y),
    )
    dr = _build("proxy_nca", gamma=0.0)
    nca = build_loss("proxy_nca", num_classes=5, embedding_dim=6).double()
    nca.proxies.data.copy_(dr.proxies.data)
    torch.testing.assert_close(dr(x, y), nca(x, y))


@pytest.mark.parametrize("base", BASES)
def test_gradcheck(base: str) -> None:
    loss = _build(base, **({"margin": 0.3} if base == "triplet" else {}))
    x, y = checks.make_batch(3, per_class=2, num_classes=3, dim=6)
    checks.assert_gradcheck(loss, x, y)
    if base == "proxy_nca":
        proxies = loss.proxies.detach().clone().requires_grad_(True)
        fn = lambda p: torch.func.functional_call(loss, {"proxies": p}, (x, y))  # noqa: E731
        assert torch.autograd.gradcheck(fn, (proxies,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("base", BASES)
def test_learns(base: str) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base_params = {"margin": 0.2} if base == "triplet" else None
        loss = build_loss(
            "direction", base=base, base_params=base_params, num_classes=6, embedding_dim=8
        ).double()
    checks.assert_learns(loss)


@pytest.mark.parametrize("base", BASES)
def test_edge_cases(base: str) -> None:
    loss = _build(base, num_classes=6)
    batches = checks.edge_batches(6)
    for x, y in batches.values():
        checks.assert_finite_with_grad(loss, x, y)
    if base != "proxy_nca":
        checks.assert_zero(loss, *batches["one_class"])
        checks.assert_zero(loss, *batches["singletons"])
    x, y = checks.make_batch(5, per_class=3, num_classes=5, dim=6)
    checks.assert_permutation_invariant(loss, x, y)
    x = torch.ones(4, 6, dtype=torch.float64)  # coincident points: cosines of zero vectors are 0
    checks.assert_finite_with_grad(loss, x, torch.tensor([0, 0, 1, 1]))


def test_proxy_param_groups() -> None:
    loss = _build("proxy_nca", proxy_lr_multiplier=10.0)
    groups = loss.param_groups(0.01)
    assert len(groups) == 1 and groups[0]["params"][0] is loss.proxies
    assert groups[0]["lr"] == pytest.approx(0.1)


def _degenerate_batches(loss) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Configurations where a direction vector is (numerically) zero."""
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(8, 6, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    out = {"negatives_on_anchors": (x[[0, 1, 0, 1, 4, 5, 4, 5]], y)}
    if loss.proxies is not None:  # embeddings on their own proxy: p_y − x = 0
        out["on_own_proxy"] = (loss.proxies.detach()[y].clone(), y)
    return out


@pytest.mark.parametrize("base", BASES)
def test_zero_direction_vectors_are_stable_in_float32(base: str) -> None:
    """Where ``n − a`` (or ``p_y − x``) vanishes the cosine is 0 up to rounding: float32 agrees with
    float64 and the gradient stays bounded (a 1e-8 floor on ‖u‖‖v‖ gave |cos| ≫ 1 from rounding
    noise in float32, values off by 100%, and ~1e6 gradients)."""
    loss64 = _build(base, num_classes=4)
    for case, (x, y) in _degenerate_batches(loss64).items():
        values = {}
        for dtype in (torch.float64, torch.float32):
            loss = copy.deepcopy(loss64).to(dtype)
            emb = x.detach().to(dtype).clone().requires_grad_(True)
            value = loss(emb, y)
            value.backward()
            # |∇cos| ~ 1/‖v‖ near v = 0 is the formula's own; the floor τ bounds it by ~γ/τ
            bound = 10.0 / length_floor(dtype)  # float32: 2.9e3
            assert torch.isfinite(emb.grad).all() and emb.grad.norm() < bound, (
                case,
                dtype,
                emb.grad.norm(),
            )
            values[dtype] = value.item()
        assert values[torch.float32] == pytest.approx(values[torch.float64], rel=1e-3, abs=1e-4), (
            case,
            values,
        )
