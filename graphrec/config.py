"""Typed run configuration for the ``graphrec`` command, read from YAML and validated.

A config file has four sections, each a dataclass below: ``data``, ``model``, ``train``
(:class:`graphrec.training.config.TrainConfig`) and ``eval``. Every key is documented in its
dataclass; unknown keys and values of the wrong type are rejected with a message that
names the file, the section and the key. ``graphrec train --print-config`` prints a
complete, commented default.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import reprlib
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from graphrec.training.config import ScoreBackend, TrainConfig


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


@dataclass
class DataConfig:
    """Where the interactions come from and how they are split.

    Attributes:
        dataset: ``synthetic``, ``movielens_small``, ``filmtrust``, ``lastfm``,
            ``gowalla`` or ``file``.
        root: directory of the real datasets (default: the ``GRAPHREC_DATA`` variable).
        path: the interaction file when ``dataset: file`` (CSV/TSV/Parquet).
        train_path, valid_path, test_path: instead of ``path``, a split made beforehand
            (``dataset: file``, ``split: given``): three files read like ``path`` with
            one id map over all of them. ``valid_path`` is optional; without it
            ``valid_ratio`` of each user's training rows become validation.
        user_col, item_col, rating_col, timestamp_col: column names for ``file``.
        timestamp_format: ``strftime`` format of date timestamps, e.g. ``'%d/%m/%Y'``
            (needed when the dates alone do not tell day-first from month-first).
        rating_threshold: keep only ratings >= this value (implicit feedback), if set.
        min_user_interactions, min_item_interactions: k-core filter (0 = none).
        split: ``per_user``, ``random``, ``temporal``, ``per_user_temporal``,
            ``leave_one_out`` or ``given`` (datasets that come pre-split).
        ratios: train/valid/test fractions for ratio splits.
        valid_ratio: for ``given`` splits without validation rows, the share of training
            carved out for validation.
        synthetic_users, synthetic_items: sizes of the synthetic dataset.
        seed: seed of the synthetic data and of the split.
        social: user–user edges for the social models: ``none``, ``dataset`` (the
            dataset's own network: FilmTrust trust, Last.fm friendships, synthetic ties)
            or ``file`` (read ``social_path``).
        social_path: the social file when ``social: file`` (CSV/TSV/Parquet, raw user
            ids of the interaction log; edges to unknown users, self-loops and
            duplicates are dropped).
        social_src_col, social_dst_col: column names of the edge ends in ``social_path``.
        social_reverse: flip every edge. A user aggregates messages along edges into
            them, so a trust list of (truster, trustee) rows needs flipping for users to
            learn from the people they trust.
        social_symmetrize: add the missing reverse of every edge (undirected networks).
    """

    dataset: str = "synthetic"
    root: str | None = None
    path: str | None = None
    train_path: str | None = None
    valid_path: str | None = None
    test_path: str | None = None
    user_col: str = "user"
    item_col: str = "item"
    rating_col: str | None = None
    timestamp_col: str | None = None
    timestamp_format: str | None = None
    rating_threshold: float | None = None
    min_user_interactions: int = 0
    min_item_interactions: int = 0
    split: str = "per_user"
    ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    valid_ratio: float = 0.1
    synthetic_users: int = 2000
    synthetic_items: int = 1500
    seed: int = 0
    social: str = "none"
    social_path: str | None = None
    social_src_col: str = "src"
    social_dst_col: str = "dst"
    social_reverse: bool = False
    social_symmetrize: bool = False


@dataclass
class ModelConfig:
    """Which model to build. The model decides the task.

    Ranking models (top-K from implicit feedback, BPR-style training, full-ranking
    evaluation): ``mf``, ``lightgcn``, ``lightgcn_pp``, ``gat`` and ``social_gat``. Rating models (MSE on
    the ratings, RMSE/MAE evaluation; the data need a rating column): ``mf_rating``
    (biased MF) and ``graphrec``.

    Attributes:
        name: ``mf``, ``lightgcn``, ``lightgcn_pp`` (LightGCN++: the attention
            recommender's light layers without attention), ``gat``, ``social_gat``,
            ``attentive_filter`` (GF-CF fitted in closed form, then attention on its
            edges trained; ``dim`` is the size of the attention's features, and it reads
            ``rank``, ``ideal_weight``, ``svd_iters``, ``attention_score``),
            ``mf_rating``, ``graphrec``,
            or a closed-form ranking model (fitted, not trained): ``gfcf``,
            ``linear_filter``, ``ideal_filter``, ``chebyshev``, ``ease``, ``itemknn``,
            ``ials``, or ``blend`` (a weighted blend of closed-form models' scores).
        dim: embedding size.
        layers: propagation layers (``lightgcn``, ``lightgcn_pp``, ``gat``, ``social_gat``).
        fan_out: ``lightgcn``: neighbours sampled per node at each layer in training
            steps (one value per layer; empty = propagate over the whole graph).
        heads: attention heads (``gat``, ``social_gat``).
        scorer: ``dot``, ``cosine``, ``bilinear`` or ``mlp`` (ranking models).
        temperature: τ of the ``cosine`` scorer, whose scores are cosines divided by τ
            (only that scorer reads it); a small τ (0.05–0.2) suits the sampled softmax.
        dropout: dropout of GraphRec's attention and MLPs, attention dropout of the
            attention rankers.
        use_social: let ``social_gat``/``graphrec`` use the social edges; ``false``
            trains the same model without them (the ablation).
        attention_warmup: ``gat``: epochs trained with attention off (β frozen at 0, so
            the model is LightGCN and trains at its speed) before attention is learned.
        attention_score: ``gat``, ``attentive_filter``: what a neighbour is compared with, ``self`` (the node's
            own embedding) or ``neighbourhood`` (the mean of the node's neighbours).
        attention_lr_scale: ``gat``: the attention sharpness β's learning rate as a
            multiple of ``train.lr`` (> 0).
        attention_layer: ``gat``, ``social_gat``: the propagation layer, ``light`` (no
            transform, starts as LightGCN), ``gat``, ``gatv2`` or ``dot``.
        dst_power: ``lightgcn_pp``, ``gat``, ``social_gat``: the destination's degree
            exponent a of the normalisation d_i^-a d_j^-b (LightGCN: 0.5).
        src_power: the same models: the source's exponent b.
        learn_norm: the same models: learn the exponents and the pooling weight.
        normalize: the same models: unit-length inputs to every layer (LightGCN++).
        node_importance: the same models: learn each node's importance as a neighbour,
            a logit added to its edges' attention (with ``lightgcn_pp``: attention without
            the score's dot products).
        pool_weight: the same models: the ego embeddings' share γ of the pooled output,
            γ e0 + (1 - γ) mean(e1..eL) (empty: 1 / (layers + 1), LightGCN's mean).
        rank: ``gfcf``, ``ideal_filter``, ``chebyshev``: singular vectors of the ideal
            low-pass filter (empty = the model's default).
        ideal_weight: ``gfcf``, ``chebyshev``: weight of the ideal low-pass filter.
        svd_iters: ``gfcf``, ``ideal_filter``, ``chebyshev``: block Krylov iterations of
            the truncated SVD.
        order: ``chebyshev``: degree of the Chebyshev polynomial.
        flatness: ``chebyshev``: flatness φ of the plateau response (1 = the linear
            filter, → 0 an ideal step, > 1 flatter around the middle of the spectrum).
        response_sampling: ``chebyshev``: where the plateau is sampled for its
            interpolation, ``nodes`` (default) or ``extrema`` (ChebyCF's reference code,
            which its published numbers need).
        degree_power: ``chebyshev``, ``attentive_filter``: degree normalisation exponent of
            the signal (``attentive_filter``: unset keeps GF-CF's normalisation).
        user_norm: ``gfcf``, ``linear_filter``, ``ideal_filter``, ``chebyshev``: the user
            degree exponent a of the filtered graph D_U^-a R D_I^-b (scaled to unit
            spectral norm; empty: 1/2, the symmetric normalisation).
        item_norm: the same models: the item degree exponent b.
        user_attention: ``attentive_filter``: score by attention of each user over all
            users (cosine of the filter's user features, this the starting sharpness β)
            instead of the filter; empty: the filter.
        reg: ``ease``, ``ials``: the L2 regularisation λ.
        neighbours: ``itemknn``: similar items kept per item.
        similarity: ``itemknn``: ``cosine`` or ``asymmetric``.
        shrink: ``itemknn``: shrinkage added to the similarity's denominator.
        alpha: ``itemknn``: exponent of the asymmetric cosine; ``ials``: confidence
            weight of an observed interaction (c = 1 + alpha).
        iterations: ``ials``: alternating sweeps.
        members: ``blend``: the closed-form models to blend, each a model section of its
            own (``{name: ials, dim: 256}``; no ``grid``), fitted once and shared by every
            grid point.
        weights: ``blend``: one weight per member for its per-user standardised scores
            (see :class:`~graphrec.models.blend.Blend`); chosen on validation with e.g.
            ``grid: {weights: [[1, 0.5], [1, 1], [1, 2]]}``.
        grid: closed-form models: hyper-parameters to choose on validation, as
            ``{key: [values]}`` over this section's keys, e.g. ``{rank: [128, 256],
            ideal_weight: [0.1, 0.3]}``; the best point by ``train.monitor`` is tested
            (refit on training + validation with ``train.refit``). ``attentive_filter``:
            the start's ``rank``, ``ideal_weight`` and ``degree_power`` chosen on
            validation (one SVD serves every point; a rank below ``dim`` uses its rank
            as ``dim``) before training; the run saves the chosen point.
    """

    name: str = "lightgcn"
    dim: int = 64
    layers: int = 3
    fan_out: list[int] | None = None
    heads: int = 1
    scorer: str = "dot"
    temperature: float = 1.0
    dropout: float = 0.0
    use_social: bool = True
    attention_warmup: int = 0
    attention_score: str = "self"
    attention_lr_scale: float = 1.0
    attention_layer: str = "light"
    dst_power: float = 0.5
    src_power: float = 0.5
    learn_norm: bool = False
    normalize: bool = False
    pool_weight: float | None = None
    node_importance: bool = False
    rank: int | None = None
    ideal_weight: float | None = None
    svd_iters: int | None = None
    order: int | None = None
    flatness: float | None = None
    response_sampling: Literal["nodes", "extrema"] | None = None
    degree_power: float | None = None
    user_norm: float | None = None
    item_norm: float | None = None
    user_attention: float | None = None
    reg: float | None = None
    neighbours: int | None = None
    similarity: str | None = None
    shrink: float | None = None
    alpha: float | None = None
    iterations: int | None = None
    members: list[dict[str, Any]] = field(default_factory=list)
    weights: list[float] | None = None
    grid: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class EvalConfig:
    """Evaluation settings.

    Attributes:
        ks: cut-offs for Recall, NDCG, Precision, Hit and MRR.
        memory_budget_mb: memory for the score matrix of one batch of users.
        score_backend: the matrix product behind plain dot-product scores on the CPU,
            ``auto``, ``torch`` or ``numpy`` (see
            :class:`~graphrec.evaluate.Evaluator`): ``auto`` times both once per process
            and keeps the faster; the two agree to float32 rounding. Used by validation,
            model selection and the test.
    """

    ks: list[int] = field(default_factory=lambda: [10, 20])
    memory_budget_mb: float = 512.0
    # The values of graphrec.evaluate.ScoreBackend (not imported: this module loads no torch).
    score_backend: ScoreBackend = "auto"


@dataclass
class RunConfig:
    """A whole run: the four sections."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "eval": EvalConfig}


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Coerce/validate one value against a dataclass field annotation."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {**vars(typing), "Literal": typing.Literal})  # noqa: S307
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {snippet(value)}")
        return {_check_type(k, args[0], f"{where} key"): _check_type(v, args[1], f"{where}.{k}")
                for k, v in value.items()}
    if annotation is Any:
        return value
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {snippet(value)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {snippet(value)}")
        return type(value)(_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)) \
            if origin is list else tuple(_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if annotation is float:
        if isinstance(value, str):
            # YAML 1.1 reads exponents without a dot (3e-4) as strings.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {snippet(value)}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {snippet(value)}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {snippet(value)}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {snippet(value)}")
        return value
    return value


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 80, 80


def snippet(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages.

    A rejected value is quoted, never in full: YAML aliases can make a tiny file expand
    to a huge value, and an error message must stay small. Containers are summarised
    before ``repr`` so that even building the text stays cheap.
    """
    if isinstance(value, (list, tuple, dict)) and len(value) > limit:
        return f"a {type(value).__name__} of {len(value)} entries"
    text = _REPR.repr(value) if isinstance(value, (list, tuple, dict)) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


_snippet = snippet


def did_you_mean(unknown: list[str], known: list[str], prefix: str = "") -> str:
    """`` did you mean 'model.name'?`` for the known names closest to the ``unknown``
    ones (an empty string when none is close), to end an error message with."""
    matches = [m for name in unknown
               for m in difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)]
    if not matches:
        return ""
    return " did you mean " + " or ".join(f"'{prefix}{m}'" for m in dict.fromkeys(matches)) + "?"


def section_from_dict(cls: type, values: dict[str, Any], where: str,
                      section: str | None = None) -> Any:
    """Build one section's dataclass, rejecting unknown keys and wrong types.

    ``section`` (e.g. ``"model"``) names the section in the "did you mean" hint for a
    misspelt key."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {snippet(values)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        hint = did_you_mean(unknown, sorted(fields), f"{section}." if section else "")
        raise ConfigError(f"{where}: unknown key(s) {unknown};{hint} allowed keys: "
                          f"{sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """A :class:`RunConfig` from a parsed YAML mapping."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with sections {sorted(SECTIONS)}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        hint = did_you_mean(unknown, sorted(SECTIONS))
        raise ConfigError(f"{source}: unknown section(s) {unknown};{hint} allowed sections: "
                          f"{sorted(SECTIONS)}")
    parts = {name: section_from_dict(cls, raw.get(name) or {}, f"{source}: {name}", name)
             for name, cls in SECTIONS.items()}
    return RunConfig(**parts)


# Limits that keep a hostile config cheap to refuse: real configs are a few kilobytes,
# a few levels deep, and use few aliases.
MAX_CONFIG_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 100_000


def parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` that refuses deep nesting and alias bombs before building values.

    The document is composed into nodes with a depth limit, its size is counted with
    every alias expanded (memoised, so the count itself stays cheap), and only then are
    Python values constructed.
    """
    loader = _BoundedLoader(text)
    loader.name = source  # for the positions in messages
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_NODES:
            raise ConfigError(f"{source}: the YAML expands to more than {MAX_NODES} values "
                              f"(aliases that repeat aliases); refused")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_bounded(str(exc))}") from exc
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader whose composer refuses nesting deeper than :data:`MAX_DEPTH`."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.name}: nested deeper than {MAX_DEPTH} levels at line "
                                  f"{mark.line + 1}; refused")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(node: yaml.Node, seen: dict[int, int]) -> int:
    """Nodes of ``node`` with aliases expanded (an aliased subtree counts every time)."""
    key = id(node)
    if key not in seen:
        seen[key] = 0  # a recursive alias counts once rather than forever
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(_expanded_size(n, seen) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
        else:
            size = 1
        seen[key] = min(size, MAX_NODES + 1)
    return seen[key]


def _bounded(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def read_config_text(path: str | Path) -> str:
    """The text of a config file, or a :class:`ConfigError` saying why it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected a YAML config file")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size} bytes; a config file is at most "
                              f"{MAX_CONFIG_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); expected a YAML "
                          f"config file") from exc
    if "\x00" in text:
        raise ConfigError(f"{path}: holds NUL bytes; expected a YAML config file, not a binary file")
    return text


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``key=value`` overrides.

    Overrides look like ``train.epochs=5`` or ``data.ratios=[0.7,0.1,0.2]``; values are
    parsed as YAML. Types are checked here; what the values mean is checked by
    :func:`graphrec.config_check.validate_config`.

    Raises:
        ConfigError: naming the file (or override), the section and the key.
    """
    raw: Any = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        raw = parse_yaml(read_config_text(path), source) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping with sections {sorted(SECTIONS)}, "
                              f"got {snippet(raw)}")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise ConfigError(f"override {snippet(item)}: expected section.key=value, e.g. train.epochs=5")
        if not isinstance(raw.get(section, {}), dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        raw.setdefault(section, {})[name] = parse_yaml(value, f"override {snippet(item)}")
    return config_from_dict(raw, source)


#: Width of ``graphrec train --print-config`` output, comments included.
CONFIG_WIDTH = 88

# reST roles (:class:`~a.B`, :func:`f`) and literals (``x``, `x`) of the docstrings.
_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")


def plain_text(doc: str) -> str:
    """A docstring fragment without reST markup: ``:class:`~a.B``` → ``B``,
    ``:func:`f``` → ``f``, double or single backquotes dropped."""
    doc = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), doc)
    return _LITERAL.sub(lambda m: m.group(1) or m.group(2), doc)


def default_config_yaml() -> str:
    """The default configuration as commented YAML: every key with its default, below
    its documentation as plain-text comments, no line longer than :data:`CONFIG_WIDTH`.

    Keys documented together (``user_col``, ``item_col`` ...) share one comment.
    """
    lines = ["# graphrec run configuration; every key is optional."]
    for name, cls in SECTIONS.items():
        lines.append(f"{name}:")
        docs = _attribute_docs(cls)
        previous = None
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if isinstance(default, tuple):
                default = list(default)
            text = yaml.safe_dump({f.name: default}, default_flow_style=True,
                                  width=CONFIG_WIDTH).strip()[1:-1]
            doc = plain_text(docs.get(f.name, ""))
            if doc and doc != previous:
                lines += textwrap.wrap(doc, CONFIG_WIDTH, initial_indent="  # ",
                                       subsequent_indent="  # ", break_on_hyphens=False)
            previous = doc
            lines.append(f"  {text}")
    return "\n".join(lines) + "\n"


def _attribute_docs(cls: type) -> dict[str, str]:
    """Pull ``name: text`` entries out of a dataclass docstring's Attributes block."""
    docs: dict[str, str] = {}
    current: list[str] = []
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        head, colon, text = stripped.partition(": ")
        names = [n.strip() for n in head.split(",")]
        if colon and all(n.isidentifier() for n in names) and line.startswith(" " * 8) and not line.startswith(" " * 12):
            current = names
            for n in names:
                docs[n] = text
        elif current and stripped and line.startswith(" " * 12):
            for n in current:
                docs[n] += " " + stripped
        elif not stripped:
            current = []
    return docs
