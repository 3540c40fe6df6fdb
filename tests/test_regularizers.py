"""Every penalty against a float64 formula written here, independently of the library; the paper's
identities; the batched model-level form against the per-layer sum; bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import orthoreg
from orthoreg.regularizers import (
    LayerSelection,
    regularized_layers,
    regularizer_spec,
    relaxation_k,
    welch_bound,
)

# (name of the case, weight shape, stride): wide, tall, square, 1x1, linear, stride-2
SHAPES = [
    ("wide 3x3", (8, 4, 3, 3), 1),
    ("tall 1x1", (16, 6, 1, 1), 1),
    ("square", (9, 1, 3, 3), 1),
    ("1x1 shortcut", (12, 8, 1, 1), 2),
    ("linear", (10, 7), 1),
    ("stride-2 3x3", (6, 3, 3, 3), 2),
]


def reference(name, weight, stride=1, gamma=1.0, rho=0.5, squared=False):
    """The formulas of docs/method.md, in float64, one loop at a time."""
    w = weight.to(torch.float64)
    W = w.reshape(w.shape[0], -1)
    o, n = W.shape
    eye_o, eye_n = torch.eye(o, dtype=torch.float64), torch.eye(n, dtype=torch.float64)
    small = W @ W.T if o <= n else W.T @ W
    eye_s = torch.eye(small.shape[0], dtype=torch.float64)
    if name == "none":
        return W.sum() * 0
    if name == "fro":
        return ((W @ W.T - eye_o) ** 2).sum()
    if name == "so":
        return ((small - eye_s) ** 2).sum()
    if name == "dso":
        return ((W @ W.T - eye_o) ** 2).sum() + ((W.T @ W - eye_n) ** 2).sum()
    if name == "mc":
        return (small - eye_s).abs().max()
    if name == "srip":
        sigma = torch.linalg.matrix_norm(small - eye_s, ord=2)
        return sigma**2 if squared else sigma
    if name == "gor":
        groups = max(d for d in range(1, min(32, max(1, o // 4)) + 1) if o % d == 0)
        size = o // groups
        total = W.sum() * 0
        for g in range(groups):
            block = W[g * size : (g + 1) * size]
            gram = block @ block.T if size <= n else block.T @ block
            total = total + ((gram - torch.eye(gram.shape[0], dtype=torch.float64)) ** 2).sum()
        return total
    if name in CONSTRAINTS:  # constrained, not penalised
        return W.sum() * 0
    if name in ("ocnn", "ocnn_reference"):
        K = w if w.dim() == 4 else w[:, :, None, None]
        k = K.shape[-1]
        pad = (k - 1) // stride * stride
        out = F.conv2d(K, K, stride=stride, padding=pad)
        target = torch.zeros_like(out)
        for j in range(o):
            target[j, j, pad // stride, pad // stride] = 1
        return ((out - target) ** 2).sum()
    norms = W.norm(dim=1)
    diag = ((norms**2 - 1) ** 2).sum()
    pairs = []
    for j in range(o):
        for l in range(j):
            pairs.append(torch.dot(W[j], W[l]) / (norms[j] * norms[l]))
    c = torch.stack(pairs) if pairs else torch.zeros(0, dtype=torch.float64)
    if name == "dn_strict":
        return diag + gamma * 2 * (c**2).sum()
    if name == "dn_relaxed":
        P = lambda m: m * (m - 1) // 2  # noqa: E731
        k = P(o) - P(n) if o > n else P(o) - P(math.ceil(rho * o))
        order = c.abs().argsort(descending=True)
        return diag + gamma * 2 * (c[order[k:]] ** 2).sum()
    if name == "dn_welch":
        mu = math.sqrt((o - n) / (n * (o - 1))) if o > n else 0.0
        return diag + gamma * 2 * (torch.relu(c.abs() - mu) ** 2).sum()
    raise AssertionError(name)


def options_for(name, stride):
    return {"ocnn": {"stride": stride}, "ocnn_reference": {"stride": stride}, "srip": {"exact": True}}.get(
        name, {}
    )


CONSTRAINTS = {name for name in orthoreg.available_regularizers() if regularizer_spec(name).constrain}
NAMES = sorted(set(orthoreg.available_regularizers()) - {"none"} - CONSTRAINTS)


def random_weight(shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator) * 0.3


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("case", "shape", "stride"), SHAPES, ids=[s[0] for s in SHAPES])
def test_value_and_gradient_match_the_float64_formula(name, case, shape, stride):
    weight = random_weight(shape, seed=len(case)).requires_grad_()
    value = orthoreg.penalty(name, weight, **options_for(name, stride))
    value.backward()
    expected_weight = weight.detach().double().requires_grad_()
    expected = reference(name, expected_weight, stride)
    expected.backward()
    assert value.dim() == 0 and value.dtype == torch.float32
    torch.testing.assert_close(value.double(), expected.detach(), rtol=2e-4, atol=1e-4)
    torch.testing.assert_close(weight.grad.double(), expected_weight.grad, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("name", ["dn_strict", "dn_welch", "fro", "so", "ocnn"])
def test_gradcheck_in_float64(name):
    # the library computes in float32; gradcheck on a tiny layer checks the autograd graph itself
    weight = random_weight((4, 2, 2, 2), seed=3).double().requires_grad_()

    def function(w):
        from orthoreg.regularizers.registry import Group, regularizer_spec, resolve_options

        kernels = w.unsqueeze(0)
        return regularizer_spec(name).function(
            Group(kernels.flatten(2), kernels, (1, 1)), **resolve_options(name, {})
        )

    assert torch.autograd.gradcheck(function, (weight,))


def unit_rows(shape, seed):
    w = random_weight(shape, seed)
    flat = w.reshape(w.shape[0], -1)
    return (flat / flat.norm(dim=1, keepdim=True)).reshape(shape)


@pytest.mark.parametrize("shape", [(8, 4, 3, 3), (16, 6, 1, 1), (10, 7)])
def test_dn_strict_equals_fro_for_unit_norm_filters(shape):
    weight = unit_rows(shape, seed=1)
    torch.testing.assert_close(
        orthoreg.penalty("dn_strict", weight), orthoreg.penalty("fro", weight), rtol=1e-5, atol=1e-5
    )


def test_dn_strict_differs_from_fro_away_from_unit_norm():
    weight = unit_rows((8, 36), seed=2) * 0.5
    assert not torch.isclose(orthoreg.penalty("dn_strict", weight), orthoreg.penalty("fro", weight))


@pytest.mark.parametrize("shape", [(8, 4, 3, 3), (6, 3, 3, 3), (10, 70)])
def test_dn_relaxed_with_rho_one_is_strict_on_under_determined_layers(shape):
    weight = random_weight(shape, seed=4)
    torch.testing.assert_close(
        orthoreg.penalty("dn_relaxed", weight, rho=1.0), orthoreg.penalty("dn_strict", weight)
    )


def orthogonal(o, n, seed):
    """Orthonormal rows (o <= n) or orthonormal columns (o > n)."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(max(o, n), min(o, n), generator=generator, dtype=torch.float64))
    return (q.T if o <= n else q).float()


