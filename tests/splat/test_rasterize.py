"""The CPU rasterizer against the dense reference, forward and gradients.

``rasterize(..., backend="torch")`` (tiles, radius boxes, numba kernels) must
agree with ``rasterize_reference`` (every Gaussian against every pixel, plain
autograd) on images whose sizes are not multiples of the tile size, for
several cameras, channel counts, SH degrees, render modes and backgrounds.
"""

from __future__ import annotations

import math

import pytest
import torch

from ccl_gs.splat import BACKENDS, RENDER_MODES, default_backend, rasterize
from ccl_gs.splat._project import ALPHA_THRESHOLD, project_gaussians
from ccl_gs.splat.reference import rasterize_reference


def _look_at_cameras(C: int, width: int, height: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """C cameras near the origin looking down +z with small random rotations."""
    viewmats = []
    for _ in range(C):
        axis = torch.randn(3, generator=gen)
        angle = 0.15 * torch.rand(1, generator=gen).item()
        K = axis / axis.norm()
        Kx = torch.tensor([[0.0, -K[2], K[1]], [K[2], 0.0, -K[0]], [-K[1], K[0], 0.0]])
        R = torch.eye(3) + math.sin(angle) * Kx + (1 - math.cos(angle)) * Kx @ Kx
        V = torch.eye(4)
        V[:3, :3] = R
        V[:3, 3] = 0.2 * torch.randn(3, generator=gen)
        viewmats.append(V)
    f = 0.9 * width
    Ks = torch.tensor([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]])
    return torch.stack(viewmats), Ks[None].repeat(C, 1, 1)


