"""Data-parallel ranks on ``torch.distributed``: who this process is, and the few
collectives training and evaluation need.

Training and evaluation look for a process group (:func:`current_ranks`): inside one
with more than one rank they split their work across the ranks; outside they run as one
process. A group is started either by :func:`spawn` (``graphrec train --nproc N``: N
processes on this machine) or by ``torchrun``, whose environment
:func:`init_from_env` reads::

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 -m graphrec train --config run.yaml --out runs/x

The backend is gloo on the CPU and NCCL on GPUs (each rank on ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


@dataclass(frozen=True)
class Ranks:
    """This process's place among ``world_size`` data-parallel ranks (the default group)."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that decides, logs and writes files."""
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` rows: ranks own consecutive, disjoint
        slices whose sizes differ by at most one."""
        return slice(n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place (every rank gets the sum)."""
        return _all_reduce(tensor, dist.ReduceOp.SUM)

    def min_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Elementwise minimum of ``tensor`` over the ranks, in place."""
        return _all_reduce(tensor, dist.ReduceOp.MIN)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every rank (any picklable object)."""
        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum the gradients of ``params`` over the ranks, in one collective.

        A parameter that has no gradient on any rank keeps none (so the optimiser skips
        it, as it would in one process); one that has a gradient somewhere gets the sum,
        zeros standing in for the ranks without one. The same parameters must be passed
        on every rank, in the same order.
        """
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        ref = params[0]
        # The gradients, then one presence flag per parameter, in one flat buffer.
        sizes = [p.numel() for p in params]
        flags = sum(sizes)
        flat = torch.zeros(flags + len(params), dtype=ref.dtype, device=ref.device)
        offset = 0
        for k, (p, n) in enumerate(zip(params, sizes)):
            if p.grad is not None:
                flat[offset:offset + n] = p.grad.reshape(-1)
                flat[flags + k] = 1
            offset += n
        self.sum_(flat)
        present = flat[flags:].cpu() > 0
        offset = 0
        for k, (p, n) in enumerate(zip(params, sizes)):
            if present[k]:
                grad = flat[offset:offset + n].view_as(p)
                if p.grad is None:
                    p.grad = grad.clone()
                else:
                    p.grad.copy_(grad)
            offset += n

    def broadcast_module(self, module: torch.nn.Module, src: int = 0) -> None:
        """Copy rank ``src``'s parameters and buffers into ``module`` on every rank, so
        that all ranks start from the same weights."""
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=src)


def _all_reduce(tensor: torch.Tensor, op: dist.ReduceOp) -> torch.Tensor:
    """``all_reduce`` in place; NCCL reduces only GPU tensors, so CPU ones take a trip."""
    if tensor.device.type != "cuda" and dist.get_backend() == "nccl":
        on_gpu = tensor.cuda()
        dist.all_reduce(on_gpu, op=op)
        return tensor.copy_(on_gpu.cpu())
    dist.all_reduce(tensor, op=op)
    return tensor


def current_ranks() -> Ranks | None:
    """The ranks of the default process group, or ``None`` without one (or with one
    rank): the caller then works alone."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size()
    return Ranks(dist.get_rank(), world) if world > 1 else None


def default_backend() -> str:
    """NCCL when CUDA is there, else gloo."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_from_env(backend: str | None = None) -> Ranks | None:
    """Join the process group that ``torchrun`` (or :func:`spawn`) describes in the
    environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); without
    ``WORLD_SIZE`` > 1, or when already joined, nothing is started. On CUDA each rank
    uses the device ``LOCAL_RANK``."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return current_ranks()
    backend = backend or default_backend()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return current_ranks()


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(fn: Callable[..., Any], nproc: int, args: tuple[Any, ...] = (),
          backend: str | None = None) -> None:
    """Run ``fn(*args)`` in ``nproc`` new processes on this machine, joined in one process
    group (ranks 0 .. nproc - 1); returns when all have finished, and raises if one fails
    (the others are then stopped). ``fn`` must be importable (a module-level function)."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    port = free_port()
    mp.spawn(_run_rank, args=(nproc, port, backend, fn, args), nprocs=nproc, join=True)


def _run_rank(rank: int, nproc: int, port: int, backend: str | None, fn: Callable[..., Any],
              args: tuple[Any, ...]) -> None:
    """One spawned rank: the torchrun environment, the group, ``fn``, then leave."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc),
                      LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # Ranks share the machine's cores: without this each would start one thread per core.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    init_from_env(backend)
    try:
        fn(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