@pytest.mark.parametrize("name", ["fro", "so", "mc", "srip", "dn_strict", "dn_relaxed", "dn_welch", "gor"])
def test_zero_at_orthonormal_rows(name):
    weight = orthogonal(6, 18, seed=5).reshape(6, 2, 3, 3)
    assert float(orthoreg.penalty(name, weight)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name", ["so", "mc", "srip"])
def test_zero_on_tall_layers_for_penalties_on_the_attainable_side(name):
    # o > n: W^T W = I is attainable (and the public SRIP's W^T W floor of 1 is not what we compute)
    weight = orthogonal(12, 5, seed=6)
    assert float(orthoreg.penalty(name, weight)) == pytest.approx(0.0, abs=1e-5)


def test_fro_on_a_tall_orthonormal_layer_is_the_unreachable_part():
    # ||W W^T - I_o||^2 = o - n when W^T W = I_n
    assert float(orthoreg.penalty("fro", orthogonal(12, 5, seed=7))) == pytest.approx(7.0, abs=1e-4)


def test_ocnn_is_zero_for_an_orthogonal_1x1_convolution_at_any_stride():
    weight = orthogonal(4, 8, seed=8).reshape(4, 8, 1, 1)
    for stride in (1, 2):
        assert float(orthoreg.penalty("ocnn", weight, stride=stride)) == pytest.approx(0.0, abs=1e-6)


def test_welch_bound_is_reached_by_an_equiangular_tight_frame():
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3])
    frame = torch.stack([angles.cos(), angles.sin()], dim=1)  # 3 unit vectors in R^2 at 120 degrees
    assert welch_bound(3, 2) == pytest.approx(0.5)
    assert float(orthoreg.penalty("dn_welch", frame)) == pytest.approx(0.0, abs=1e-6)
    assert float(orthoreg.penalty("dn_strict", frame)) == pytest.approx(2 * 3 * 0.25, rel=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    o=st.integers(2, 9),
    n=st.integers(2, 9),
    seed=st.integers(0, 10_000),
    name=st.sampled_from([name for name in NAMES if name != "gor"]),  # gor groups consecutive filters
)
def test_invariant_under_permuting_filters(o, n, seed, name):
    weight = random_weight((o, n), seed)
    permutation = torch.randperm(o, generator=torch.Generator().manual_seed(seed))
    options = {"exact": True} if name == "srip" else {}
    torch.testing.assert_close(
        orthoreg.penalty(name, weight[permutation], **options),
        orthoreg.penalty(name, weight, **options),
        rtol=1e-4,
        atol=1e-4,
    )


