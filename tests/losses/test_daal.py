"""Tests of the DAAL reconstruction: naive loop oracle, gradcheck, point ablation, state,
learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dmlstudy.losses import build_loss, loss_hyperparameters
from dmlstudy.losses.daal import UNIFORM_KAPPA, DensityAwareAdaptiveLineLoss, segment_projection


def naive_daal(
    x,
    y,
    a,
    b,
    *,
    s,
    m,
    spread=None,
    seen=None,
    kappa=UNIFORM_KAPPA,
    lam_len=1.0,
    lam_den=1.0,
    elastic=True,
    density=True,
):
    """Per-sample / per-class loop straight from the formulas in the module docstring."""
    x = [[e / math.sqrt(sum(f * f for f in v)) for e in v] for v in x.tolist()]
    a, b, y = a.tolist(), b.tolist(), y.tolist()
    dim = len(x[0])
    ce, t_own = 0.0, []
    for i, xi in enumerate(x):
        logits = []
        for c in range(len(a)):
            v = [b[c][k] - a[c][k] for k in range(dim)]
            l2 = sum(e * e for e in v)
            t = sum((xi[k] - a[c][k]) * v[k] for k in range(dim)) / max(l2, 1e-12)
            if c == y[i]:
                t_own.append(t)
            tc = min(max(t, 0.0), 1.0)
            d = math.sqrt(sum((xi[k] - a[c][k] - tc * v[k]) ** 2 for k in range(dim)))
            logits.append(-s * (d + (m if c == y[i] else 0.0)))
        mx = max(logits)
        ce += mx + math.log(sum(math.exp(z - mx) for z in logits)) - logits[y[i]]
    total = ce / len(x)
    classes = sorted(set(y))
    if elastic:
        terms = [(math.dist(a[c], b[c]) - kappa * spread[c]) ** 2 for c in classes if seen[c]]
        total += lam_len * (sum(terms) / len(terms) if terms else 0.0)
    if density:
        terms = []
        for c in classes:
            tc = [t for t, yi in zip(t_own, y) if yi == c]
            if len(tc) >= 2:
                mean = sum(tc) / len(tc)
                var = sum((t - mean) ** 2 for t in tc) / (len(tc) - 1)  # unbiased, ddof 1
                terms.append(max(0.0, 1 / 12 - var))
        total += lam_den * (sum(terms) / len(terms) if terms else 0.0)
    return total


def spreads(x, y, a, b):
    """Per class, the unbiased (ddof 1) std of ⟨x̂ − μ_c, u_c⟩ along u_c = (b_c − a_c)/‖b_c −
    a_c‖, as loops."""
    xs = F.normalize(x, dim=1).tolist()
    out = []
    for c in range(len(a)):
        v = (b[c] - a[c]).tolist()
        length = math.sqrt(sum(e * e for e in v))
        proj = [sum(e * f for e, f in zip(xi, v)) / length for xi, yi in zip(xs, y) if yi == c]
        mean = sum(proj) / len(proj) if proj else 0.0
        var = sum((t - mean) ** 2 for t in proj) / (len(proj) - 1) if len(proj) >= 2 else 0.0
        out.append(math.sqrt(var))
    return out


def setup(seed=0, b=14, c=4, d=5, dtype=torch.float64, **kw):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=dtype)
    y = torch.randint(0, c, (b,), generator=g)
    y[:3] = torch.tensor(
        [0, 0, 1]
    )  # at least one class with >= 2 samples, and class c-1 maybe alone
    torch.manual_seed(seed)
    loss = DensityAwareAdaptiveLineLoss(c, d, **kw).to(dtype)
    with torch.no_grad():
        loss.vertices_a.copy_(torch.randn(c, d, generator=g, dtype=dtype) * 0.5)
        if loss.vertices_b is not None:
            loss.vertices_b.copy_(torch.randn(c, d, generator=g, dtype=dtype) * 0.5)
    return loss, x, y


def test_matches_naive_loop_in_training_mode_and_updates_spread():
    loss, x, y = setup(
        scale=5.0, margin=0.3, elastic_weight=0.7, density_weight=2.0, spread_momentum=0.25
    )
    loss.train()
    value = loss(x, y)
    a, b = loss.vertices_a.detach(), loss.vertices_b.detach()
    sp = spreads(x, y, a, b)
    seen = [int((y == k).sum()) >= 2 for k in range(4)]
    assert loss.spread_seen.tolist() == seen
    assert loss.running_spread.tolist() == pytest.approx(
        [s if k else 0.0 for s, k in zip(sp, seen)]
    )
    expected = naive_daal(x, y, a, b, s=5.0, m=0.3, spread=sp, seen=seen, lam_len=0.7, lam_den=2.0)
    assert value.item() == pytest.approx(expected, rel=1e-9)
    # second step: EMA of the variances with momentum 0.25, the std its square root
    x2 = x.flip(0) * 2 + 0.1
    loss(x2, y)
    sp2 = spreads(x2, y, a, b)
    expected_spread = [
        math.sqrt(0.75 * s1**2 + 0.25 * s2**2) if k else 0.0 for s1, s2, k in zip(sp, sp2, seen)
    ]
    assert loss.running_spread.tolist() == pytest.approx(expected_spread)
    # eval mode leaves the buffer alone
    before = loss.running_spread.clone()
    loss.eval()
    loss(torch.randn(14, 5, dtype=torch.float64), y)
    assert torch.equal(loss.running_spread, before)
    assert {"running_spread", "spread_seen"} <= set(loss.state_dict())


def test_class_spread_uniformly_along_its_segment_satisfies_both_terms():
    """σ_c is the (unbiased) std along the segment direction u_c and κ = √12: a class whose
    projections have the uniform law's variance (L²/12) costs nothing in the elastic term AND the
    density hinge, however wide it is across the segment (an RMS radius over all dimensions would
    count the cross-segment width ``w`` and pull the segment longer than the data)."""
    c, s, w = 0.6, 0.5, math.sqrt(1 - 0.36 - 0.25)
    x = torch.tensor([[c, s, w], [c, -s, w], [c, s, -w], [c, -s, -w]], dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.long)
    loss = DensityAwareAdaptiveLineLoss(2, 3, spread_momentum=1.0).double().train()
    sigma = s * math.sqrt(4 / 3)  # ddof-1 std of ±s, four samples, along u = e_2
    half = math.sqrt(12.0) * sigma / 2  # length √12·σ
    with torch.no_grad():
        loss.vertices_a.copy_(torch.tensor([[c, -half, 0.0], [-1.0, 0.0, 0.0]], dtype=x.dtype))
        loss.vertices_b.copy_(torch.tensor([[c, half, 0.0], [-1.0, 0.1, 0.0]], dtype=x.dtype))
    loss(x, y)
    assert loss.running_spread[0].item() == pytest.approx(sigma, rel=1e-12)
    assert loss.elastic_term(y).item() == pytest.approx(0.0, abs=1e-28)
    _, t = segment_projection(x, loss.vertices_a.detach(), loss.vertices_b.detach())
    assert t[:, 0].var(unbiased=True).item() == pytest.approx(1 / 12, rel=1e-12)
    assert loss.density_term(t, y).item() == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize(("elastic", "density"), [(False, False), (True, False), (False, True)])
def test_switches_match_naive_loop(elastic, density):
    loss, x, y = setup(seed=1, scale=3.0, margin=0.1, elastic=elastic, density=density)
    loss.eval()
    loss.running_spread.copy_(torch.tensor([0.3, 0.6, 0.2, 0.9], dtype=torch.float64))
    loss.spread_seen.copy_(torch.tensor([True, True, False, True]))
    expected = naive_daal(
        x,
        y,
        loss.vertices_a.detach(),
        loss.vertices_b.detach(),
        s=3.0,
        m=0.1,
        spread=[0.3, 0.6, 0.2, 0.9],
        seen=[True, True, False, True],
        elastic=elastic,
        density=density,
    )
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-9)


def test_gradcheck_float64():
    loss, x, y = setup(seed=2, scale=2.0, margin=0.2)
    loss.eval()  # the running spread is fixed state; training mode would change it between calls
    loss.running_spread.copy_(torch.tensor([0.5, 0.4, 0.3, 0.2]))
    loss.spread_seen.fill_(True)
    _, t = segment_projection(
        F.normalize(x, dim=1), loss.vertices_a.detach(), loss.vertices_b.detach()
    )
    assert ((t.abs() > 1e-3) & ((t - 1).abs() > 1e-3)).all()  # away from the clamp kinks

    def f(e, va, vb):
        return torch.func.functional_call(loss, {"vertices_a": va, "vertices_b": vb}, (e, y))

    assert torch.autograd.gradcheck(f, (x.requires_grad_(True), loss.vertices_a, loss.vertices_b))


def test_point_ablation_equals_independent_point_proxy_margin_softmax():
    loss, x, y = setup(
        seed=3, prototype="point", elastic=False, density=False, scale=7.0, margin=0.25
    )
    assert loss.vertices_b is None
    p = loss.vertices_a
    xn = F.normalize(x, dim=1)
    d = torch.cdist(xn, p)  # point-proxy distances
    logits = -7.0 * (d + 0.25 * F.one_hot(y, 4))
    reference = F.cross_entropy(logits, y)
    value = loss(x, y)
    assert value.item() == pytest.approx(reference.item(), rel=1e-10)
    g1 = torch.autograd.grad(value, p)[0]
    g2 = torch.autograd.grad(
        F.cross_entropy(-7.0 * (torch.cdist(xn, p) + 0.25 * F.one_hot(y, 4)), y), p
    )[0]
    assert torch.allclose(g1, g2)
    # a segment whose two vertices coincide is the same loss (same code path)
    seg, _, _ = setup(seed=3, elastic=False, density=False, scale=7.0, margin=0.25)
    with torch.no_grad():
        seg.vertices_a.copy_(p)
        seg.vertices_b.copy_(p)
    assert seg(x, y).item() == pytest.approx(reference.item(), rel=1e-10)
    assert len(loss.param_groups(1.0)[0]["params"]) == 1


def test_edge_cases_and_errors():
    with pytest.raises(ValueError, match="elastic=False and density=False"):
        build_loss("daal", num_classes=3, embedding_dim=4, prototype="point")
    with pytest.raises(ValueError, match="'segment' or 'point'"):
        build_loss("daal", num_classes=3, embedding_dim=4, prototype="line")
    loss = build_loss("daal", num_classes=3, embedding_dim=4)
    with pytest.raises(ValueError, match=r"daal: labels must be contiguous class ids in 0\.\.2"):
        loss(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        loss(torch.randn(2, 5), torch.tensor([0, 1]))
    # every class a singleton: no spread, no density term, but a finite loss with gradients
    x = torch.randn(3, 4, requires_grad=True)
    value = loss(x, torch.tensor([0, 1, 2]))
    value.backward()
    assert torch.isfinite(value) and not loss.spread_seen.any()
    assert loss.vertices_a.grad is not None and torch.isfinite(x.grad).all()
    # a sample exactly on a vertex (distance 0) keeps finite gradients
    loss2, _, _ = setup(seed=4, dtype=torch.float32)
    e = F.normalize(loss2.vertices_a.detach()[:2].clone(), dim=1)
    with torch.no_grad():
        loss2.vertices_a[:2] = e
    e.requires_grad_(True)
    loss2(e, torch.tensor([0, 1])).backward()
    assert torch.isfinite(e.grad).all()


def test_permutation_invariance_and_defaults():
    loss, x, y = setup(seed=5)
    loss.eval()
    loss.spread_seen.fill_(True)
    loss.running_spread.fill_(0.4)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    assert loss(x, y).item() == pytest.approx(loss(x[perm], y[perm]).item(), rel=1e-12)
    hp = loss_hyperparameters("daal")
    assert (
        hp["prototype"] == "segment"
        and hp["kappa"] == math.sqrt(12.0)
        and hp["proxy_lr_multiplier"] == 100.0
    )
    built = build_loss("daal", num_classes=6, embedding_dim=8, init_length=0.3)
    assert built.metric == "cosine" and built.normalize_embeddings
    lengths = (built.vertices_b - built.vertices_a).norm(dim=1)
    assert torch.allclose(lengths, torch.full((6,), 0.3), atol=1e-6)
    assert built.param_groups(1e-4)[0]["lr"] == pytest.approx(1e-2)


def test_learning_sanity():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(5).repeat_interleave(8)
    emb = torch.randn(40, 6, generator=g).requires_grad_(True)
    torch.manual_seed(0)
    loss = build_loss("daal", num_classes=5, embedding_dim=6)
    opt = torch.optim.Adam([{"params": [emb], "lr": 0.05}, *loss.param_groups(0.05 / 100 * 5)])
    first = loss(emb, y).item()
    for _ in range(100):
        opt.zero_grad()
        value = loss(emb, y)
        value.backward()
        opt.step()
    assert value.item() < 0.3 * first
    xn = F.normalize(emb.detach(), dim=1)
    distances, _ = segment_projection(xn, *(v.detach() for v in loss.segments()))
    assert (distances.argmin(1) == y).all()  # every sample is nearest to its own class's segment
    # Leave-one-out Recall@1 on the training set: the classes stay spread along their segments
    # (the loss's point), so a sample at a segment's end may sit nearer another class's sample.
    sims = xn @ xn.T - 2 * torch.eye(40)
    assert (y[sims.argmax(1)] == y).float().mean().item() >= 0.9


def _load_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_daal_subclusters.py"
    spec = importlib.util.spec_from_file_location("bench_daal_subclusters", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_segment_preserves_more_subcluster_structure_than_point():
    """Two-mode synthetic classes, MLP embedder: both variants learn the classes (R@1 = 1), the
    segment prototype (with its density term) keeps the two sub-clusters far more separated than
    the point prototype, seed by seed (benchmarks/bench_daal_subclusters.py prints the numbers)."""
    bench = _load_benchmark()
    res = bench.run_experiment([0, 1], steps=150, variants=["segment", "point"])
    for seg, pt in zip(res["segment"], res["point"]):
        assert seg["r1"] >= 0.95 and pt["r1"] >= 0.95
        assert seg["ratio"] > pt["ratio"] + 0.2
        assert seg["nmi"] > pt["nmi"]


def test_two_samples_per_class_uniform_on_a_segment_hit_the_shared_target():
    """Random batches of 128 over ~800 classes hold mostly 2 samples per class. Classes whose 2
    samples are uniform on their segment (length L): the density hinge's argument 1/12 − Var(t)
    is 0 in expectation (the ddof-0 variance left it at 1/24, the hinge on at a uniform spread),
    and κ·σ_running → L, the elastic term's target (an EMA of ddof-0 stds went to L/6·√12 ≈
    0.58 L). The hinge *value* stays positive on average (≈ 0.038 at 2 samples: a hinge at its
    kink turns estimation noise into a positive mean); its target, 1/12, is the elastic one."""
    n_classes, draws, burn_in, length, c = 64, 400, 100, 1.0, 0.6
    g = torch.Generator().manual_seed(0)
    loss = DensityAwareAdaptiveLineLoss(n_classes, 3).double().train()  # momentum 0.1
    half = length / 2
    with torch.no_grad():  # every class the same segment, u = e_2, on the plane x_1 = c
        loss.vertices_a.copy_(torch.tensor([c, -half, 0.0]).expand(n_classes, 3))
        loss.vertices_b.copy_(torch.tensor([c, half, 0.0]).expand(n_classes, 3))
    y = torch.arange(n_classes).repeat_interleave(2)
    gaps, gaps_ddof0, sigmas = [], [], []
    for i in range(draws):
        tau = (torch.rand(len(y), generator=g, dtype=torch.float64) - 0.5) * length
        x = torch.stack([torch.full_like(tau, c), tau, (1 - c * c - tau * tau).sqrt()], 1)
        loss(x, y)  # unit vectors: the loss's normalization keeps them; ⟨x, u⟩ = tau exactly
        _, t = segment_projection(x, loss.vertices_a.detach(), loss.vertices_b.detach())
        t_own = t[torch.arange(len(y)), y].view(n_classes, 2)
        gaps.append(1 / 12 - t_own.var(dim=1, unbiased=True))
        gaps_ddof0.append(1 / 12 - t_own.var(dim=1, unbiased=False))
        if i >= burn_in:
            sigmas.append(loss.running_spread.clone())
    gap = torch.cat(gaps)
    se = gap.std().item() / math.sqrt(gap.numel())  # independent draws
    assert abs(gap.mean().item()) < 3 * se, (gap.mean().item(), se)
    assert torch.cat(gaps_ddof0).mean().item() == pytest.approx(1 / 24, abs=3 * se)
    target = loss.kappa * torch.stack(sigmas).mean().item()
    assert target == pytest.approx(length, rel=0.03)  # sqrt of an EMA: ~1% Jensen bias low
