"""Shared checks for the model tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def _rows_pass(model, users, items, mask, rows: bool,
               loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
    """The rows ``users``/``items`` from ``propagate_rows`` (``rows``) or from indexing a full
    ``propagate``, then the gradients of ``loss(user_rows, item_rows)``: the rows, the two
    embedding tables' gradients, and those of every other parameter that got one."""
    model.zero_grad()
    if rows:
        u, i = model.propagate_rows(users, items, mask)
    else:
        full_u, full_i = model.propagate(edge_mask=mask)
        u, i = full_u[users], full_i[items]
    loss(u, i).backward()
    out = [u.detach(), i.detach(), model.user_emb.weight.grad.clone(), model.item_emb.weight.grad.clone()]
    for name, p in sorted(model.named_parameters()):
        if not name.endswith("_emb.weight") and p.grad is not None:
            out.append(p.grad.clone())
    return out


@pytest.fixture
def rows_pass():
    """``rows_pass(model, users, items, mask, rows, loss)``: see :func:`_rows_pass`."""
    return _rows_pass
