import numpy as np
import pytest
import torch

from graphrec.config import ConfigError, load_config
from graphrec.data import Interactions
from graphrec.data.errors import DataError
from graphrec.experiment import load_run, prepare_data, rating_train_config, run
from graphrec.models.base import Recommender

TINY = ["data.synthetic_users=120", "data.synthetic_items=90", "train.epochs=3",
        "train.progress=false", "model.dim=8", "train.patience=0"]


def test_refit_trains_on_train_plus_valid_and_is_what_load_run_returns(tmp_path):
    cfg = load_config(None, [*TINY, "train.refit=true", "model.name=lightgcn"])
    result = run(cfg, tmp_path)
    split = result.split
    assert result.selected_test is not None
    assert result.model.graph.num_edges == len(split.train) + len(split.valid)
    assert (tmp_path / "final.pt").exists()
    _, _, loaded = load_run(tmp_path)
    assert loaded.graph.num_edges == len(split.train) + len(split.valid)
    for name, w in result.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name].cpu(), w.cpu()), name
    # propagation sums in a different order on CUDA, hence the tolerance
    for a, b in zip(loaded.embeddings(), result.model.embeddings()):
        np.testing.assert_allclose(a.cpu().numpy(), b.cpu().numpy(), rtol=1e-5, atol=1e-7)


def test_without_refit_the_selected_model_is_kept(tmp_path):
    cfg = load_config(None, [*TINY, "model.name=mf"])
    result = run(cfg, tmp_path)
    assert result.selected_test is None
    assert result.model.graph.num_edges == len(result.split.train)
    assert not (tmp_path / "final.pt").exists()


def test_concat_keeps_columns_and_requires_shared_maps():
    a = Interactions.from_arrays([0, 1], [1, 2], num_users=3, num_items=3, rating=[1.0, 2.0])
    b = a.subset(np.array([1]))
    c = a.concat(b)
    assert c.user.tolist() == [0, 1, 1] and c.rating.tolist() == [1.0, 2.0, 2.0]
    other = Interactions.from_arrays([0], [0], num_users=5, num_items=3)
    with pytest.raises(DataError, match="different id maps"):
        a.concat(other)
    no_rating = Interactions(b.user, b.item, b.user_map, b.item_map)
    assert a.concat(no_rating).rating is None


def test_rating_models_read_the_train_section_as_rating_settings():
    cfg = load_config(None, ["model.name=mf_rating", "train.lr=0.01"])
    rating = rating_train_config(cfg.train)
    assert rating.mask_batch_edges and rating.lr == 0.01
    off = load_config(None, ["train.mask_batch_edges=false"])
    assert not rating_train_config(off.train).mask_batch_edges
    with pytest.raises(ConfigError, match="train.num_negatives: only ranking models"):
        rating_train_config(load_config(None, ["train.num_negatives=4"]).train)


def test_rating_models_need_ratings():
    cfg = load_config(None, [*TINY, "model.name=mf_rating", "data.rating_threshold=3"])
    with pytest.raises(ConfigError, match="has no ratings|have no ratings"):
        run(cfg)


def test_social_file_is_read_through_the_user_map_and_can_be_reversed(tmp_path):
    base = load_config(None, TINY)
    split = prepare_data(base.data).split
    raw = split.train.user_map.to_raw(np.arange(4))
    path = tmp_path / "trust.csv"
    path.write_text("truster,trustee\n"
                    f"{raw[0]},{raw[1]}\n{raw[2]},{raw[3]}\n{raw[0]},unknown-user\n")
    keys = ["data.social=file", f"data.social_path={path}", "data.social_src_col=truster",
            "data.social_dst_col=trustee"]
    forward = prepare_data(load_config(None, [*TINY, *keys]).data).social
    assert list(zip(forward.src, forward.dst)) == [(0, 1), (2, 3)]
    reverse = prepare_data(load_config(None, [*TINY, *keys, "data.social_reverse=true"]).data).social
    assert list(zip(reverse.src, reverse.dst)) == [(1, 0), (3, 2)]
    both = prepare_data(load_config(None, [*TINY, *keys, "data.social_symmetrize=true"]).data).social
    assert len(both) == 4 and both.is_symmetric()


def test_dataset_social_edges_follow_a_filter_that_reindexes_users():
    plain = prepare_data(load_config(None, [*TINY, "data.social=dataset"]).data)
    cfg = load_config(None, [*TINY, "data.social=dataset", "data.min_user_interactions=8"])
    filtered = prepare_data(cfg.data)
    fmap, pmap = filtered.split.train.user_map, plain.split.train.user_map
    assert len(fmap) < len(pmap)
    kept = set(fmap.to_raw(np.arange(len(fmap))).tolist())
    expected = {(a, b) for a, b in zip(pmap.to_raw(plain.social.src).tolist(),
                                       pmap.to_raw(plain.social.dst).tolist())
                if a in kept and b in kept}
    got = set(zip(fmap.to_raw(filtered.social.src).tolist(), fmap.to_raw(filtered.social.dst).tolist()))
    assert got == expected and len(got) > 0