def _scene(N: int, C: int, width: int, height: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    viewmats, Ks = _look_at_cameras(C, width, height, gen)
    means = torch.randn(N, 3, generator=gen) * torch.tensor([0.5, 0.4, 0.6]) + torch.tensor([0.0, 0.0, 3.0])
    return {
        "means": means,
        "quats": torch.randn(N, 4, generator=gen),
        "scales": torch.exp(torch.randn(N, 3, generator=gen) * 0.4) * 0.06,
        "opacities": torch.rand(N, generator=gen) * 0.95 + 0.02,
        "viewmats": viewmats,
        "Ks": Ks,
        "gen": gen,
    }


_PARAMS = ("means", "quats", "scales", "opacities")


def _run_both(scene: dict, colors: torch.Tensor, width: int, height: int, backgrounds=None, **kw):
    """Forward both rasterizers on copies of the inputs; backprop one random weighting."""
    results = []
    weights = None
    for fn in ("torch", "reference"):
        leaves = {k: scene[k].clone().requires_grad_(True) for k in _PARAMS}
        leaves["colors"] = colors.clone().requires_grad_(True)
        if backgrounds is not None:
            leaves["backgrounds"] = backgrounds.clone().requires_grad_(True)
        args = [leaves[k] for k in _PARAMS]
        args.insert(4, leaves["colors"])
        common = dict(backgrounds=leaves.get("backgrounds"), **kw)
        if fn == "torch":
            img, alpha, meta = rasterize(*args, scene["viewmats"], scene["Ks"], width, height, backend="torch", **common)
        else:
            img, alpha, meta = rasterize_reference(*args, scene["viewmats"], scene["Ks"], width, height, **common)
        meta["means2d"].retain_grad()
        if weights is None:
            g = torch.Generator().manual_seed(7)
            weights = (torch.rand(img.shape, generator=g), torch.rand(alpha.shape, generator=g))
        ((img * weights[0]).sum() + (alpha * weights[1]).sum()).backward()
        grads = {k: v.grad for k, v in leaves.items()}
        grads["means2d"] = meta["means2d"].grad
        results.append((img.detach(), alpha.detach(), grads, meta))
    return results


def _assert_close(a: torch.Tensor, b: torch.Tensor, name: str, rtol: float = 2e-3, atol: float = 1e-5) -> None:
    assert a.shape == b.shape, f"{name}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    scale = b.abs().max().item() if b.numel() else 0.0
    err = (a - b).abs().max().item() if b.numel() else 0.0
    assert err <= rtol * scale + atol, f"{name}: max abs error {err:.3g} vs scale {scale:.3g}"


def _assert_match(results, names=("means", "quats", "scales", "opacities", "colors", "means2d")) -> None:
    (img, alpha, g, _), (img_r, alpha_r, g_r, _) = results
    _assert_close(img, img_r, "render_colors", rtol=1e-4, atol=2e-5)
    _assert_close(alpha, alpha_r, "render_alphas", rtol=1e-4, atol=2e-5)
    for k in names:
        _assert_close(g[k], g_r[k], f"grad {k}")


@pytest.mark.parametrize(
    "C, N, width, height, D, per_camera_colors, with_bg",
    [
        (1, 20, 37, 29, 3, False, False),
        (2, 150, 45, 31, 8, False, True),
        (3, 300, 33, 50, 3, True, True),
        (1, 400, 64, 17, 8, True, False),
    ],
)
def test_matches_dense_reference(C, N, width, height, D, per_camera_colors, with_bg):
    scene = _scene(N, C, width, height, seed=N + C)
    gen = scene["gen"]
    shape = (C, N, D) if per_camera_colors else (N, D)
    colors = torch.rand(shape, generator=gen)
    bg = torch.rand(C, D, generator=gen) if with_bg else None
    results = _run_both(scene, colors, width, height, backgrounds=bg)
    assert results[0][1].max() > 0.5, "test scene should cover pixels"
    names = ("means", "quats", "scales", "opacities", "colors", "means2d") + (("backgrounds",) if with_bg else ())
    _assert_match(results, names)


def test_antialiased_mode_matches_reference():
    C, N, W, H = 2, 250, 41, 35
    scene = _scene(N, C, W, H, seed=5)
    scene["scales"] = scene["scales"] * torch.exp(torch.randn(N, 3, generator=scene["gen"]))  # some sub-pixel
    colors = torch.rand(N, 3, generator=scene["gen"])
    results = _run_both(scene, colors, W, H, rasterize_mode="antialiased")
    assert results[0][1].max() > 0.3, "test scene should cover pixels"
    _assert_match(results)
    classic = rasterize(*[scene[k] for k in _PARAMS], colors, scene["viewmats"], scene["Ks"], W, H)[1]
    assert float(results[0][1].sum()) < float(classic.sum()), "compensation only dims Gaussians"


def test_antialiased_mode_keeps_a_tiny_gaussians_integral():
    """A Gaussian far below a pixel: classic mode inflates it to the blur's size, antialiased keeps its
    integral (the sum of alpha over the image is what a box-filtered picture of it would hold)."""
    W = H = 21
    Ks = torch.tensor([[[20.0, 0, W / 2], [0, 20.0, H / 2], [0, 0, 1]]])
    args = (torch.tensor([[0.0, 0.0, 4.0]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.05),
            torch.tensor([0.9]), torch.ones(1, 3), torch.eye(4)[None], Ks, W, H)
    sigma_px = 0.05 * 20.0 / 4.0  # standard deviation on screen: a quarter pixel
    integral = 0.9 * 2 * math.pi * sigma_px**2
    aa = float(rasterize(*args, rasterize_mode="antialiased")[1].sum())
    classic = float(rasterize(*args)[1].sum())
    assert aa == pytest.approx(integral, rel=0.05)  # less the tails below alpha 1/255 (about 2 %)
    assert classic > 4 * integral
    with pytest.raises(ValueError, match="rasterize_mode"):
        rasterize(*args, rasterize_mode="mip")


def test_dense_opaque_scene_matches_reference():
    """Most pixels finish early: exercises the kernels' open-pixel list paths."""
    C, N, W, H = 1, 400, 40, 27
    scene = _scene(N, C, W, H, seed=17)
    scene["opacities"] = 0.7 + 0.29 * torch.rand(N, generator=scene["gen"])
    scene["scales"] = scene["scales"] * 3.0
    colors = torch.rand(N, 3, generator=scene["gen"])
    results = _run_both(scene, colors, W, H)
    alpha = results[0][1]
    assert (alpha > 0.99).float().mean() > 0.4, "most pixels should be (nearly) opaque"
    _assert_match(results)


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_spherical_harmonics_match_reference(sh_degree):
    C, N, W, H = 2, 120, 35, 27
    scene = _scene(N, C, W, H, seed=10 + sh_degree)
    K = 16  # coefficients stored for degree 3; only (sh_degree + 1)^2 are used
    shape = (C, N, K, 3) if sh_degree == 2 else (N, K, 3)
    sh = torch.randn(shape, generator=scene["gen"]) * 0.3
    results = _run_both(scene, sh, W, H, sh_degree=sh_degree)
    _assert_match(results)
    g_sh = results[0][2]["colors"]
    used = (sh_degree + 1) ** 2
    assert (g_sh[..., used:, :] == 0).all(), "unused SH bands must get no gradient"
    assert g_sh[..., :used, :].abs().max() > 0


@pytest.mark.parametrize("render_mode", RENDER_MODES)
def test_render_modes_match_reference(render_mode):
    C, N, W, H = 2, 100, 30, 23
    scene = _scene(N, C, W, H, seed=3)
    colors = torch.rand(N, 3, generator=scene["gen"])
    bg = torch.rand(C, 3, generator=scene["gen"])
    results = _run_both(scene, colors, W, H, backgrounds=bg, render_mode=render_mode)
    img = results[0][0]
    expected_channels = {"RGB": 3, "D": 1, "ED": 1, "RGB+D": 4, "RGB+ED": 4}[render_mode]
    assert img.shape == (C, H, W, expected_channels)
    names = ("means", "quats", "scales", "opacities", "means2d")
    if render_mode != "D" and render_mode != "ED":
        names += ("colors", "backgrounds")
    _assert_match(results, names)
    if render_mode.endswith("ED"):
        # expected depth lies within the depth range of the scene where alpha is substantial
        depth = img[..., -1][results[0][1][..., 0] > 0.5]
        assert depth.min() > 1.0 and depth.max() < 6.0


def test_tile_size_does_not_change_the_image():
    scene = _scene(200, 1, 41, 35, seed=5)
    colors = torch.rand(200, 8, generator=scene["gen"])
    args = [scene[k] for k in _PARAMS] + [colors, scene["viewmats"], scene["Ks"], 41, 35]
    a, _, _ = rasterize(*args, tile_size=16, backend="torch")
    b, _, meta = rasterize(*args, tile_size=8, backend="torch")
    assert meta["tile_width"] == 6 and meta["tile_height"] == 5
    _assert_close(a, b, "tile 8 vs 16", rtol=1e-5, atol=1e-6)


def test_everything_behind_the_camera_renders_background():
    C, N, W, H = 2, 30, 20, 18
    scene = _scene(N, C, W, H)
    means = scene["means"].clone()
    means[:, 2] = -means[:, 2]  # all behind every camera (they sit near the origin looking at +z)
    means.requires_grad_(True)
    colors = torch.rand(N, 3, requires_grad=True)
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], requires_grad=True)
    img, alpha, meta = rasterize(means, scene["quats"], scene["scales"], scene["opacities"], colors,
                                 scene["viewmats"], scene["Ks"], W, H, backgrounds=bg, backend="torch")
    assert (meta["radii"] == 0).all()
    assert meta["tiles_per_gauss"].sum() == 0
    assert torch.allclose(img, bg[:, None, None, :].expand_as(img))
    assert (alpha == 0).all()
    img.sum().backward()
    assert means.grad.abs().max() == 0 and colors.grad.abs().max() == 0
    assert torch.allclose(bg.grad, torch.full((C, 3), float(W * H)))


