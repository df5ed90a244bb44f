r"""Gowalla (LightGCN split): reproduce MF-BPR, LightGCN or the GAT recommender.

The published train/test files; 10% of each user's training rows become the validation
split (the epoch is chosen there, never on test); full ranking over all items with
training and validation items masked. With ``--refit``, a fresh model is then trained on
training + validation for the chosen number of epochs, as the papers train on the whole
training file, and its test metrics are reported too. Paper settings by default:
embedding 64, 3 layers, batch 2048, Adam 1e-3, L2 1e-4.

A full run takes hours on a CPU (hundreds of epochs); ``--minutes`` caps the training time.
Checkpoints go to ``--out`` and ``--resume`` continues an interrupted run exactly.
``benchmarks/gowalla.py`` measures time-to-accuracy against PyG.

    python examples/gowalla.py --root ../shared/datasets --model lightgcn --out runs/lightgcn
    python examples/gowalla.py --model gat --minutes 30 --out runs/gat
    python examples/gowalla.py --model gat --attention-score neighbourhood \
        --attention-lr-scale 20 --mask-batch-edges --refit --out runs/gat-nbh
    python examples/gowalla.py --model mf --refit --out runs/mf
    python examples/gowalla.py --model mf --hard-negatives 8 --batch-size 8192 --lr 1e-2 \
        --lr-decay 0.995 --l2 2e-2 --refit --out runs/mf-hard
"""

from __future__ import annotations

import argparse
import json
import logging

import torch

from graphrec.config import DataConfig, EvalConfig, ModelConfig, RunConfig
from graphrec.experiment import run
from graphrec.models.gat import GATRecommender
from graphrec.training import TrainConfig


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--root", default=None, help="datasets directory (default: GRAPHREC_DATA)")
    parser.add_argument("--model", default="lightgcn", choices=["mf", "lightgcn", "gat"])
    parser.add_argument("--epochs", type=int, default=1000, help="maximum epochs")
    parser.add_argument("--patience", type=int, default=20, help="validations without improvement")
    parser.add_argument("--minutes", type=float, default=None, help="cap on training minutes")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay", type=float, default=1.0, help="learning rate × this after every epoch")
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--hard-negatives", type=int, default=1, metavar="K",
                        help="each negative is the model's top-scored of K uniform candidates "
                             "(dynamic negative sampling; 1 = plain uniform sampling)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--attention-warmup", type=int, default=0, metavar="EPOCHS",
                        help="gat: epochs with attention off (LightGCN, at its speed) before learning it")
    parser.add_argument("--attention-score", default="self", choices=GATRecommender.SCORES,
                        help="gat: compare a neighbour with the node or with its neighbourhood mean")
    parser.add_argument("--attention-lr-scale", type=float, default=1.0,
                        help="gat: the attention sharpness's learning rate as a multiple of --lr")
    parser.add_argument("--mask-batch-edges", action="store_true",
                        help="hide each batch's positive edges from propagation while training")
    parser.add_argument("--refit", action="store_true", help="retrain on train+valid for the chosen epochs")
    parser.add_argument("--out", default=None, help="run directory (checkpoints, metrics, results)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--quiet", action="store_true", help="no epoch lines or progress bars")
    args = parser.parse_args(argv)
    if not args.quiet:  # the trainers log one line per epoch
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    cfg = RunConfig(
        data=DataConfig(dataset="gowalla", root=args.root, split="given", valid_ratio=0.1, seed=args.seed),
        model=ModelConfig(name=args.model, dim=args.dim, layers=args.layers, heads=args.heads,
                          attention_warmup=args.attention_warmup,
                          attention_score=args.attention_score,
                          attention_lr_scale=args.attention_lr_scale),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          lr_decay=args.lr_decay, l2=args.l2, hard_negatives=args.hard_negatives,
                          mask_batch_edges=args.mask_batch_edges,
                          patience=args.patience, max_minutes=args.minutes, seed=args.seed,
                          device=args.device, progress=not args.quiet, resume=args.resume,
                          refit=args.refit, ks=(20,)),
        eval=EvalConfig(ks=[20]),
    )
    res = run(cfg, args.out)
    summary = {"model": args.model, "best_epoch": res.fit.best_epoch, "stopped": res.fit.stopped,
               "train_minutes": res.fit.train_seconds / 60, "valid": res.fit.best_metrics,
               "test": res.test}
    if res.selected_test is not None:
        summary["selected_test"] = res.selected_test
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
