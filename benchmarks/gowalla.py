r"""Accuracy on Gowalla (LightGCN split): time to accuracy and full reproduction.

Protocol: the published train/test files; 10% of each user's training rows are carved
out as a validation split (seeded), models train on the rest, the epoch is chosen on
validation Recall@20, and test is evaluated with the chosen weights — training and
validation items masked, full ranking over all 40,981 items.

Three modes:

* ``--minutes 10 30``: train for the last mark's minutes of *training* time (validation
  excluded, evaluated after every ``--eval-every`` epochs) and report, for every mark, the
  test metrics of the best-on-validation weights seen by then. ``--model pyg-lightgcn``
  runs PyG's ``LightGCN`` the way its example trains it, on a pre-normalised CSR adjacency,
  and is validated at every epoch end and exactly at each mark (its epochs are long).
* ``--epochs N --patience P``: the full run, early stopping on validation; with
  ``--refit``, a fresh model is then trained on training + validation for the chosen
  number of epochs and that model's test metrics are reported as well (the papers train
  on the whole training file).
* ``--refit-epochs N``: that refit alone, for an epoch count an earlier run chose on
  validation (e.g. a ``--minutes`` run's best epoch), so a long run need not be repeated.

Every run prints its per-evaluation curve, a table, one JSON line with the settings and
every result (``--log`` appends it to a file) and, last, a summary line in the keys every
accuracy benchmark prints, ``{"dataset", "model", "recall@20", "ndcg@20",
"valid_recall@20", "train_minutes", "refit"}`` (the refit's test when there is one).
Examples::

    python benchmarks/gowalla.py --model lightgcn --minutes 10 30
    python benchmarks/gowalla.py --model gat --minutes 10 30 --batch-size 8192 --lr 2e-2 \
        --attention-warmup 20
    python benchmarks/gowalla.py --model pyg-lightgcn --minutes 10 30
    python benchmarks/gowalla.py --model mf --epochs 1000 --patience 20 --refit

``--model attentive_filter`` runs the attention recommender the way
``benchmarks/attentive_filter.py`` does, with its functions: the closed form's start is
chosen on validation over ``--rank`` × ``--ideal-weight`` × ``--degree-power`` (one
SVD), the attention is trained for up to ``--epochs`` epochs (``--patience``), the epoch
is chosen on validation (0: the closed form) and ``--refit`` (or ``--refit-epochs N``)
fits and trains it again on training + validation. Its ``train_minutes`` count the fit
(SVD) as well as the training of the model tested. The recipe of the attentive-filter
runs in ``benchmarks/README.md``::

    python benchmarks/gowalla.py --model attentive_filter --rank 256 --ideal-weight 0.1 \
        --degree-power 0.25 --no-node-bias --epochs 2 --refit

``--save`` keeps the chosen weights and ``--init`` starts from saved ones, so the GAT
recommender can learn its attention from a trained LightGCN (β starts at 0, where the
two models are equal)::

    python benchmarks/gowalla.py --model lightgcn --minutes 60 --save lightgcn.pt
    python benchmarks/gowalla.py --model gat --minutes 30 --init lightgcn.pt

Repeats with other training seeds keep one validation carve with ``--split-seed``, and
``--thinned-test K`` also reports every test metric on K draws of the test file thinned
to one share of every item's rows (``graphrec.data.thin_holdout``; the published file
leans to the most popular items)::

    python benchmarks/gowalla.py --model gat --init lightgcn.pt --attention-score \
        neighbourhood --attention-lr-scale 20 --mask-batch-edges --seed 1 --split-seed 0 \
        --epochs 24 --patience 10 --thinned-test 5
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from attentive_filter import add_filter_arguments, choose_start, refit, select_epochs
from train_eval import pyg_model

from graphrec import datasets
from graphrec.data.graph import RecGraph
from graphrec.data.interactions import Interactions
from graphrec.data.splits import Split, holdout_valid, thin_holdout
from graphrec.evaluate import Evaluator
from graphrec.models import MF, LightGCN, Recommender
from graphrec.models.gat import GATRecommender, attention_warmup
from graphrec.scoring import make_scorer
from graphrec.training import TrainConfig, Trainer, save_checkpoint

METRICS = ("recall", "ndcg")


def build(name: str, graph: RecGraph, args: argparse.Namespace) -> Recommender:
    scorer = make_scorer(args.scorer, args.dim, args.temperature)
    if name == "mf":
        return MF(graph, dim=args.dim, scorer=scorer)
    if name == "lightgcn":
        return LightGCN(graph, dim=args.dim, num_layers=args.layers, scorer=scorer)
    if name == "lightgcn_pp":
        return GATRecommender(graph, dim=args.dim, num_layers=args.layers, scorer=scorer,
                              attention=False, learn_powers=True, learn_pool=True)
    if name == "gat":
        return GATRecommender(graph, dim=args.dim, num_layers=args.layers, heads=args.heads,
                              attention_dropout=args.attention_dropout, scorer=scorer,
                              attention_score=args.attention_score,
                              attention_lr_scale=args.attention_lr_scale)
    raise ValueError(f"unknown model {name!r}")


def train_config(args: argparse.Namespace, minutes: float | None) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                       batch_sampling=args.batch_sampling, lr=args.lr,
                       lr_decay=args.lr_decay, l2=args.l2,
                       loss=args.loss, num_negatives=args.negatives,
                       hard_negatives=args.hard_negatives,
                       shared_negatives=args.shared_negatives,
                       mask_batch_edges=args.mask_batch_edges, eval_every=args.eval_every,
                       patience=args.patience, max_minutes=minutes, seed=args.seed,
                       progress=args.progress, device=args.device, ks=(20,))


def run_graphrec(split: Split, args: argparse.Namespace, thinned: list[Interactions]) -> dict:
    torch.manual_seed(args.seed)
    graph = RecGraph(split.train)
    model = build(args.model, graph, args)
    if args.init:
        # e.g. a LightGCN run's weights for the GAT recommender, whose β then starts at 0
        missing, unexpected = model.load_state_dict(
            torch.load(args.init, map_location="cpu", weights_only=True), strict=False)
        if unexpected:
            raise SystemExit(f"{args.init}: weights {unexpected} do not belong to a {args.model} model")
        print(json.dumps({"init": str(args.init), "left_at_initialisation": missing}), flush=True)
    marks = sorted(args.minutes) if args.minutes else []
    snapshots: dict[float, dict] = {m: {"value": -math.inf} for m in marks}
    curve: list[dict] = []

    warmup = args.attention_warmup if args.model == "gat" else 0.0
    if warmup > 0:
        # β frozen at 0: the GAT recommender is LightGCN and propagates at its speed.
        model.train_attention(False)

    def on_epoch_end(trainer: Trainer, row: dict) -> None:
        if warmup > 0 and not model.attention_trained() and row["train_seconds"] >= warmup * 60:
            model.train_attention(True)
            print(json.dumps({"attention_from_epoch": row["epoch"] + 1}), flush=True)
        if "valid_recall@20" not in row:
            return
        curve.append({"epoch": row["epoch"], "train_minutes": row["train_seconds"] / 60,
                      "valid_recall@20": row["valid_recall@20"]})
        print(json.dumps(curve[-1]), flush=True)
        for m, snap in snapshots.items():
            # The last mark is where training stops (the batch that crosses it is included).
            in_time = row["train_seconds"] <= m * 60 or m == marks[-1]
            if in_time and row["valid_recall@20"] > snap["value"]:
                snapshots[m] = {"value": row["valid_recall@20"], "epoch": row["epoch"],
                                "state": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}}

    cfg = train_config(args, marks[-1] if marks else None)
    init_state = {k: v.clone() for k, v in model.state_dict().items()} if args.init else None
    if args.refit_epochs is not None:
        refit_model, result = _refit(init_state, split, args.refit_epochs, cfg, args, thinned)
        if args.save:
            save_checkpoint(refit_model.state_dict(), args.save)
        return result
    fit = Trainer(model, split.valid, cfg, on_epoch_end=on_epoch_end,
                  on_epoch_start=_warmup_hook(args)).fit()
    evaluator = Evaluator(exclude=[split.train, split.valid], ks=(20,), metrics=METRICS)
    result: dict = {"epochs_run": len(fit.history), "train_minutes": fit.train_seconds / 60,
                    "best_epoch": fit.best_epoch, "stopped": fit.stopped, "curve": curve}
    if marks:
        result["marks"] = {}
        for m, snap in snapshots.items():
            if "state" not in snap:
                result["marks"][str(m)] = None
                continue
            model.load_state_dict(snap["state"])
            result["marks"][str(m)] = {"epoch": snap["epoch"], "valid_recall@20": snap["value"],
                                       **_test(evaluator, model, split, thinned)}
        # the model now holds the last mark's choice
    else:
        result["test"] = _test(evaluator, model, split, thinned)  # best weights were restored by fit()
        if args.refit and fit.best_epoch > 0:
            result["refit_test"] = _refit(init_state, split, fit.best_epoch, cfg, args, thinned)[1]["refit_test"]
    if args.save:
        save_checkpoint(model.state_dict(), args.save)
    return result


def _warmup_hook(args: argparse.Namespace):
    """``--attention-warmup-epochs`` as a trainer hook (None when not asked for)."""
    if args.model == "gat" and args.attention_warmup_epochs:
        return attention_warmup(args.attention_warmup_epochs)
    return None


def _refit(init_state: dict | None, split: Split, epochs: int, cfg: TrainConfig,
           args: argparse.Namespace, thinned: list[Interactions]) -> tuple[Recommender, dict]:
    """Train on training + validation for ``epochs`` epochs and test that model, as the
    papers do (they train on the whole training file), starting from ``--init``'s
    weights (``init_state``) when given, like the run that chose ``epochs``."""
    torch.manual_seed(args.seed)
    full = RecGraph(split.train.concat(split.valid))
    refit_model = build(args.model, full, args)
    if init_state is not None:
        refit_model.load_state_dict(init_state)
    fit = Trainer(refit_model, None, replace(cfg, epochs=epochs, patience=0, max_minutes=None),
                  on_epoch_start=_warmup_hook(args)).fit()
    refit_eval = Evaluator(exclude=[full.ui], ks=(20,), metrics=METRICS)
    return refit_model, {"epochs_run": len(fit.history), "train_minutes": fit.train_seconds / 60,
            "best_epoch": epochs, "stopped": fit.stopped, "curve": [],
            "refit_test": _test(refit_eval, refit_model, split, thinned)}


def _test(evaluator: Evaluator, model: Recommender, split: Split,
          thinned: list[Interactions]) -> dict:
    """Test Recall/NDCG@20, and their means over the ``thinned`` test parts if any."""
    m = evaluator.evaluate(model, split.test)
    out = {"test_recall@20": m["recall@20"], "test_ndcg@20": m["ndcg@20"]}
    if thinned:
        runs = [evaluator.evaluate(model, part) for part in thinned]
        out["thinned_recall@20"] = float(np.mean([r["recall@20"] for r in runs]))
        out["thinned_ndcg@20"] = float(np.mean([r["ndcg@20"] for r in runs]))
    return out


def run_attentive_filter(split: Split, args: argparse.Namespace,
                         thinned: list[Interactions]) -> dict:
    """The attentive filter, as ``benchmarks/attentive_filter.py`` runs it: the closed
    form's start chosen on validation Recall@20 over ``--rank`` × ``--ideal-weight`` ×
    ``--degree-power`` (one SVD), then β learned for up to ``--epochs`` epochs (early
    stopping after ``--patience``) and the epoch chosen on validation, 0 being the closed
    form itself. With ``--refit`` the filter is then fitted on training + validation and
    trained for the chosen number of epochs (``--refit-epochs N``: that alone, for N).
    ``train_minutes`` is the reported model's fit (SVD) and training time."""
    start_model, start, point, fit_seconds = choose_start(split, args)
    result: dict = {"start": {"rank": point[0], "ideal_weight": point[1],
                              "degree_power": point[2], "valid_recall@20": start}}
    if args.refit_epochs is not None:
        epochs = args.refit_epochs
        result.update(epochs_run=epochs, best_epoch=epochs, curve=[])
    else:
        curve, best, model, fit = select_epochs(start_model, split, start, point, args.seed,
                                                args, args.patience)
        epochs = best["epoch"]
        result.update(epochs_run=len(curve) - 1, best_epoch=epochs,
                      stopped=fit.stopped if fit else None,
                      train_minutes=(fit_seconds + (fit.train_seconds if fit else 0.0)) / 60,
                      curve=[{k: v for k, v in row.items() if k != "seed"} for row in curve])
        # the trained model holds its best trained epoch; epoch 0 is the closed form
        tested = start_model if epochs == 0 else model
        evaluator = Evaluator(exclude=[split.train, split.valid], ks=(20,), metrics=METRICS)
        result["test"] = _test(evaluator, tested, split, thinned)
        if not args.refit:
            return result
        result["selection_minutes"] = result["train_minutes"]
    final, full, fit, seconds = refit(split, point, epochs, args.seed, args)
    result["train_minutes"] = seconds / 60  # the refit's fit and training
    if args.refit_epochs is not None:
        result["stopped"] = fit.stopped if fit else None
    result["refit_test"] = _test(Evaluator(exclude=[full], ks=(20,), metrics=METRICS),
                                 final, split, thinned)
    return result