@pytest.mark.parametrize("N", [0, 1])
def test_zero_and_one_gaussian(N):
    C, W, H = 1, 19, 21
    scene = _scene(max(N, 1), C, W, H, seed=2)
    leaves = [scene[k][:N].clone().requires_grad_(True) for k in _PARAMS]
    if N == 1:
        with torch.no_grad():
            leaves[0].copy_(torch.tensor([[0.0, 0.0, 3.0]]))
            leaves[3].fill_(0.9)
    colors = torch.rand(N, 3, requires_grad=True)
    img, alpha, meta = rasterize(*leaves, colors, scene["viewmats"], scene["Ks"], W, H, backend="torch")
    assert img.shape == (C, H, W, 3) and alpha.shape == (C, H, W, 1)
    assert meta["means2d"].shape == (C, N, 2) and meta["radii"].shape == (C, N, 2)
    img_r, alpha_r, _ = rasterize_reference(*leaves, colors, scene["viewmats"], scene["Ks"], W, H)
    _assert_close(img.detach(), img_r.detach(), "render_colors", atol=1e-6)
    if N == 0:
        assert (alpha == 0).all()
    else:
        assert alpha.max() > 0.5
        (img.sum() + alpha.sum()).backward()
        assert all(x.grad.abs().sum() > 0 for x in leaves + [colors])


