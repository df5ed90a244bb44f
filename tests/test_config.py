import pytest

from graphrec.config import ConfigError, default_config_yaml, load_config


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.epochs=3", "data.ratios=[0.7, 0.1, 0.2]", "train.ks=[5, 10]"])
    assert cfg.train.epochs == 3
    assert cfg.data.ratios == [0.7, 0.1, 0.2]
    assert cfg.train.ks == (5, 10)


def test_exponents_without_a_dot_are_numbers():
    # YAML 1.1 reads "3e-4" as a string; a learning rate written so must still work.
    assert load_config(None, ["train.lr=3e-4"]).train.lr == 3e-4
    with pytest.raises(ConfigError, match="train.lr: expected a number"):
        load_config(None, ["train.lr=fast"])


@pytest.mark.parametrize("override, message", [
    ("train.epochz=3", r"unknown key\(s\) \['epochz'\]"),
    ("train.epochs=abc", "train.epochs: expected an integer"),
    ("train.loss=hinge", r"train.loss: expected one of \[.bpr., .bce., .softmax.\]"),
    ("modle.dim=3", r"unknown section\(s\) \['modle'\]"),
    ("epochs=3", "expected section.key=value"),
])
def test_bad_keys_and_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("model:\n  name: gat\n  dims: 3\n")
    with pytest.raises(ConfigError, match=r"run.yaml: model: unknown key\(s\) \['dims'\]"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_printed_default_config_documents_and_round_trips_every_key(tmp_path):
    text = default_config_yaml()
    path = tmp_path / "default.yaml"
    path.write_text(text)
    assert load_config(path) == load_config(None)
    lines = text.splitlines()
    for key in ("dataset:", "epochs:", "mask_batch_edges:", "memory_budget_mb:"):
        at = next(i for i, ln in enumerate(lines) if ln.strip().startswith(key))
        assert lines[at - 1].strip().startswith("#"), f"{key} is undocumented"


def test_printed_default_config_is_plain_text_of_limited_width():
    text = default_config_yaml()
    for line in text.splitlines():
        assert len(line) <= 88, line
        for markup in ("``", ":class:", ":func:", ":meth:", ":mod:", ":attr:", "`"):
            assert markup not in line, line
    # Keys documented together share one comment.
    assert text.count("# column names for file.") == 1


def test_plain_text_strips_rest_markup():
    from graphrec.config import plain_text

    assert plain_text("a :class:`~graphrec.training.Trainer` and :func:`graphrec.experiment.run`"
                      ) == "a Trainer and graphrec.experiment.run"
    assert plain_text("``dataset: file`` or `x`, :meth:`~A.fit`") == "dataset: file or x, fit"


def test_unknown_key_suggests_the_closest_one():
    from graphrec.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['nme'\]; did you mean 'model.name'\?"):
        load_config(None, ["model.nme=mf"])


def test_unknown_section_suggests_the_closest_one():
    from graphrec.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['trian'\]; did you mean 'train'\?"):
        load_config(None, ["trian.epochs=3"])


def test_no_suggestion_for_a_key_like_no_other():
    from graphrec.config import ConfigError, load_config

    with pytest.raises(ConfigError) as exc:
        load_config(None, ["model.zzzzzz=1"])
    assert "did you mean" not in str(exc.value) and "allowed keys" in str(exc.value)


def test_eval_score_backend_is_checked_like_other_keys(tmp_path):
    import typing

    from graphrec.config import EvalConfig
    from graphrec.config_check import validate_config
    from graphrec.evaluate import SCORE_BACKENDS

    hints = typing.get_type_hints(EvalConfig)
    assert typing.get_args(hints["score_backend"]) == SCORE_BACKENDS
    assert load_config(None).eval.score_backend == "auto"
    assert load_config(None, ["eval.score_backend=numpy"]).eval.score_backend == "numpy"
    bad = tmp_path / "run.yaml"
    bad.write_text("eval:\n  score_backend: cuda\n")
    with pytest.raises(ConfigError, match=r"run.yaml: eval.score_backend: expected one of "
                                          r"\['auto', 'torch', 'numpy'\], got 'cuda'"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"eval.score_backend: expected one of .*got 1"):
        load_config(None, ["eval.score_backend=1"])
    # The trainer's copy of the key is filled from eval; a different value is refused.
    validate_config(load_config(None, ["eval.score_backend=torch", "train.score_backend=torch"]))
    with pytest.raises(ConfigError, match="train.score_backend: .*eval.score_backend"):
        validate_config(load_config(None, ["train.score_backend=numpy"]))