def run_pyg(split: Split, args: argparse.Namespace) -> dict:
    """PyG's LightGCN, trained as in its example (BPR via ``recommendation_loss``)."""
    torch.manual_seed(args.seed)
    graph = RecGraph(split.train)
    nu = graph.num_users
    model, adj = pyg_model(graph, args.dim, args.layers)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    u, i = graph.edges()
    edges = torch.from_numpy(np.stack([u, i + nu]))
    evaluator = Evaluator(exclude=[split.train], ks=(20,), metrics=METRICS)
    test_eval = Evaluator(exclude=[split.train, split.valid], ks=(20,), metrics=METRICS)
    marks = sorted(args.minutes)
    best: dict[float, dict] = {m: {"value": -math.inf} for m in marks}
    curve: list[dict] = []
    trained, epoch, pending = 0.0, 0, list(marks)

    def validate(mark: float | None = None) -> None:
        with torch.no_grad():
            emb = model.get_embedding(adj)
        val = evaluator.evaluate_embeddings(emb[:nu], emb[nu:], split.valid)["recall@20"]
        curve.append({"epoch": epoch, "train_minutes": trained / 60, "valid_recall@20": val})
        print(json.dumps(curve[-1]), flush=True)
        for m in marks:
            in_time = trained <= m * 60 or (mark is not None and m >= mark)
            if in_time and val > best[m]["value"]:
                best[m] = {"value": val, "epoch": epoch,
                           "state": {k: v.clone() for k, v in model.state_dict().items()}}

    while pending:
        epoch += 1
        perm = torch.randperm(edges.size(1))
        for start in range(0, perm.numel(), args.batch_size):
            t0 = time.perf_counter()
            pos = edges[:, perm[start:start + args.batch_size]]
            neg = torch.randint(nu, graph.num_nodes, (pos.size(1),))
            label_index = torch.cat([pos, torch.stack([pos[0], neg])], dim=1)
            pos_rank, neg_rank = model(adj, label_index).chunk(2)
            loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique(),
                                             lambda_reg=args.l2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            trained += time.perf_counter() - t0
            if trained >= pending[0] * 60:
                validate(pending.pop(0))
                if not pending:
                    break
        else:
            validate()
    result: dict = {"epochs_run": epoch, "train_minutes": trained / 60, "curve": curve, "marks": {}}
    for m, snap in best.items():
        model.load_state_dict(snap["state"])
        with torch.no_grad():
            emb = model.get_embedding(adj)
        t = test_eval.evaluate_embeddings(emb[:nu], emb[nu:], split.test)
        result["marks"][str(m)] = {"epoch": snap["epoch"], "valid_recall@20": snap["value"],
                                   "test_recall@20": t["recall@20"], "test_ndcg@20": t["ndcg@20"]}
    return result