@settings(max_examples=25, deadline=None)
@given(o=st.integers(1, 40), n=st.integers(1, 40), rho=st.floats(0.01, 1.0))
def test_relaxation_k_follows_the_shape_rule(o, n, rho):
    k = relaxation_k(o, n, rho)
    pairs = o * (o - 1) // 2
    assert 0 <= k <= pairs
    if o > n:
        assert k == pairs - n * (n - 1) // 2
    else:
        kept = math.ceil(rho * o)
        assert k == pairs - kept * (kept - 1) // 2
        if rho == 1.0:
            assert k == 0


def test_srip_power_iteration_reaches_the_exact_spectral_norm():
    for shape in [(16, 3, 3, 3), (64, 16, 1, 1), (32, 40)]:
        weight = random_weight(shape, seed=9)
        exact = orthoreg.penalty("srip", weight, exact=True)
        iterated = orthoreg.penalty("srip", weight)
        torch.testing.assert_close(iterated, exact, rtol=1e-3, atol=1e-4)


def test_srip_persistent_vectors_track_the_norm_with_two_steps_a_call():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(16, 16, 3))
    reg = orthoreg.OrthogonalityRegularizer(model, "srip", lam=1.0)
    for _ in range(100):
        value = reg(0.0)
    exact = orthoreg.model_penalty("srip", model, exact=True)
    torch.testing.assert_close(value, exact, rtol=1e-3, atol=1e-4)
    state = reg.state_dict()
    copy = orthoreg.OrthogonalityRegularizer(model, "srip", lam=1.0)
    copy.load_state_dict(state)
    assert torch.equal(copy(0.0), reg(0.0))