def test_no_social_network_in_the_dataset_is_a_config_error(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item\n1,2\n2,3\n")
    cfg = load_config(None, ["data.dataset=file", f"data.path={path}", "data.social=dataset"])
    with pytest.raises(ConfigError, match="no social network of its own"):
        prepare_data(cfg.data)


def test_attention_warmup_runs_for_gat_and_is_refused_elsewhere(tmp_path):
    result = run(load_config(None, [*TINY, "model.name=gat", "model.attention_warmup=2"]))
    assert result.model.attention_trained()  # learned after the warm-up (epoch 3)
    with pytest.raises(ConfigError, match="only the 'gat' model has a warm-up"):
        run(load_config(None, [*TINY, "model.name=lightgcn", "model.attention_warmup=2"]))


def test_light_propagation_keys_reach_the_models():
    from graphrec.experiment import build_model
    from graphrec.nn import GATv2Conv, LightAttentionConv

    base = load_config(None, TINY)
    graph = prepare_data(base.data).graph()
    keys = ["model.dst_power=0.6", "model.src_power=0.3", "model.normalize=true", "model.pool_weight=0.2"]
    pp = build_model(load_config(None, [*TINY, "model.name=lightgcn_pp", *keys]).model, graph)
    conv = pp.convs[0]["item_to_user"]
    assert isinstance(conv, LightAttentionConv) and conv.beta is None and conv.normalize
    assert conv.powers.tolist() == pytest.approx([0.6, 0.3]) and float(pp.pool_weight) == pytest.approx(0.2)
    learned = build_model(load_config(None, [*TINY, "model.name=lightgcn_pp", "model.learn_norm=true"]).model,
                          graph)
    assert {n for n, _ in learned.named_parameters()} >= {"pool_weight", "convs.0.item_to_user.powers"}
    v2 = build_model(load_config(None, [*TINY, "model.name=social_gat", "model.use_social=false",
                                        "model.attention_layer=gatv2"]).model, graph)
    assert isinstance(v2.convs[0]["user_to_user"], GATv2Conv)
    result = run(load_config(None, [*TINY, "model.name=lightgcn_pp", *keys]))
    assert 0 <= result.test["recall@10"] <= 1


def test_attentive_filter_trains_refits_and_reopens(tmp_path):
    from graphrec.experiment import load_run

    cfg = load_config(None, [*TINY, "model.name=attentive_filter", "model.rank=24", "train.epochs=2",
                             "train.refit=true", "model.attention_score=neighbourhood",
                             "model.degree_power=0.3"])
    result = run(cfg, tmp_path / "run")
    assert result.model.to_item.score_kind == "neighbourhood" and result.model.rank == 24
    assert result.model.degree_power == 0.3
    assert 0 < result.test["recall@10"] <= 1 and result.selected_test is not None
    _, split, model = load_run(tmp_path / "run")
    users = torch.arange(model.num_users)
    torch.testing.assert_close(model.score_users(users), result.model.score_users(users))
    for overrides, message in ((["model.name=lightgcn", "model.rank=8"], "only closed-form models"),
                               (["model.name=attentive_filter", "model.rank=4"], "at most model.rank")):
        with pytest.raises(ConfigError, match=message):
            run(load_config(None, [*TINY, *overrides]))


def test_attentive_filter_start_is_chosen_on_validation_and_kept_on_resume(tmp_path):
    import json

    from graphrec.evaluate import Evaluator
    from graphrec.models import AttentiveFilter

    grid = "model.grid={rank: [6, 24], ideal_weight: [0.0, 0.6], degree_power: [null, 0.4]}"
    base = [*TINY, "model.name=attentive_filter", "model.dim=8", grid]
    cfg = load_config(None, [*base, "train.epochs=1"])
    data = prepare_data(cfg.data)
    # The reference: every point fitted on its own (its own SVD), ranked on validation.
    evaluator = Evaluator(exclude=[data.split.train], ks=(20,))
    valid = {}
    for rank in (6, 24):
        for alpha in (0.0, 0.6):
            for gamma in (None, 0.4):
                model = AttentiveFilter(data.graph(), rank=rank, feature_rank=min(8, rank),
                                        ideal_weight=alpha, degree_power=gamma).fit()
                valid[rank, alpha, gamma] = evaluator.evaluate(model, data.split.valid)["recall@20"]
    best = max(valid, key=valid.get)  # first on ties, in grid order
    result = run(cfg, tmp_path / "run")
    assert result.selected == dict(zip(("rank", "ideal_weight", "degree_power"), best))
    model = result.model
    assert (model.rank, model.ideal_weight, model.degree_power) == best
    assert model.feature_rank == min(8, best[0])
    table = json.loads((tmp_path / "run" / "start_grid.json").read_text())
    assert len(table["grid"]) == 8 and table["grid_edges"] == []  # two values: no range
    for point in table["grid"]:
        key = tuple(point["params"][k] for k in ("rank", "ideal_weight", "degree_power"))
        assert point["valid"]["recall@20"] == pytest.approx(valid[key], abs=1e-6)
    saved = load_config(tmp_path / "run" / "config.yaml").model
    assert (saved.rank, saved.ideal_weight, saved.degree_power, saved.grid) == (*best, {})
    # Resuming with the same config (grid included) continues from the chosen start.
    again = run(load_config(None, [*base, "train.epochs=2", "train.resume=true"]), tmp_path / "run")
    assert again.selected == result.selected and again.fit.history[-1]["epoch"] == 2
    _, _, loaded = load_run(tmp_path / "run")
    assert (loaded.rank, loaded.ideal_weight, loaded.degree_power) == best
    with pytest.raises(ConfigError, match="model.grid.svd_iters: 'attentive_filter' cannot choose it"):
        run(load_config(None, [*TINY, "model.name=attentive_filter", "model.grid={svd_iters: [2, 4]}"]))
    with pytest.raises(ConfigError, match="model.grid: only closed-form"):
        run(load_config(None, [*TINY, "model.name=lightgcn", "model.grid={rank: [8]}"]))


def test_attentive_filter_grid_chooses_between_the_filter_and_user_attention(tmp_path):
    import json

    from graphrec.evaluate import Evaluator
    from graphrec.models import AttentiveFilter

    grid = "model.grid={rank: [6], ideal_weight: [0.0, 0.6], user_attention: [null, 4.0]}"
    cfg = load_config(None, [*TINY, "model.name=attentive_filter", "model.dim=6", grid, "train.epochs=1"])
    data = prepare_data(cfg.data)
    evaluator = Evaluator(exclude=[data.split.train], ks=(20,))
    valid = {}
    for alpha in (0.0, 0.6):
        for beta in (None, 4.0):
            model = AttentiveFilter(data.graph(), rank=6, feature_rank=6, ideal_weight=alpha,
                                    user_attention=beta).fit()
            valid[alpha, beta] = evaluator.evaluate(model, data.split.valid)["recall@20"]
    # Attention over users ignores the ideal part: both of its points are one model.
    assert valid[0.0, 4.0] == pytest.approx(valid[0.6, 4.0], abs=1e-9)
    best = max(valid, key=valid.get)
    result = run(cfg, tmp_path / "run")
    assert (result.selected["ideal_weight"], result.selected["user_attention"]) == best
    assert result.model.user_attention is not None if best[1] is not None else result.model.user_attention is None
    table = json.loads((tmp_path / "run" / "start_grid.json").read_text())
    repeat = next(p for p in table["grid"] if p["params"] == {"rank": 6, "ideal_weight": 0.6, "user_attention": 4.0})
    assert repeat["valid"]["eval_seconds"] > 0  # the first point's scores, reported again
    for point in table["grid"]:
        key = (point["params"]["ideal_weight"], point["params"]["user_attention"])
        assert point["valid"]["recall@20"] == pytest.approx(valid[key], abs=1e-6)


def test_attentive_filter_fit_from_a_larger_svd_equals_its_own_fit():
    from graphrec.models import AttentiveFilter
    from graphrec.models.scoring_model import NotFittedError

    graph = prepare_data(load_config(None, TINY).data).graph()
    big = AttentiveFilter(graph, rank=30, feature_rank=8, ideal_weight=0.5, degree_power=0.3)
    with pytest.raises(NotFittedError):
        AttentiveFilter(graph, rank=10, feature_rank=4).fit_from(big)
    big.fit()
    small = AttentiveFilter(graph, rank=10, feature_rank=4, ideal_weight=0.5, degree_power=0.3)
    own = AttentiveFilter(graph, rank=10, feature_rank=4, ideal_weight=0.5, degree_power=0.3).fit()
    users = torch.arange(graph.num_users)
    # The tiny graph gets an exact SVD: the top 10 of 30 are the rank-10 pairs.
    torch.testing.assert_close(small.fit_from(big).score_users(users), own.score_users(users),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="rank >= 40"):
        AttentiveFilter(graph, rank=40, feature_rank=4).fit_from(big)


def test_attention_score_and_lr_scale_reach_the_gat_model_and_are_checked():
    from graphrec.experiment import build_model

    cfg = load_config(None, [*TINY, "model.name=gat", "model.attention_score=neighbourhood",
                             "model.attention_lr_scale=20"])
    graph = prepare_data(cfg.data).graph()
    model = build_model(cfg.model, graph)
    assert model.convs[0]["item_to_user"].score_kind == "neighbourhood"
    assert [g["lr_scale"] for g in model.param_groups()] == [1.0, 20.0]
    for overrides, message in (
            (["model.name=lightgcn", "model.attention_lr_scale=2"], "only 'gat' read it"),
            (["model.name=gat", "model.attention_score=centroid"], "expected one of"),
            (["model.name=gat", "model.attention_lr_scale=0"], "finite value > 0"),
            (["model.name=gat", "model.attention_layer=gcn"], "expected one of"),
            (["model.name=lightgcn", "model.normalize=true"], "'lightgcn_pp', 'gat', 'social_gat' read it"),
            (["model.name=lightgcn_pp", "model.attention_layer=gat"], "only 'gat', 'social_gat' read it"),
            (["model.name=lightgcn_pp", "model.pool_weight=1.5"], r"in \[0, 1\]")):
        with pytest.raises(ConfigError, match=message):
            build_model(load_config(None, [*TINY, *overrides]).model, graph)


def test_cosine_temperature_and_shared_negatives_reach_the_model_and_trainer(tmp_path, monkeypatch):
    cfg = load_config(None, [*TINY, "model.scorer=cosine", "model.temperature=0.05",
                             "train.loss=softmax", "train.shared_negatives=true",
                             "train.num_negatives=16"])
    calls = []
    score_shared = Recommender.score_shared

    def counting(self, users, pos, neg, edge_mask=None):
        calls.append(neg.shape)
        return score_shared(self, users, pos, neg, edge_mask)

    monkeypatch.setattr(Recommender, "score_shared", counting)
    result = run(cfg, tmp_path)
    assert result.model.scorer.temperature == 0.05
    assert calls and all(shape == (16,) for shape in calls)
    for bad in ("0", ".nan"):
        with pytest.raises(ConfigError, match="model.temperature: expected a finite value > 0"):
            run(load_config(None, [*TINY, "model.scorer=cosine", f"model.temperature={bad}"]))
    with pytest.raises(ConfigError, match="only the cosine scorer has a temperature"):
        run(load_config(None, [*TINY, "model.temperature=0.1"]))
    with pytest.raises(ConfigError, match="train.shared_negatives: only ranking models"):
        rating_train_config(load_config(None, ["train.shared_negatives=true"]).train)


def test_batch_sampling_reaches_the_trainer_from_yaml_and_is_ranking_only():
    cfg = load_config(None, ["train.batch_sampling=users"])
    assert cfg.train.batch_sampling == "users"
    with pytest.raises(ConfigError, match="train.batch_sampling: only ranking models"):
        rating_train_config(cfg.train)
    with pytest.raises(ConfigError, match=r"train.batch_sampling: expected one of \['edges', 'users'\], got 'items'"):
        load_config(None, ["train.batch_sampling=items"])


def test_eval_score_backend_reaches_every_evaluator_of_a_run(evaluator_backends):
    results = {}
    for backend in ("numpy", "torch"):
        evaluator_backends.clear()
        cfg = load_config(None, [*TINY, "model.name=mf", "train.epochs=1", "train.refit=true",
                                 "train.device=cpu", f"eval.score_backend={backend}"])
        results[backend] = run(cfg)
        # the trainer's validation, the test, the refit's test
        assert len(evaluator_backends) >= 3 and set(evaluator_backends) == {backend}
        assert cfg.train.score_backend == "auto"  # the run's config is left as written
    numpy, torch_ = results["numpy"], results["torch"]
    assert numpy.selected_test is not None and torch_.selected_test is not None
    for key in ("recall@20", "ndcg@20"):
        assert numpy.fit.best_metrics[key] == pytest.approx(torch_.fit.best_metrics[key], abs=1e-6)
    for key in ("recall@20", "ndcg@20", "recall@10"):
        assert numpy.selected_test[key] == pytest.approx(torch_.selected_test[key], abs=1e-6)
        assert numpy.test[key] == pytest.approx(torch_.test[key], abs=1e-6)


def test_closed_form_grid_search_reads_eval_score_backend(evaluator_backends):
    cfg = load_config(None, [*TINY, "model.name=gfcf", "model.rank=8", "model.svd_iters=4",
                             "model.grid={ideal_weight: [0.0, 0.5]}", "eval.score_backend=numpy"])
    run(cfg)
    assert evaluator_backends and set(evaluator_backends) == {"numpy"}
