"""The one search config: a YAML file over the embedded default, validated before anything runs.

A search is a space x a strategy x an evaluator (NNI's model space / exploration strategy /
model evaluator), with an objective (reward, latency, constraint) on top. Every search CLI
loads through `load_config`: the embedded default (configs/search/default.yaml), then an
optional YAML, then `--set KEY=VALUE` overrides (dotted keys). Every key is checked against
the dataclasses below: an unknown key is named with the valid ones, a value of the wrong
type or a combination that cannot work is refused with one line.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from mnas_tf.config_files import ConfigError, read_mapping
from mnas_tf.config_types import check_fields
from mnas_tf.proxy import ProxyConfig
from mnas_tf.spaces import SPACE_LAYOUT
from search.rewards import check_reward
from search.strategies.policy import PPOConfig

SEARCH_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "search"
DEFAULT_CONFIG = SEARCH_CONFIG_DIR / "default.yaml"
STRATEGIES = ("ppo", "evolution", "regularized_evolution", "random")
EVALUATORS = ("proxy", "supernet", "toy")
SUPERNET_OPTIMIZERS = ("adam", "experiment")
# supernet.detector -> the experiment a null supernet.experiment stands for
DETECTOR_EXPERIMENTS = {"retinanet": "msnas_synthetic",
                        "fasterrcnn": "msnas_fasterrcnn_synthetic"}
LATENCY_SOURCES = ("lut", "measure", "none")
CONSTRAINTS = ("none", "madds")
CONSTRAINT_MEASURES = ("encoder_rpn", "encoder_head")
SCORES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# 1: the PPO controller's and the MSNAS evolution's separate configs; 2: one framework
FRAMEWORK_LAYOUT = 2


class SearchConfigError(ConfigError):
    """A search config that cannot run; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """reward = kind(score, latency / target_ms, w); with no latency, the score itself.

    The target is absolute (`target_ms`) or relative to a reference architecture on the
    search's own device (`target: {reference: mnasfpn, ratio: 1.0}`), which travels between
    hosts and phones; a relative target is priced once when the search starts and kept in
    its store. Setting one of the two in a config clears the other."""

    kind: str = "mnas"
    target_ms: Optional[float] = 25.0
    target: Optional[dict] = None
    w: float = -0.3


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
    """Where a child's latency comes from: the look-up table, an end-to-end measurement
    of its TFLite model on a backend, or nowhere (accuracy-only search)."""

    source: str = "lut"
    backend: str = "host"
    experiment: str = "mnasfpn_mobilenetv2_coco"
    input_size: int = 320
    threads: int = 1
    quant: str = "float32"  # price children as the float32 or the full-integer int8 model
    serial: Optional[str] = None
    benchmark_binary: Optional[str] = None
    table_dir: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ConstraintConfig:
    """A hard Select window (MSNAS Algorithm 1): |MAdds - target| <= tolerance x target.

    `measure` is what is counted, at `input_size` (height, width): `encoder_rpn` is the
    paper's Table 1 measure ("FLOPs (Encoder+RPN)", with `experiment`'s RPN head and
    anchors, default 832x1280); `encoder_head` is the encoder plus the one-stage
    super-net's RetinaNet head. `target` is a number of MAdds, the name of a baseline
    experiment whose cost it is (e.g. fasterrcnn_resnet18fpn, measured once by
    `mnas_tf.describe` and stored with the search), or null: the median of 1000 random
    architectures of the space."""

    type: str = "none"
    target: Union[float, str, None] = None
    tolerance: float = 0.05
    measure: str = "encoder_rpn"
    input_size: tuple[int, int] = (832, 1280)
    experiment: str = "msnas_fasterrcnn_coco"


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
    """MSNAS Algorithm 1, over any space: P parents, T iterations, at most M variation
    attempts and R random children per iteration, Top-P survive."""

    population: int = 8
    iterations: int = 6
    max_attempts: int = 60
    random_children: int = 2
    mutation_prob: float = 0.1