class MixedNet(nn.Module):
    """Convolutions of repeated and distinct shapes and strides, a 1x1 shortcut and a Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.same_shape_other_stride = nn.Conv2d(8, 16, 3, padding=1)
        self.shortcut = nn.Conv2d(8, 16, 1, stride=2)
        self.fc = nn.Linear(16, 5)


@pytest.mark.parametrize("name", orthoreg.available_regularizers())
@pytest.mark.parametrize(("include_linear", "skip_stem"), [(False, False), (True, False), (False, True)])
def test_model_penalty_equals_the_sum_of_layer_penalties(name, include_linear, skip_stem):
    torch.manual_seed(0)
    model = MixedNet()
    layers = [model.stem, model.a, model.b, model.down, model.same_shape_other_stride, model.shortcut]
    if skip_stem:
        layers = layers[1:]
    if include_linear:
        layers.append(model.fc)
    if name == "ocnn_reference" and not (include_linear or skip_stem):
        layers = [model.shortcut]  # its own selection: block entries (none here) and 1x1 shortcuts
    exact = {"exact": True} if name == "srip" else {}
    expected = sum(
        reference(name, layer.weight.detach(), stride=getattr(layer, "stride", (1,))[0]) for layer in layers
    )
    value = orthoreg.model_penalty(name, model, include_linear=include_linear, skip_stem=skip_stem, **exact)
    torch.testing.assert_close(
        value.double(), torch.as_tensor(expected, dtype=torch.float64), rtol=2e-4, atol=1e-4
    )


def test_model_penalty_gradient_equals_the_per_layer_gradient():
    torch.manual_seed(1)
    model = MixedNet()
    orthoreg.model_penalty("dn_relaxed", model, rho=0.5).backward()
    batched = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    total = sum(
        orthoreg.penalty("dn_relaxed", m.weight, rho=0.5) for m in model.modules() if isinstance(m, nn.Conv2d)
    )
    total.backward()
    looped = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    for a, b in zip(batched, looped, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_regularizer_applies_lambda_and_the_step_schedule():
    model = MixedNet()
    reg = orthoreg.OrthogonalityRegularizer(model, "fro", lam=0.5, schedule="step")
    base = orthoreg.model_penalty("fro", model)
    torch.testing.assert_close(reg(0.05), 0.5 * base)
    torch.testing.assert_close(reg(0.30), 0.5 * 1e-4 * base)
    assert [reg.lambda_at(p) for p in (0.0, 0.1, 0.25, 0.35, 0.6, 1.0)] == pytest.approx(
        [0.5, 0.5e-3, 0.5e-4, 0.5e-6, 0.0, 0.0]
    )
    assert float(reg(0.7)) == 0.0 and float(reg.last_penalty) == 0.0
    torch.testing.assert_close(reg(0.0).detach(), 0.5 * reg.last_penalty)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda w: orthoreg.penalty("frob", w), "unknown regulariser 'frob'; available: dn_relaxed"),
        (lambda w: orthoreg.penalty("fro", w[0, 0, 0]), "weight must have rank 2 .* or 3-5 .*, got rank 1"),
        (
            lambda w: orthoreg.penalty("fro", w[..., None, None]),
            r"weight must have rank 2 .* or 3-5 .*, got rank 6",
        ),
        (lambda w: orthoreg.penalty("dn_relaxed", w, rho=0.0), r"rho must be in \(0, 1\], got 0.0"),
        (lambda w: orthoreg.penalty("dn_relaxed", w, rho=1.5), r"rho must be in \(0, 1\], got 1.5"),
        (
            lambda w: orthoreg.penalty("dn_strict", w, gamma=-1.0),
            "gamma must be a finite number >= 0, got -1.0",
        ),
        (lambda w: orthoreg.penalty("fro", w, gamma=1.0), "'fro' does not take option"),
        (lambda w: orthoreg.penalty("fro", w * float("nan")), "non-finite values"),
        (
            lambda w: orthoreg.OrthogonalityRegularizer(MixedNet(), "fro", lam=-1.0),
            "lambda must be a finite number >= 0, got -1.0",
        ),
        (
            lambda w: orthoreg.OrthogonalityRegularizer(MixedNet(), "fro", lam=1.0, schedule="cosine"),
            "unknown schedule 'cosine'",
        ),
    ],
)
def test_bad_input_is_a_value_error_naming_the_value(call, message):
    weight = random_weight((4, 2, 3, 3), seed=0)
    with pytest.raises(ValueError, match=message):
        call(weight)


def test_model_penalty_names_the_layer_with_non_finite_weights():
    model = MixedNet()
    with torch.no_grad():
        model.down.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite values .* layer 'down'"):
        orthoreg.model_penalty("dn_strict", model)


def test_penalty_stays_float32_under_autocast():
    model = MixedNet()
    reg = orthoreg.OrthogonalityRegularizer(model, "dn_strict", lam=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = reg(0.0)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, orthoreg.model_penalty("dn_strict", model))


@pytest.mark.parametrize("name", NAMES)
def test_penalty_gradient_stays_float32_when_backward_runs_under_autocast(name):
    """A user's backward inside the autocast region must not turn the analytic backward into bf16."""
    model = MixedNet()
    weights = [layer.weight for layer in regularizer_spec(name).selection(LayerSelection()).layers(model)]
    outside = torch.autograd.grad(orthoreg.model_penalty(name, model), weights)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = torch.autograd.grad(orthoreg.model_penalty(name, model), weights)
    for got, expected in zip(inside, outside, strict=True):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_available_regularizers_lists_every_name_with_a_description():
    names = orthoreg.available_regularizers()
    assert set(names) == {
        "none",
        "fro",
        "so",
        "dso",
        "mc",
        "srip",
        "ocnn",
        "dn_strict",
        "dn_relaxed",
        "dn_welch",
        "gor",
        "orthogonal",
        "spectral",
        "ocnn_reference",
    }
    assert all(isinstance(text, str) and text for text in names.values())