def test_radius_box_bounds_the_support_and_culls_like_gsplat():
    W, H = 40, 30
    scene = _scene(300, 1, W, H, seed=11)
    scene["viewmats"] = torch.eye(4)[None]  # camera space = world space
    opac = scene["opacities"].clone()
    opac[:10] = 0.5 * ALPHA_THRESHOLD  # too transparent: culled
    means = scene["means"].clone()
    means[10:20, 2] = 0.005  # nearer than near_plane=0.01: culled
    means[20:30, 0] = 50.0  # far outside the image: culled
    proj = project_gaussians(means, scene["quats"], scene["scales"], opac, scene["viewmats"], scene["Ks"], W, H)
    radii = proj.radii[0]
    assert radii.dtype == torch.int32 and radii.shape == (300, 2)
    assert (radii[:30] == 0).all()
    visible = (radii > 0).all(-1)
    assert visible[30:].float().mean() > 0.5
    # Outside its box every visible Gaussian's alpha is below 1/255 at every pixel.
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    for g in torch.nonzero(visible).squeeze(-1)[:60].tolist():
        dx = proj.means2d[0, g, 0].detach() - xs
        dy = proj.means2d[0, g, 1].detach() - ys
        a, b, c = proj.conics[0, g].detach()
        alpha = opac[g] * torch.exp(-(0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy))
        outside = (dx.abs() > radii[g, 0]) | (dy.abs() > radii[g, 1])
        assert (alpha[outside] < ALPHA_THRESHOLD).all()
    # radius_clip removes the small ones only
    clipped = project_gaussians(means, scene["quats"], scene["scales"], opac, scene["viewmats"], scene["Ks"], W, H,
                                radius_clip=3.0).radii[0]
    small = visible & (radii <= 3).all(-1)
    assert small.any()
    assert (clipped[small] == 0).all() and (clipped[visible & ~small] == radii[visible & ~small]).all()


def test_radius_clip_matches_reference():
    scene = _scene(150, 1, 33, 25, seed=4)
    colors = torch.rand(150, 3, generator=scene["gen"])
    _assert_match(_run_both(scene, colors, 33, 25, radius_clip=2.0))


