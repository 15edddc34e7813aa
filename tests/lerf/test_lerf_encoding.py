"""The hash encoding against a slow, obvious trilinear reference; contraction; direction encoding."""

from __future__ import annotations

import itertools

import pytest
import torch

from ccl_gs.lerf.encoding import PRIMES, HashEncoding, contract, sh_directions, to_unit_cube


def reference_encoding(enc: HashEncoding, x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Per point, per level: 8 corners, exact int64 hash (or dense index), trilinear weights; a Python loop.

    ``table`` is the encoding's table (a float64 copy; autograd flows into it).
    """
    T = enc.table_size
    rows = []
    for n in range(x.shape[0]):
        feats = []
        for lv in range(enc.levels):
            res = int(enc.resolutions[lv])
            p = x[n].double() * res
            base = torch.floor(p)
            f = p - base
            acc = 0
            for cx, cy, cz in itertools.product((0, 1), repeat=3):
                c = [int(base[0]) + cx, int(base[1]) + cy, int(base[2]) + cz]
                if bool(enc.dense[lv]):
                    idx = (c[0] + c[1] * (res + 1) + c[2] * (res + 1) ** 2) % T
                else:
                    idx = ((c[0] * PRIMES[0]) ^ (c[1] * PRIMES[1]) ^ (c[2] * PRIMES[2])) % T
                w = (f[0] if cx else 1 - f[0]) * (f[1] if cy else 1 - f[1]) * (f[2] if cz else 1 - f[2])
                acc = acc + w * table[lv * T + idx]
            feats.append(acc)
        rows.append(torch.cat(feats))
    return torch.stack(rows)


@pytest.mark.parametrize("log2_table", [6, 12])
def test_hash_encoding_matches_trilinear_reference(log2_table):
    torch.manual_seed(0)
    enc = HashEncoding(levels=5, min_res=2, max_res=64, log2_table=log2_table, features=3, init_scale=1.0)
    assert enc.dense.any() and not enc.dense.all()  # both index kinds are exercised
    x = torch.rand(40, 3)
    x[0] = torch.tensor([0.0, 1.0, 0.5])  # the faces of the cube
    fast = enc(x).double()
    ref = reference_encoding(enc, x, enc.table.detach().double())
    assert torch.allclose(fast, ref, atol=1e-5), (fast - ref).abs().max()


def test_hash_encoding_gradient_matches_reference():
    torch.manual_seed(1)
    enc = HashEncoding(levels=3, min_res=4, max_res=40, log2_table=8, features=2, init_scale=1.0)
    x = torch.rand(25, 3)
    g = torch.randn(25, enc.out_dim)
    (enc(x) * g).sum().backward()
    fast = enc.table.grad.clone()
    table = enc.table.detach().double().clone().requires_grad_(True)
    (reference_encoding(enc, x, table) * g.double()).sum().backward()
    assert torch.allclose(fast.double(), table.grad, atol=1e-5)


def test_level_resolutions_follow_nerfstudio():
    enc = HashEncoding(levels=16, min_res=16, max_res=512, log2_table=19, features=8)
    growth = (512 / 16) ** (1 / 15)
    assert enc.resolutions.tolist() == [int(16 * growth**lv) for lv in range(16)]
    assert enc.out_dim == 128


def test_contraction():
    x = torch.tensor([[0.5, 0.0, 0.0], [2.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    y = contract(x, "l2")
    assert torch.allclose(y[0], x[0])
    assert torch.allclose(y[1], torch.tensor([1.5, 0.0, 0.0]))
    assert torch.allclose(y[2].norm(), torch.tensor(2 - 1 / 5.0))
    yi = contract(torch.tensor([[3.0, 1.5, 0.0]]), "inf")
    assert torch.allclose(yi.abs().max(), torch.tensor(2 - 1 / 3.0))
    u = to_unit_cube(torch.randn(100, 3) * 50)
    assert (u >= 0).all() and (u <= 1).all()
    with pytest.raises(ValueError):
        contract(x, "l1")


def test_sh_directions_orthonormal():
    torch.manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(200000, 3), dim=-1)
    Y = sh_directions(d)
    gram = 4 * torch.pi * (Y.T @ Y) / d.shape[0]
    assert torch.allclose(gram, torch.eye(16), atol=0.03)