@pytest.mark.parametrize("shape", [(12, 5), (8, 36), (16, 6, 1, 1), (9, 1, 3, 3)])
def test_fro_so_and_dso_differ_by_constants_only(shape):
    """W W^T and W^T W share their nonzero spectrum: fro - so = max(o - n, 0) and dso = 2 fro - (o - n),
    so the three have the same gradient up to a factor (docs/method.md)."""
    weight = random_weight(shape, seed=11).requires_grad_()
    o, n = shape[0], weight[0].numel()
    fro, so, dso = (orthoreg.penalty(name, weight) for name in ("fro", "so", "dso"))
    assert float((fro - so).detach()) == pytest.approx(max(o - n, 0), abs=1e-3)
    assert float((dso - 2 * fro).detach()) == pytest.approx(n - o, abs=1e-3)
    grad_fro, grad_so = (torch.autograd.grad(value, weight, retain_graph=True)[0] for value in (fro, so))
    torch.testing.assert_close(grad_fro, grad_so, rtol=1e-4, atol=1e-5)


def run_group_function(name, weight, **options):
    """The registered function on a one-layer group, bypassing `penalty`'s float32 cast."""
    from orthoreg.regularizers.registry import Group, regularizer_spec, resolve_options

    kernels = (weight if weight.dim() == 4 else weight[:, :, None, None]).unsqueeze(0)
    return regularizer_spec(name).function(
        Group(kernels.flatten(2), kernels, (1, 1)), **resolve_options(name, options)
    )


@pytest.mark.parametrize("name", ["fro", "so", "dso", "mc", "dn_strict", "dn_relaxed", "dn_welch", "gor"])
@pytest.mark.parametrize("shape", [(5, 2, 2, 2), (7, 3), (4, 4)], ids=["wide", "tall", "square"])
def test_analytic_backward_passes_gradcheck(name, shape):
    # float64 on generic weights: no ties in mc's maximum or dn_relaxed's exempt set
    weight = random_weight(shape, seed=11).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda w: run_group_function(name, w), (weight,))


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("exact", [False, True])
def test_srip_gradient_is_that_of_the_top_eigenvalue(squared, exact):
    weight = random_weight((6, 10), seed=12).double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda w: run_group_function("srip", w, squared=squared, exact=exact), (weight,)
    )


