"""Shared helpers for the attention-layer tests: random graphs and PyG comparisons."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor


def make_graph(num_src: int, num_dst: int, num_edges: int, seed: int = 0,
               isolated: int = 0, self_loops: int = 0, multi: bool = False) -> Tensor:
    """Random ``(2, E)`` edge_index in random order; the last ``isolated`` destinations get
    no edges and ``self_loops`` extra ``i → i`` edges are added (homogeneous graphs only).
    Repeated pairs are dropped unless ``multi`` (multigraphs take another kernel path)."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_src, (num_edges,), generator=g)
    dst = torch.randint(0, max(num_dst - isolated, 1), (num_edges,), generator=g)
    ei = torch.stack([src, dst])
    if not multi:
        ei = torch.unique(ei, dim=1)
        ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    if self_loops:
        loops = torch.randint(0, min(num_src, num_dst) - isolated, (self_loops,), generator=g)
        if not multi:
            loops = torch.unique(loops)
            keep = ei[0] != ei[1]
            ei = ei[:, keep]
        ei = torch.cat([ei, torch.stack([loops, loops])], dim=1)
        ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    return ei


@pytest.fixture
def graph_factory() -> Callable[..., Tensor]:
    return make_graph


def run_and_grad(layer: torch.nn.Module, x, graph, **kwargs) -> tuple[Tensor, Tensor | None,
                                                                      list[Tensor], object]:
    """Forward with a fixed random loss; returns (out, attention, param grads, input grads)."""
    xs = [x] if isinstance(x, Tensor) else list(x)
    xs = [None if t is None else t.detach().clone().requires_grad_() for t in xs]
    inp = xs[0] if isinstance(x, Tensor) else tuple(xs)
    res = layer(inp, graph, **kwargs)
    out, att = (res if isinstance(res, tuple) else (res, None))
    weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    (out * weight).sum().backward()
    grads = [p.grad for _, p in sorted(layer.named_parameters())]
    return out, att, grads, [None if t is None else t.grad for t in xs]


@pytest.fixture
def assert_same_as() -> Callable[..., None]:
    """Compare our layer with a reference layer (weights copied) on outputs and gradients."""

    def check(ours: torch.nn.Module, ref: torch.nn.Module, x, ours_graph, ref_graph,
              ours_kwargs: dict | None = None, ref_kwargs: dict | None = None,
              atol: float = 1e-5, rtol: float = 1e-4,
              strict: bool = True) -> tuple[Tensor, Tensor]:
        ref.load_state_dict(ours.state_dict(), strict=strict)
        o, att, gp, gx = run_and_grad(ours, x, ours_graph, **(ours_kwargs or {}))
        r, ratt, rp, rx = run_and_grad(ref, x, ref_graph, **(ref_kwargs or {}))
        torch.testing.assert_close(o, r, atol=atol, rtol=rtol)
        for a, b in zip(gx, rx):
            if a is not None or b is not None:
                torch.testing.assert_close(a, b, atol=atol, rtol=rtol)
        ref_grads = dict(zip([n for n, _ in sorted(ref.named_parameters())], rp))
        for (n, _), a in zip(sorted(ours.named_parameters()), gp):
            torch.testing.assert_close(a, ref_grads[n], atol=atol, rtol=rtol, msg=f"grad of {n}")
        return att, ratt

    return check