def test_meta_drives_gsplat_default_strategy_on_cpu():
    from gsplat.strategy import DefaultStrategy

    N, W, H = 80, 32, 24
    scene = _scene(N, 1, W, H, seed=9)
    params = torch.nn.ParameterDict({
        "means": scene["means"], "quats": scene["quats"], "scales": torch.log(scene["scales"]),
        "opacities": torch.logit(scene["opacities"]), "colors": torch.rand(N, 8),
    })
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    strategy = DefaultStrategy(refine_start_iter=0, refine_every=1, grow_grad2d=0.0, verbose=False)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state()
    img, alpha, info = rasterize(
        params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
        params["colors"], scene["viewmats"], scene["Ks"], W, H, backend="torch",
    )
    assert info["gaussian_ids"] is None and info["n_cameras"] == 1
    assert (info["width"], info["height"]) == (W, H)
    strategy.step_pre_backward(params, optimizers, state, step=1, info=info)
    img.mean().backward()
    grad = info["means2d"].grad
    assert grad is not None and grad.shape == (1, N, 2) and grad.abs().sum() > 0
    strategy.step_post_backward(params, optimizers, state, step=1, info=info, packed=False)
    assert len(params["means"]) > N, "with grow_grad2d=0 every visible Gaussian is duplicated or split"


def test_backend_registry_and_argument_errors():
    assert {"torch", "gsplat"} <= set(BACKENDS)
    assert default_backend(torch.device("cpu")) == "torch"
    scene = _scene(10, 1, 16, 16)
    args = [scene[k] for k in _PARAMS] + [torch.rand(10, 3), scene["viewmats"], scene["Ks"], 16, 16]
    with pytest.raises(ValueError, match="unknown rasterizer backend"):
        rasterize(*args, backend="nope")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs CUDA"):
            rasterize(*args, backend="gsplat")
    bad = list(args)
    bad[1] = torch.randn(10, 3)
    with pytest.raises(ValueError, match="quats"):
        rasterize(*bad)
    with pytest.raises(ValueError, match="backgrounds"):
        rasterize(*args, backgrounds=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="sh_degree"):
        rasterize(*args[:4], torch.rand(10, 4, 3), *args[5:], sh_degree=3)
    with pytest.raises(ValueError, match="render_mode"):
        rasterize(*args, render_mode="RGBD")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat's CUDA rasterizer needs a CUDA GPU; none here")
@pytest.mark.parametrize("render_mode, D, rasterize_mode", [("RGB", 3, "classic"), ("RGB+ED", 8, "classic"),
                                                           ("RGB", 3, "antialiased")])
def test_matches_gsplat_cuda(render_mode, D, rasterize_mode):
    C, N, W, H = 2, 500, 61, 47
    scene = _scene(N, C, W, H, seed=21)
    colors = torch.rand(N, D, generator=scene["gen"])
    bg = torch.rand(C, D, generator=scene["gen"])
    outs = []
    for device, backend in (("cpu", "torch"), ("cuda", "gsplat")):
        leaves = [scene[k].to(device).requires_grad_(True) for k in _PARAMS] + [colors.to(device).requires_grad_(True)]
        img, alpha, meta = rasterize(*leaves, scene["viewmats"].to(device), scene["Ks"].to(device), W, H,
                                     backgrounds=bg.to(device), render_mode=render_mode, backend=backend,
                                     rasterize_mode=rasterize_mode)
        meta["means2d"].retain_grad()
        (img.sum() + alpha.sum()).backward()
        outs.append([img.detach().cpu(), alpha.detach().cpu(), meta["radii"].cpu(), meta["means2d"].grad.cpu()]
                    + [x.grad.cpu() for x in leaves])
    names = ["render_colors", "render_alphas", "radii", "means2d grad", "means", "quats", "scales", "opacities", "colors"]
    for name, a, b in zip(names, outs[0], outs[1]):
        if name == "radii":
            assert (a - b).abs().max() <= 1, "radii differ by more than rounding"
        else:
            _assert_close(a, b, name, rtol=5e-3, atol=1e-4)