def test_srip_is_exact_when_plus_and_minus_sigma_are_both_eigenvalues():
    # G_s - I with eigenvalues +0.8, -0.8 and 0: the Rayleigh quotient of a mixed iterate is not sigma
    q, _ = torch.linalg.qr(
        torch.randn(9, 3, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    )
    weight = (torch.diag(torch.tensor([1.8, 0.2, 1.0], dtype=torch.float64).sqrt()) @ q.T).float()
    assert float(orthoreg.penalty("srip", weight, exact=True)) == pytest.approx(0.8, rel=1e-5)
    assert float(orthoreg.penalty("srip", weight)) == pytest.approx(0.8, rel=1e-5)
    assert float(orthoreg.penalty("srip", weight, iters=3)) == pytest.approx(0.8, rel=1e-5)


def test_zero_filters_give_finite_penalties_and_gradients():
    weight = random_weight((6, 2, 3, 3), seed=14)
    weight[2] = 0.0
    weight.requires_grad_()
    for name in ("dn_strict", "dn_relaxed", "dn_welch"):
        value = orthoreg.penalty(name, weight)
        (grad,) = torch.autograd.grad(value, weight)
        assert torch.isfinite(value) and bool(torch.isfinite(grad).all()), name


def test_dn_relaxed_ignores_rho_on_over_determined_layers():
    weight = random_weight((12, 5), seed=15)
    values = [orthoreg.penalty("dn_relaxed", weight, rho=rho) for rho in (0.1, 0.5, 1.0)]
    assert values[0] == values[1] == values[2]
    assert float(values[0]) < float(orthoreg.penalty("dn_strict", weight))


def test_dso_is_zero_for_an_orthogonal_square_layer():
    assert float(orthoreg.penalty("dso", orthogonal(9, 9, seed=16))) == pytest.approx(0.0, abs=1e-5)


def test_registry_metadata():
    from orthoreg.regularizers import regularizer_spec

    assert regularizer_spec("ocnn").needs_kernel and not regularizer_spec("dn_strict").needs_kernel
    assert regularizer_spec("srip").stateful and not regularizer_spec("fro").stateful
    assert regularizer_spec("dn_relaxed").defaults == orthoreg.regularizer_options("dn_relaxed")


def test_only_stateful_penalties_keep_state():
    model = MixedNet()
    state = {}
    orthoreg.model_penalty("dn_strict", model, state=state)
    assert state == {}
    orthoreg.model_penalty("srip", model, state=state)
    assert state and all(set(group) == {"srip"} for group in state.values())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: orthoreg.OrthogonalityRegularizer(MixedNet(), "fro", lam=float("nan")), "got nan"),
        (lambda: orthoreg.OrthogonalityRegularizer(MixedNet(), "fro", lam=1.0).lambda_at(1.5), "got 1.5"),
        (lambda: orthoreg.OrthogonalityRegularizer(MixedNet(), "so", lam=1.0, rho=0.5), "'so' does not take"),
        (
            lambda: orthoreg.penalty("srip", torch.ones(3, 4), iters=0),
            "iters must be a positive integer, got 0",
        ),
        (lambda: orthoreg.penalty("dn_strict", torch.ones(3, 4), gamma=math.inf), "gamma must be .* got inf"),
        (lambda: orthoreg.penalty("ocnn", torch.ones(3, 4, 3, 3), stride=0), "stride must be .* got 0"),
        (lambda: orthoreg.model_penalty("ocnn", MixedNet(), stride=2), "do not pass stride"),
        (lambda: orthoreg.model_penalty("fro", nn.Linear(3, 3)), "has no layer to regularise"),
    ],
)
def test_more_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("shape", [(16, 16, 3, 3), (8, 3, 3, 3), (12, 24, 3, 3)])
def test_ocnn_minus_the_released_padding_1_window_is_the_dropped_ring(shape):
    """docs/method.md: the released OCNN code's padding=1 at stride 1 compares shifts -1..1 of a 3x3
    kernel's self-convolution only; ours (padding 2) adds exactly the energy of the +-2-shift ring."""
    kernel = torch.randn(*shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.3
    full = F.conv2d(kernel, kernel, padding=2)  # shifts -2..2
    released = F.conv2d(kernel, kernel, padding=1)  # shifts -1..1, the released code's window
    assert torch.allclose(full[..., 1:4, 1:4], released)
    target = torch.zeros_like(released)
    target[range(shape[0]), range(shape[0]), 1, 1] = 1.0
    ring = full.square().sum() - full[..., 1:4, 1:4].square().sum()
    ours = orthoreg.penalty("ocnn", kernel, stride=1)
    assert ours.item() == pytest.approx(((released - target) ** 2).sum().item() + ring.item(), rel=1e-5)


def authors_gor(weight, num_groups=32, min_num_filters=4):
    """GOR as the authors' public code computes it (loop-less form, our transcription): the weight's
    groups of consecutive filters stacked, and the squared distance of each group's smaller Gram from
    the identity summed over the stack."""
    w = weight.reshape(weight.shape[0], -1).double()
    groups = min(num_groups, w.shape[0] // min_num_filters)
    stacked = w.reshape(groups, w.shape[0] // groups, -1)
    rows, cols = stacked.shape[1:]
    if rows >= cols:
        return torch.dist(stacked.transpose(1, 2) @ stacked, torch.eye(cols, dtype=torch.float64)) ** 2
    return torch.dist(stacked @ stacked.transpose(1, 2), torch.eye(rows, dtype=torch.float64)) ** 2


@pytest.mark.parametrize(
    "shape",
    [(16, 8, 3, 3), (64, 16, 1, 1), (640, 9), (16, 1, 3, 3), (24, 5)],
    ids=["wide groups", "square groups", "32 groups", "16 filters of 9", "tall groups"],
)
def test_gor_equals_the_authors_formula(shape):
    weight = random_weight(shape, seed=17)
    expected = authors_gor(weight)
    torch.testing.assert_close(orthoreg.penalty("gor", weight).double(), expected, rtol=2e-5, atol=1e-4)


def test_gor_group_size_is_a_knob():
    weight = random_weight((24, 6), seed=18)
    # 3 groups of 8 filters (tall: 8 > 6), against the float64 sum over the three blocks
    W = weight.double()
    expected = sum(
        ((W[g : g + 8].T @ W[g : g + 8] - torch.eye(6, dtype=torch.float64)) ** 2).sum() for g in (0, 8, 16)
    )
    value = orthoreg.penalty("gor", weight, group_size=8)
    torch.testing.assert_close(value.double(), expected, rtol=2e-5, atol=1e-4)
    assert float(orthoreg.penalty("gor", weight, group_size=24)) == pytest.approx(
        float(orthoreg.penalty("so", weight)), rel=1e-5
    )
    with pytest.raises(ValueError, match="cannot split 24 filters into groups of group_size=5"):
        orthoreg.penalty("gor", weight, group_size=5)
    with pytest.raises(ValueError, match="group_size must be a positive integer, got 0"):
        orthoreg.penalty("gor", weight, group_size=0)


def test_ocnn_reference_regularises_the_layers_the_released_code_does():
    """Each residual block's first convolution and the 1x1 shortcuts of a CIFAR ResNet-18: not the
    stem, not the second convolutions, not the classifier; the penalty is ocnn's on those layers."""
    torch.manual_seed(2)
    model = orthoreg.build_model("resnet18", 10)
    reg = orthoreg.OrthogonalityRegularizer(model, "ocnn_reference", 0.1)
    names = [layer.name for layer in reg.layers()]
    assert names == [f"layers.{block}.conv1" for block in range(8)][:3] + ["layers.2.shortcut.0"] + [
        "layers.3.conv1",
        "layers.4.conv1",
        "layers.4.shortcut.0",
        "layers.5.conv1",
        "layers.6.conv1",
        "layers.6.shortcut.0",
        "layers.7.conv1",
    ]
    expected = sum(reference("ocnn", layer.weight.detach(), stride=layer.stride[0]) for layer in reg.layers())
    torch.testing.assert_close(
        orthoreg.model_penalty("ocnn_reference", model).double(), expected, rtol=2e-4, atol=1e-3
    )
    # a caller's own choice of layers wins over the preset's
    everything = orthoreg.OrthogonalityRegularizer(model, "ocnn_reference", 0.1, include_linear=True)
    assert len(everything.layers()) == len(regularized_layers(model, include_linear=True))


def test_gor_takes_the_largest_group_count_that_divides_the_filters():
    """240 filters: the authors' min(32, 240 // 4) = 32 groups do not divide 240 (their code stops);
    30 groups of 8 do, the largest count below 32 that divides 240."""
    from orthoreg.regularizers.group import group_count

    assert group_count(240, 32, 4, None) == 30 and group_count(9, 32, 4, None) == 1
    assert group_count(64, 32, 4, None) == 16 and group_count(640, 32, 4, None) == 32
    weight = random_weight((240, 12), seed=19)
    expected = authors_gor(weight[:, :], num_groups=30, min_num_filters=1)
    torch.testing.assert_close(orthoreg.penalty("gor", weight).double(), expected, rtol=2e-5, atol=1e-3)