def summary_line(model: str, result: dict) -> dict:
    """The run in the keys every accuracy benchmark prints last: the refit's test when
    there is one, else the validation-selected model's (the last time mark's)."""
    refit = "refit_test" in result
    if refit or "test" in result:
        test = result["refit_test" if refit else "test"]
        valid = max((r["valid_recall@20"] for r in result["curve"]), default=None)
    else:
        last = [r for r in (result.get("marks") or {}).values() if r]
        test = last[-1] if last else {"test_recall@20": None, "test_ndcg@20": None}
        valid = last[-1]["valid_recall@20"] if last else None
    return {"dataset": "gowalla", "model": model, "recall@20": test["test_recall@20"],
            "ndcg@20": test["test_ndcg@20"], "valid_recall@20": valid,
            "train_minutes": result["train_minutes"], "refit": refit}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--root", default=None, help="datasets directory (default: GRAPHREC_DATA)")
    p.add_argument("--model", default="lightgcn",
                   choices=["mf", "lightgcn", "lightgcn_pp", "gat", "pyg-lightgcn",
                            "attentive_filter"])
    p.add_argument("--minutes", type=float, nargs="*", default=None,
                   help="time-to-accuracy marks in training minutes (e.g. 10 30)")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--patience", type=int, default=20, help="validations without improvement")
    p.add_argument("--refit", action="store_true", help="retrain on train+valid for the chosen epochs")
    p.add_argument("--refit-epochs", type=int, default=None, metavar="N",
                   help="skip selection: train on train+valid for N epochs (the count an earlier "
                        "run chose on validation) and report test")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--heads", type=int, default=1)
    p.add_argument("--attention-dropout", type=float, default=0.0)
    p.add_argument("--attention-score", default="self", choices=GATRecommender.SCORES,
                   help="gat: compare a neighbour with the node itself or with the node's "
                        "neighbourhood mean")
    p.add_argument("--attention-lr-scale", type=float, default=1.0,
                   help="gat: β's learning rate as a multiple of --lr")
    p.add_argument("--attention-warmup", type=float, default=0.0, metavar="MIN",
                   help="gat: train this many minutes with attention off (β frozen at 0, i.e. "
                        "LightGCN at its speed), then learn the attention")
    p.add_argument("--attention-warmup-epochs", type=int, default=0, metavar="N",
                   help="gat: the same warm-up counted in epochs, which a refit repeats")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--batch-sampling", default="edges", choices=["edges", "users"],
                   help="shuffle the training edges, or draw a user then one of their edges "
                        "(the NGCF/LightGCN reference code)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-decay", type=float, default=1.0, help="learning rate × this after every epoch")
    p.add_argument("--l2", type=float, default=1e-4)
    p.add_argument("--loss", default="bpr", choices=["bpr", "bce", "softmax"])
    p.add_argument("--scorer", default="dot", choices=["dot", "cosine"])
    p.add_argument("--temperature", type=float, default=0.1, help="of the cosine scorer")
    p.add_argument("--negatives", type=int, default=1, help="negatives per positive")
    p.add_argument("--hard-negatives", type=int, default=1, metavar="K",
                   help="each negative is the model's top-scored of K candidates (dynamic "
                        "negative sampling; 1 = plain sampling)")
    p.add_argument("--shared-negatives", action="store_true",
                   help="draw --negatives items once per batch and score every user against all")
    p.add_argument("--mask-batch-edges", action="store_true")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--thinned-test", type=int, default=0, metavar="K",
                   help="also report test metrics averaged over K draws of the test file thinned "
                        "to one share of every item's rows (graphrec.data.thin_holdout): an "
                        "analysis of the published test file's lean to popular items")
    p.add_argument("--valid-ratio", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0, help="seeds initialisation, batches and negatives")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seeds the validation carve (default: --seed); fix it to repeat a run "
                        "with other --seed values on the same carve, e.g. from an --init "
                        "checkpoint trained on that carve's training part")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--progress", action="store_true",
                   help="log one line per epoch on stderr (and a tqdm bar on a terminal)")
    p.add_argument("--init", type=Path, default=None,
                   help="start from these weights (a state dict saved with --save; a LightGCN "
                        "run's fits the GAT recommender, whose β then starts at 0)")
    p.add_argument("--save", type=Path, default=None,
                   help="save the chosen weights (best on validation; the last mark's) here; "
                        "with --refit-epochs, the refitted weights (trained on validation too: "
                        "do not select epochs with them)")
    p.add_argument("--log", type=Path, default=None, help="append the JSON line to this file")
    filter_args = p.add_argument_group(
        "attentive_filter", "the closed form's start grid (chosen on validation) and the "
        "attention's options, as in benchmarks/attentive_filter.py; the filter also uses "
        "--epochs, --patience, --batch-size, --lr, --l2, --hard-negatives, --seed, --refit "
        "and --refit-epochs")
    add_filter_arguments(filter_args)
    args = p.parse_args(argv)
    if args.progress:  # the trainer logs its epoch lines; show them
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.model == "pyg-lightgcn" and not args.minutes:
        p.error("--model pyg-lightgcn needs --minutes")
    if args.refit_epochs is not None:
        if args.refit_epochs < 1:
            p.error(f"--refit-epochs must be >= 1, got {args.refit_epochs}")
        if args.minutes or args.refit or args.model == "pyg-lightgcn":
            p.error("--refit-epochs trains once on train+valid: no --minutes, --refit or pyg-lightgcn")
    if args.attention_warmup and (args.refit or args.refit_epochs is not None):
        p.error("--attention-warmup counts minutes, which a refit cannot repeat; refit without it")
    if args.attention_warmup and args.attention_warmup_epochs:
        p.error("give the warm-up in minutes or in epochs, not both")
    if args.model == "attentive_filter" and (args.minutes or args.init or args.save):
        p.error("--model attentive_filter trains by epochs: no --minutes, --init or --save")
    if args.model == "pyg-lightgcn" and args.thinned_test:
        p.error("--thinned-test is for graphrec's models")
    if args.model == "pyg-lightgcn" and (args.init or args.save):
        p.error("--init and --save are for graphrec's models")
    torch.set_num_threads(args.threads)
    ds = datasets.gowalla(root=args.root)
    # thinned from the published files, so that every run (refit or not) tests on the same rows
    thinned = [thin_holdout(ds.split, seed=s).test for s in range(args.thinned_test)]
    split_seed = args.seed if args.split_seed is None else args.split_seed
    split = holdout_valid(ds.split, ratio=args.valid_ratio, seed=split_seed)
    start = time.perf_counter()
    if args.model == "pyg-lightgcn":
        result = run_pyg(split, args)
    elif args.model == "attentive_filter":
        result = run_attentive_filter(split, args, thinned)
    else:
        result = run_graphrec(split, args, thinned)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                if k not in ("root", "log", "progress")}
    line = {"benchmark": "gowalla", **settings, "wall_minutes": (time.perf_counter() - start) / 60,
            **{k: v for k, v in result.items() if k != "curve"}, "curve": result["curve"]}
    print(f"\n{args.model}: {result['epochs_run']} epochs, {result['train_minutes']:.1f} training "
          f"minutes, {line['wall_minutes']:.1f} wall minutes")
    print("| mark | epoch | valid Recall@20 | test Recall@20 | test NDCG@20 |")
    print("|---|---|---|---|---|")
    for mark, r in (result.get("marks") or {}).items():
        if r:
            print(f"| {mark} min | {r['epoch']} | {r['valid_recall@20']:.4f} | "
                  f"{r['test_recall@20']:.4f} | {r['test_ndcg@20']:.4f} |")
    for key in ("test", "refit_test"):
        if key in result:
            r = result[key]
            print(f"| {key} (best epoch {result['best_epoch']}) | | | {r['test_recall@20']:.4f} | "
                  f"{r['test_ndcg@20']:.4f} |")
            if "thinned_recall@20" in r:
                print(f"| {key}, thinned ({args.thinned_test} draws) | | | "
                      f"{r['thinned_recall@20']:.4f} | {r['thinned_ndcg@20']:.4f} |")
    text = json.dumps(line)
    print(text)
    print(json.dumps(summary_line(args.model, result)))
    if args.log:
        with open(args.log, "a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