@dataclasses.dataclass(frozen=True)
class RegularizedEvolutionConfig:
    """Aging evolution (Real et al. 2019): the population is the last P finished children;
    each child mutates the best of S drawn from it."""

    population: int = 20
    sample_size: int = 5
    mutation_prob: float = 0.1


@dataclasses.dataclass(frozen=True)
class SupernetConfig:
    """The one-shot evaluator (MSNAS): a super-net trained once on search-train by uniform
    single-path sampling; each child inherits its weights, is fine-tuned briefly and scored
    on search-val."""

    # the super-net's detector: "retinanet" (the one-stage stand-in, RetinaNetHead on the
    # groups) or "fasterrcnn" (the paper's two-stage Faster R-CNN, §4.1: RPN, RoI sampler,
    # group RoI aligner at the path's strides, 2-conv + 1-fc box head)
    detector: str = "retinanet"
    # the Model Garden experiment (task, losses, optimizer) of that detector; null: its
    # synthetic twin (msnas_synthetic / msnas_fasterrcnn_synthetic)
    experiment: Optional[str] = None
    input_size: int = 128
    batch_size: int = 8
    eval_batch_size: int = 8
    max_eval_batches: Optional[int] = 2
    train_data: str = "synthetic://search_train"
    val_data: str = "synthetic://search_val"
    val_annotations: Optional[str] = None  # null: val_data's (synthetic://SPLIT)
    num_classes: Optional[int] = None  # null: the experiment's; set by the data section
    head_convs: int = 1  # the dense head's (retinanet) or the RPN head's (fasterrcnn)
    head_filters: int = 32
    steps: int = 1200
    # "adam": constant-LR Adam at learning_rate (fine-tuned on the same Adam);
    # "experiment": the experiment's trainer.optimizer_config, its schedule stretched to
    # `steps` (learning_rate unused), fine-tuned with SGD momentum 0.9 (paper §4.1)
    optimizer: str = "adam"
    learning_rate: float = 0.003
    checkpoint_every: int = 100
    finetune_steps: int = 10
    finetune_learning_rate: float = 0.0003
    finetune_batches: int = 5
    metric: str = "AP50"
    rank_check_architectures: int = 10  # Table 4: ten random samples at the target FLOPs
    rank_check_train_steps: int = 300

    def __post_init__(self):
        if self.experiment is None and self.detector in DETECTOR_EXPERIMENTS:
            object.__setattr__(self, "experiment", DETECTOR_EXPERIMENTS[self.detector])


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """The toy evaluator: `delay_s` of sleep per child stands in for training time;
    `noise` adds seeded Gaussian noise of that std to each child's score (a stand-in for
    a proxy's seed noise, with a known noise-free answer)."""

    delay_s: float = 0.0
    noise: float = 0.0


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Your own COCO dataset: `train: {annotations: FILE, images: DIR}` and optionally
    `val: {...}`; without val, search-val (`val_fraction` of train) is held out of train.
    Prepared to TFRecords once and cached (mnas_tf.data.user); num_classes comes from its
    categories. `data: null` is the embedded synthetic dataset."""

    train: Optional[dict] = None
    val: Optional[dict] = None
    val_fraction: float = 0.2


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    space: str = "mnasfpn"
    space_overrides: dict = dataclasses.field(default_factory=dict)
    strategy: str = "ppo"
    evaluator: str = "proxy"
    seed: int = 0
    budget: Optional[int] = 20  # children; null: until the strategy ends (evolution)
    workers: int = 1
    in_flight: int = 2
    max_retries: int = 2  # a child whose worker died is re-queued this often
    summary_every: int = 5
    top_k: int = 5
    record_madds: bool = False
    # architectures scored once per search beside the children (`search.references`);
    # null: the published cell for the MnasFPN family, none otherwise
    reference_architectures: Optional[tuple[str, ...]] = None
    reward: RewardConfig = RewardConfig()
    latency: LatencyConfig = LatencyConfig()
    constraint: ConstraintConfig = ConstraintConfig()
    ppo: PPOConfig = PPOConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    regularized_evolution: RegularizedEvolutionConfig = RegularizedEvolutionConfig()
    proxy: ProxyConfig = ProxyConfig()
    supernet: SupernetConfig = SupernetConfig()
    toy: ToyConfig = ToyConfig()
    data: Optional[DataConfig] = None  # null: the embedded synthetic dataset

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run_config(self) -> dict:
        """What a resumed search must share with the original (the budget, the number of
        evolution iterations and the outputs may change)."""
        data = self.to_dict()
        # references may be added on resume: each is scored once, whenever it is named
        for key in ("budget", "summary_every", "top_k", "max_retries",
                    "reference_architectures"):
            data.pop(key)
        data["evolution"].pop("iterations")
        for key in ("val_annotations", "num_classes"):
            if data["supernet"].get(key) is None:
                data["supernet"].pop(key)
        if data["supernet"]["optimizer"] == "adam":  # stores from before the key resume
            data["supernet"].pop("optimizer")
        if data["supernet"]["detector"] == "retinanet":  # (and so do these)
            data["supernet"].pop("detector")
        if data["constraint"]["type"] == "none":  # no Select: its measure changes nothing
            for key in ("measure", "input_size", "experiment"):  # (and older stores resume)
                data["constraint"].pop(key)
        if data.get("data") is None:  # stores from before the data section stay resumable
            data.pop("data", None)
        data["space_layout"] = SPACE_LAYOUT  # stores of the old cell layout are refused
        data["framework_layout"] = FRAMEWORK_LAYOUT
        return data


_NESTED = {name: type(getattr(SearchConfig, name)) for name in (
    "reward", "latency", "constraint", "ppo", "evolution", "regularized_evolution", "proxy",
    "supernet", "toy")}
_NESTED["data"] = DataConfig


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise SearchConfigError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SearchConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys are "
                                f"{', '.join(fields)}")
    values = {}
    for key, value in data.items():
        if key == "data" and where == "config" and value is None:
            values[key] = None
        elif key in _NESTED and where == "config":
            values[key] = _build(_NESTED[key], value, key)
        elif key in ("params_override", "lr_boundaries") or (
                where == "constraint" and key == "input_size" and isinstance(value, list)):
            values[key] = tuple(value or ())
        elif key == "reference_architectures" and isinstance(value, list):
            values[key] = tuple(value)  # null stays null: the space's default
        else:
            values[key] = value
    values = check_fields(cls, values, "" if where == "config" else where, SearchConfigError)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise SearchConfigError(f"{where}: {e}") from None


def _merge(base: dict, layer: dict, whole: Sequence[str] = ("space_overrides",)) -> dict:
    """`layer` over `base`, mapping by mapping; the keys in `whole` are replaced whole (a
    config's space settings are the space's, not the default's plus its)."""
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in whole:
            out[key] = _merge(out[key], value, whole)
        else:
            out[key] = value
    return out


def _layer(base: dict, layer: dict) -> dict:
    """One config layer over the ones below: a layer that gives `reward.target_ms` drops
    an inherited relative `reward.target`, and the other way round."""
    out = _merge(base, layer)
    reward = layer.get("reward") if isinstance(layer, dict) else None
    if isinstance(reward, dict) and isinstance(out.get("reward"), dict):
        for key, other in (("target_ms", "target"), ("target", "target_ms")):
            if reward.get(key) is not None and other not in reward:
                out["reward"] = {**out["reward"], other: None}
    return out


def parse_sets(items: Sequence[str]) -> dict:
    """`--set KEY=VALUE` (dotted keys, YAML values, repeatable) as one nested mapping, in
    Model Garden's override syntax (`mnas_tf.overrides`)."""
    from mnas_tf.overrides import parse_override
    out: dict = {}
    for item in items or ():
        key = item.partition("=")[0].strip()
        parsed = parse_override(item) if "=" in item and key else None
        if not isinstance(parsed, dict) or any(not p for p in key.split(".")):
            raise SearchConfigError(f"--set {item!r} is not KEY=VALUE (e.g. --set budget=20, "
                                    f"--set ppo.learning_rate=0.001)")
        out = _merge(out, parsed, whole=())
    return out


def config_path(path: str) -> Path:
    """A YAML path, or the name of one shipped in configs/search/."""
    file = Path(path)
    if not file.is_file() and (SEARCH_CONFIG_DIR / f"{path}.yaml").is_file():
        file = SEARCH_CONFIG_DIR / f"{path}.yaml"
    if not file.is_file():
        shipped = ", ".join(sorted(p.stem for p in SEARCH_CONFIG_DIR.glob("*.yaml")))
        raise SearchConfigError(f"search config {path} does not exist (shipped: {shipped})")
    return file


def load_config(path: Optional[str] = None, overrides: Optional[dict] = None,
                sets: Sequence[str] = ()) -> SearchConfig:
    """The embedded default, then the YAML at `path`, then `overrides`, then `--set`s."""
    data = read_mapping(str(DEFAULT_CONFIG))
    if path:
        try:
            layer = read_mapping(str(config_path(path)))
        except ConfigError as e:
            raise SearchConfigError(str(e)) from None
        data = _layer(data, layer)
    data = _layer(data, overrides or {})
    data = _layer(data, parse_sets(sets))
    config = _build(SearchConfig, data, "config")
    validate(config)
    return config


def _positive(config, keys: Sequence[str], allow_zero: bool = False, where: str = "") -> None:
    for key in keys:
        value = getattr(config, key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            value >= 0 if allow_zero else value > 0)
        if not ok:
            kind = "a non-negative" if allow_zero else "a positive"
            noun = "integer" if isinstance(value, int) else "number"
            raise SearchConfigError(f"{where}{key} must be {kind} {noun}, got {value!r}")


def _choice(value: str, valid: Sequence[str], key: str) -> None:
    if value not in valid:
        raise SearchConfigError(f"{key} {value!r} is unknown; valid: {', '.join(valid)}")


def validate(config: SearchConfig) -> None:
    """Refuses every setting and combination that cannot run, with one line."""
    from search.spaces import get_space
    _choice(config.strategy, STRATEGIES, "strategy")
    _choice(config.evaluator, EVALUATORS, "evaluator")
    _positive(config, ("workers", "in_flight", "summary_every", "top_k"))
    _positive(config, ("max_retries",), allow_zero=True)
    if config.budget is None:
        if config.strategy != "evolution":
            raise SearchConfigError(f"budget: null (until the strategy ends) needs strategy "
                                    f"evolution; strategy {config.strategy} needs a positive "
                                    f"budget")
    else:
        _positive(config, ("budget",))
    if config.in_flight < config.workers:
        raise SearchConfigError(f"in_flight ({config.in_flight}) must be >= workers "
                                f"({config.workers}) or workers sit idle")
    _choice(config.latency.source, LATENCY_SOURCES, "latency.source")
    _choice(config.latency.quant, ("float32", "int8"), "latency.quant")
    _choice(config.latency.backend, ("host", "android"), "latency.backend")
    if config.latency.input_size <= 0 or config.latency.input_size % 64:
        raise SearchConfigError(f"latency.input_size must be a positive multiple of 64, got "
                                f"{config.latency.input_size}")
    _choice(config.constraint.type, CONSTRAINTS, "constraint.type")
    _validate_constraint(config.constraint)
    if (config.evaluator == "supernet" and config.constraint.type == "madds"
            and config.constraint.measure == "encoder_head"
            and config.supernet.detector != "retinanet"):
        raise SearchConfigError("constraint.measure encoder_head counts the one-stage "
                                "super-net's RetinaNet head; with supernet.detector "
                                f"{config.supernet.detector} use encoder_rpn")
    _validate_strategies(config)
    _validate_supernet(config.supernet)
    if config.toy.delay_s < 0:
        raise SearchConfigError(f"toy.delay_s must be >= 0, got {config.toy.delay_s}")
    if config.toy.noise < 0:
        raise SearchConfigError(f"toy.noise must be >= 0, got {config.toy.noise}")
    _validate_target(config)
    _validate_data(config.data)
    try:
        check_reward(config.reward.kind, config.reward.target_ms, config.reward.w)
        config.ppo.validate()
        if config.evaluator == "proxy":
            config.proxy.validate()
        space = get_space(config.space, config.space_overrides)
    except ValueError as e:
        raise SearchConfigError(str(e)) from None
    _validate_combination(config, space)
    from search.references import check_references
    try:
        check_references(config, space)
    except ValueError as e:
        raise SearchConfigError(str(e)) from None
    checkpoint = config.proxy.init_checkpoint
    if config.evaluator == "proxy" and checkpoint and not _is_checkpoint(checkpoint):
        raise SearchConfigError(
            f"proxy.init_checkpoint {checkpoint}: no TF checkpoint there (need PREFIX.index "
            f"or a directory with a 'checkpoint' file, written by "
            f"tf.train.Checkpoint(backbone=model.backbone)); or drop the key and set "
            f"proxy.warm_start_steps to let the search make one")


def _validate_constraint(c: ConstraintConfig) -> None:
    """The Select window's settings; experiment names are checked (which loads Model
    Garden's registry) only where the constraint is on."""
    _choice(c.measure, CONSTRAINT_MEASURES, "constraint.measure")
    if isinstance(c.target, str) and c.type == "madds":
        from mnas_tf.experiment import registered_experiments
        if c.measure != "encoder_rpn":
            raise SearchConfigError(f"constraint.target {c.target!r} names a baseline, whose "
                                    f"cost is an encoder_rpn measure; set constraint.measure: "
                                    f"encoder_rpn or give the target in MAdds")
        if c.target not in registered_experiments():
            raise SearchConfigError(f"constraint.target {c.target!r} is neither a number of "
                                    f"MAdds nor a registered experiment (e.g. "
                                    f"fasterrcnn_resnet18fpn)")
    elif c.target is not None and not isinstance(c.target, str) and not c.target > 0:
        raise SearchConfigError(f"constraint.target must be a positive number of MAdds, a "
                                f"baseline experiment or null, got {c.target!r}")
    _positive(c, ("tolerance",), allow_zero=True, where="constraint.")
    if len(c.input_size) != 2 or not all(v > 0 for v in c.input_size):
        raise SearchConfigError(f"constraint.input_size must be [height, width] in pixels, "
                                f"got {list(c.input_size)}")
    if c.type != "madds" or c.measure != "encoder_rpn":
        return
    from mnas_tf.experiment import registered_experiments
    if c.experiment not in registered_experiments():
        raise SearchConfigError(f"constraint.experiment {c.experiment!r} is not a registered "
                                f"experiment (its RPN head and anchors give the encoder_rpn "
                                f"measure; e.g. msnas_fasterrcnn_coco)")


def _validate_target(config: SearchConfig) -> None:
    """reward.target_ms, or reward.target {reference, ratio} priced on the device."""
    r = config.reward
    if r.target is None:
        if r.target_ms is None:
            raise SearchConfigError("reward: give target_ms (ms) or target: {reference: "
                                    "ARCH, ratio: R} (relative to ARCH on this device)")
        return
    if r.target_ms is not None:
        raise SearchConfigError("reward: give target_ms or target, not both (set the other "
                                "to null)")
    unknown = sorted(set(r.target) - {"reference", "ratio"})
    if unknown:
        raise SearchConfigError(f"reward.target: unknown key(s) {', '.join(unknown)}; valid "
                                f"keys are reference, ratio")
    reference, ratio = r.target.get("reference"), r.target.get("ratio", 1.0)
    if not isinstance(reference, str) or not reference:
        raise SearchConfigError(f"reward.target.reference must be an architecture name or "
                                f"file (e.g. mnasfpn), got {reference!r}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
        raise SearchConfigError(f"reward.target.ratio must be a positive number, got "
                                f"{ratio!r}")
    from mnas_tf.arch import ArchitectureError, load_architecture
    try:
        load_architecture(reference)
    except (ArchitectureError, OSError, ValueError) as e:
        raise SearchConfigError(f"reward.target.reference: {e}") from None


def _validate_data(d: Optional[DataConfig]) -> None:
    if d is None:
        return
    for part in ("train", "val"):
        value = getattr(d, part)
        if value is None and part == "val":
            continue
        if not isinstance(value, dict):
            raise SearchConfigError(f"data.{part} must be {{annotations: FILE, images: DIR}}, "
                                    f"got {value!r}")
        unknown = sorted(set(value) - {"annotations", "images"})
        if unknown:
            raise SearchConfigError(f"data.{part}: unknown key(s) {', '.join(unknown)}; valid "
                                    f"keys are annotations, images")
        for key in ("annotations", "images"):
            if not isinstance(value.get(key), str) or not value.get(key):
                raise SearchConfigError(f"data.{part}.{key} must be a path, got "
                                        f"{value.get(key)!r}")
    if isinstance(d.val_fraction, bool) or not isinstance(d.val_fraction, (int, float)) \
            or not 0 < d.val_fraction < 1:
        raise SearchConfigError(f"data.val_fraction must be in (0, 1), got {d.val_fraction!r}")


def _validate_strategies(config: SearchConfig) -> None:
    e, r = config.evolution, config.regularized_evolution
    _positive(e, ("population", "iterations", "max_attempts"), where="evolution.")
    _positive(e, ("random_children",), allow_zero=True, where="evolution.")
    _positive(r, ("population", "sample_size"), where="regularized_evolution.")
    for section, prob in (("evolution", e.mutation_prob),
                          ("regularized_evolution", r.mutation_prob)):
        if not 0 < prob <= 1:
            raise SearchConfigError(f"{section}.mutation_prob must be in (0, 1], got {prob}")
    if r.sample_size > r.population:
        raise SearchConfigError(f"regularized_evolution.sample_size ({r.sample_size}) must be "
                                f"<= regularized_evolution.population ({r.population})")


def _validate_supernet(s: SupernetConfig) -> None:
    _positive(s, ("input_size", "batch_size", "eval_batch_size", "head_convs", "head_filters",
                  "learning_rate", "checkpoint_every", "finetune_learning_rate",
                  "finetune_batches", "rank_check_architectures", "rank_check_train_steps"),
              where="supernet.")
    _positive(s, ("steps", "finetune_steps"), allow_zero=True, where="supernet.")
    if s.max_eval_batches is not None:
        _positive(s, ("max_eval_batches",), where="supernet.")
    if s.input_size % 64:
        raise SearchConfigError(f"supernet.input_size must be a multiple of 64 (the coarsest "
                                f"stride), got {s.input_size}")
    _choice(s.metric, SCORES, "supernet.metric")
    _choice(s.optimizer, SUPERNET_OPTIMIZERS, "supernet.optimizer")
    _choice(s.detector, tuple(DETECTOR_EXPERIMENTS), "supernet.detector")


def _validate_combination(config: SearchConfig, space) -> None:
    """Evaluators, latency sources and constraints that a space cannot use."""
    cell = getattr(space, "cell_space", None) is not None
    if config.evaluator == "proxy" and not cell:
        raise SearchConfigError(f"evaluator proxy trains MnasFPN-family heads; space "
                                f"{config.space} needs evaluator supernet (or toy)")
    if config.evaluator == "supernet" and cell:
        raise SearchConfigError("evaluator supernet exists for space msnas only; a MnasFPN "
                                "super-net is not built yet: use evaluator proxy (or toy)")
    if config.latency.source != "none" and not cell:
        raise SearchConfigError(f"latency.source {config.latency.source}: no latency table "
                                f"exists for space {config.space}; set latency.source none")
    if config.constraint.type == "madds" and cell:
        raise SearchConfigError(f"constraint.type madds needs analytic MAdds, which space "
                                f"{config.space} lacks; use constraint.type none (the reward "
                                f"already trades latency)")


def _is_checkpoint(path: str) -> bool:
    return os.path.exists(path + ".index") or os.path.isfile(os.path.join(path, "checkpoint"))


def default_out_dir(config: SearchConfig) -> str:
    return os.path.join("runs", f"search_{config.space}_{config.strategy}_seed{config.seed}")
