"""The proxy task of the search: train a child head briefly, score its mAP.

`train_and_evaluate(arch, config)` trains the child for `train_steps` on search-train and
scores COCO mAP on search-val with Model Garden's task (parser, anchors, focal loss,
detection generator, COCO evaluator). What children share is paid once per process by a
`ProxyEngine`: config parsing, the training input pipeline (a fresh, seeded iterator per
child, so every child sees the same batches), the
parsed validation batches (kept in memory) and the COCO evaluator. A child pays only its
model build and graph trace, and both are measured and returned.

Failures never raise: a spec that does not build, a NaN loss or an out-of-memory error
gives status FAILED with the reason, so a search can record it and move on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any, Optional, Sequence

from mnas_tf import warm_start
from mnas_tf.proxy_result import FAILED, METRICS, OK, ProxyResult  # noqa: F401  re-exported


LR_SCHEDULES = ("cosine", "stepwise")


def _schedule(cfg: "ProxyConfig") -> dict:
    """Model Garden optimizer_config for the proxy's learning-rate schedule."""
    if cfg.lr_schedule == "stepwise":
        bounds = [int(b) for b in cfg.lr_boundaries]
        return {"learning_rate": {"type": "stepwise", "stepwise": {
                    "boundaries": bounds,
                    "values": [cfg.learning_rate * 0.1 ** i for i in range(len(bounds) + 1)]}},
                "warmup": {"type": "linear", "linear": {"warmup_steps": cfg.warmup_steps,
                                                        "warmup_learning_rate": 0.0}}}
    return {"learning_rate": {"cosine": {"initial_learning_rate": cfg.learning_rate,
                                         "decay_steps": cfg.train_steps}},
            "warmup": {"linear": {"warmup_steps": cfg.warmup_steps,
                                  "warmup_learning_rate": cfg.learning_rate / 10}}}


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    """How a child is trained and scored. Data paths may be `synthetic://SPLIT`."""

    experiment: str = "mnasfpn_synthetic"
    train_data: str = "synthetic://search_train"
    val_data: str = "synthetic://search_val"
    val_annotations: str = "synthetic://search_val"
    train_steps: int = 150
    batch_size: int = 8
    input_size: int = 320
    learning_rate: float = 0.003  # for the experiment's optimizer (Adam in mnasfpn_synthetic)
    warmup_steps: int = 20
    # "cosine" (to 0 over train_steps, warm-up from learning_rate / 10), or "stepwise":
    # the paper's proxy schedule, linear warm-up from 0, then x0.1 at each of lr_boundaries
    lr_schedule: str = "cosine"
    lr_boundaries: tuple = ()
    steps_per_check: int = 25
    eval_batch_size: int = 16
    max_eval_batches: Optional[int] = None
    params_override: tuple = ()
    # Warm start (the paper warm-starts MobileNetV2 from ImageNet): a backbone checkpoint
    # every child starts from (`tf.train.Checkpoint(backbone=...)`, Model Garden's
    # init_checkpoint_modules='backbone'), optionally frozen so only the head trains.
    init_checkpoint: Optional[str] = None
    warm_start_steps: int = 0  # > 0 and no init_checkpoint: make one (mnas_tf.warm_start)
    warm_start_seed: int = 0
    # 0: the warm start trains the published MnasFPN (which may favour that cell over the
    # ones a search proposes); N > 0: N heads sampled from `warm_start_space` take turns,
    # warm_start_steps / N steps each, on one carried-over backbone (neutral to the cell).
    warm_start_heads: int = 0
    warm_start_space: str = "mnasfpn"
    freeze_backbone: bool = False
    metric: str = "AP"  # the COCO metric a child is scored by (ProxyResult.score)
    # Detections below this score are dropped before NMS at evaluation. None keeps the
    # experiment's (0.05); briefly trained heads are under-confident, and 1e-3 (the usual
    # COCO-evaluation setting) lets their ranking still be scored.
    eval_score_threshold: Optional[float] = None
    # Every child trains on the same batches (order and augmentation from `data_seed`) and
    # initialises from its own seed, so its score depends on nothing else: not on the
    # children a worker trained before it, nor on which worker trains it.
    data_seed: int = 0

    def validate(self) -> None:
        for name in ("train_steps", "batch_size", "input_size", "steps_per_check",
                     "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"proxy config: {name} must be positive, got "
                                 f"{getattr(self, name)}")
        if self.input_size % 64:
            raise ValueError(f"proxy config: input_size {self.input_size} must be a multiple "
                             f"of 64")
        if not self.learning_rate > 0:
            raise ValueError(f"proxy config: learning_rate must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"proxy config: lr_schedule {self.lr_schedule!r} is unknown; "
                             f"valid: {', '.join(LR_SCHEDULES)}")
        bounds = list(self.lr_boundaries)
        if self.lr_schedule == "stepwise" and (not bounds or bounds != sorted(set(bounds))
                                               or not 0 < bounds[0] <= bounds[-1] < self.train_steps):
            raise ValueError(f"proxy config: lr_schedule stepwise needs lr_boundaries, "
                             f"increasing steps inside 1..train_steps-1, got {bounds}")
        if self.metric not in METRICS:
            raise ValueError(f"proxy config: metric {self.metric!r} is unknown; valid: "
                             f"{', '.join(METRICS)}")
        if self.warm_start_steps < 0:
            raise ValueError(f"proxy config: warm_start_steps must be >= 0, got "
                             f"{self.warm_start_steps}")
        if self.warm_start_heads < 0 or (self.warm_start_heads
                                         and self.warm_start_heads > self.warm_start_steps):
            raise ValueError(f"proxy config: warm_start_heads must be in 0..warm_start_steps "
                             f"({self.warm_start_steps}), got {self.warm_start_heads}")
        from mnas_tf.spaces import SPACES
        if self.warm_start_space not in SPACES:
            raise ValueError(f"proxy config: warm_start_space {self.warm_start_space!r} is "
                             f"unknown; valid: {', '.join(SPACES)}")
        if self.freeze_backbone and not (self.init_checkpoint or self.warm_start_steps):
            raise ValueError("proxy config: freeze_backbone needs init_checkpoint or "
                             "warm_start_steps > 0 (a frozen random backbone cannot learn)")
        if self.eval_score_threshold is not None and not 0 <= self.eval_score_threshold < 1:
            raise ValueError(f"proxy config: eval_score_threshold must be in [0, 1), got "
                             f"{self.eval_score_threshold}")

    def data_key(self) -> tuple:
        """What the shared input pipelines depend on."""
        return (self.experiment, self.train_data, self.val_data, self.val_annotations,
                self.batch_size, self.input_size, self.eval_batch_size,
                self.max_eval_batches, self.data_seed, json.dumps(self.params_override, sort_keys=True,
                                                  default=str))


class ProxyEngine:
    """Shared state of many proxy runs in one process (data, evaluator, config)."""

    def __init__(self, config: ProxyConfig = ProxyConfig(), build_train_inputs=None):
        """`build_train_inputs(task, data_config)`: a dataset in place of the task's own."""
        config.validate()
        start = time.perf_counter()
        from official.core import task_factory

        from mnas_tf.data_paths import resolve_data_paths
        from mnas_tf.experiment import load_experiment

        self.config = config
        size = config.input_size
        overrides = [{
            "task": {
                "model": {"input_size": [size, size, 3]},
                "annotation_file": config.val_annotations,
                "train_data": {"input_path": config.train_data,
                               "global_batch_size": config.batch_size,
                               "seed": config.data_seed, "deterministic": True},
                "validation_data": {"input_path": config.val_data,
                                    "global_batch_size": config.eval_batch_size},
            },
        }, *config.params_override]
        self.params = resolve_data_paths(load_experiment(config.experiment, overrides),
                                         progress=False)
        self.task = task_factory.get_task(self.params.task)
        self._build_train = build_train_inputs or (lambda task, data: task.build_inputs(data))
        self._shared_iterator = None
        val = self.task.build_inputs(self.params.task.validation_data)
        if config.max_eval_batches:
            val = val.take(config.max_eval_batches)
        self._val_batches = list(val)
        self.task.build_metrics(training=False)  # creates the COCO evaluator once
        self.startup_s = time.perf_counter() - start

    def train_iterator(self):
        """A fresh training iterator: the same batches, in the same order and with the same
        augmentation, every time (seeded by `data_seed`)."""
        import tensorflow as tf
        tf.random.set_seed(self.config.data_seed)
        dataset = self._build_train(self.task, self.params.task.train_data)
        # The parser's augmentation draws from stateful RNGs; parallel map calls consume
        # them in a thread-dependent order, so batches would differ run to run. One thread
        # for this pipeline makes the order fixed. (TensorFlow's op determinism would too,
        # but its tf.data rewrite fails on Model Garden's parser in TF 2.20.)
        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        return iter(dataset.with_options(options))

    @property
    def _train_iterator(self):
        """One live iterator for work that wants fresh batches throughout (a super-net)."""
        if self._shared_iterator is None:
            self._shared_iterator = self.train_iterator()
        return self._shared_iterator

    def child_params(self, architecture: Any, cfg: Optional[ProxyConfig] = None):
        """The engine's experiment with the child's architecture as the decoder."""
        from mnas_tf.arch import MnasFPNSpec, load_architecture
        spec = architecture if isinstance(architecture, MnasFPNSpec) else (
            MnasFPNSpec.from_dict(architecture) if isinstance(architecture, dict)
            else load_architecture(architecture))
        cfg = cfg or self.config
        model = {"decoder": {"mnasfpn": {"architecture": spec.to_json()}}}
        if cfg.eval_score_threshold is not None:
            model["detection_generator"] = {
                "pre_nms_score_threshold": cfg.eval_score_threshold}
        return self.params.replace(
            task={"model": model,
                  "init_checkpoint": cfg.init_checkpoint,
                  "init_checkpoint_modules": "backbone",
                  "freeze_backbone": cfg.freeze_backbone},
            trainer={"optimizer_config": _schedule(cfg)})

    def run(self, architecture: Any, seed: int = 0, on_trained=None,
            config: Optional[ProxyConfig] = None, on_chunk=None) -> ProxyResult:
        """Trains and scores one child; never raises for child-specific failures.

        `config` replaces the engine's schedule for this run (same data); `on_chunk(done,
        total, loss)` reports progress; `on_trained(model)` runs after training, before
        scoring (e.g. to save weights)."""
        import tensorflow as tf
        cfg = self.with_warm_start(config or self.config)
        start = time.perf_counter()
        timings: dict = {}
        steps_done = 0
        loss = None
        stage = "build"
        try:
            import tf_keras
            from official.core import task_factory

            tf_keras.backend.clear_session()
            iterator = self.train_iterator()  # before the child's seed: data seeds its own
            tf_keras.utils.set_random_seed(seed)
            params = self.child_params(architecture, cfg)
            task = task_factory.get_task(params.task)
            model = task.build_model()
            task.initialize(model)  # the warm-start backbone, if the config names one
            optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
            metrics = task.build_metrics(training=True)
            timings["build_s"] = time.perf_counter() - start

            stage = "training"
            train_chunk = make_train_loop(task, model, optimizer, metrics)
            chunk = cfg.steps_per_check
            t0 = time.perf_counter()
            while steps_done < cfg.train_steps:
                n = min(chunk, cfg.train_steps - steps_done)
                loss = float(train_chunk(iterator, tf.constant(n)))
                if steps_done == 0:
                    timings["first_chunk_s"] = time.perf_counter() - t0
                steps_done += n
                if on_chunk is not None:
                    on_chunk(steps_done, cfg.train_steps, loss)
                if not math.isfinite(loss):
                    return self._failed(f"loss is {loss} at step {steps_done}", start,
                                        steps_done, loss, timings)
            timings["train_s"] = time.perf_counter() - t0
            if on_trained is not None:
                on_trained(model)
            stage = "evaluation"
            t1 = time.perf_counter()
            result_metrics = self._evaluate(model)
            timings["eval_s"] = time.perf_counter() - t1
        except tf.errors.ResourceExhaustedError as e:
            return self._failed(f"out of memory: {_first_line(e)}", start, steps_done, loss,
                                timings)
        except (ValueError, TypeError, KeyError, tf.errors.InvalidArgumentError) as e:
            return self._failed(f"{stage} failed: {type(e).__name__}: {_first_line(e)}", start,
                                steps_done, loss, timings)
        return ProxyResult(OK, result_metrics, time.perf_counter() - start, steps_done,
                           final_loss=loss, timings=timings, metric=cfg.metric)

    def with_warm_start(self, cfg: ProxyConfig) -> ProxyConfig:
        """`cfg` with init_checkpoint set to the warm-start backbone when it asks for one
        (trained and cached on first use: mnas_tf.warm_start)."""
        if cfg.init_checkpoint or not cfg.warm_start_steps:
            return cfg
        prefix = warm_start.backbone_checkpoint(self, cfg)  # a manifest read once cached
        return dataclasses.replace(cfg, init_checkpoint=prefix)

    def _evaluate(self, model) -> dict:
        import tensorflow as tf
        task = self.task

        eval_step = tf.function(_PerModelStep(task.validation_step, model), autograph=False)

        state = None
        for batch in self._val_batches:
            state = task.aggregate_logs(state, eval_step(batch))
        logs = task.reduce_aggregated_logs(state)
        return {k: float(v) for k, v in logs.items()
                if k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}

    @staticmethod
    def _failed(reason, start, steps, loss, timings) -> ProxyResult:
        return ProxyResult(FAILED, {}, time.perf_counter() - start, steps, reason=reason,
                           final_loss=loss, timings=timings)


class _PerModelStep:
    """`step(inputs, model)` bound to one model, as a callable object rather than a closure.

    tf.function's frequent-retracing warning counts traces per code object, so a closure
    re-created per child (each child is a new model and must be traced) warns after five
    children; an object is counted on its own."""

    def __init__(self, step, model):
        self.step, self.model = step, model

    def __call__(self, inputs):
        return self.step(inputs, self.model)


def create_optimizer_slots(optimizer, variables) -> None:
    """Creates momentum slots now: created inside the first trace, they force a retrace."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    if hasattr(inner, "_create_all_weights"):  # tf_keras legacy OptimizerV2
        inner._create_all_weights(variables)  # pylint: disable=protected-access
    elif hasattr(inner, "build"):
        inner.build(variables)


def make_train_loop(task, model, optimizer, metrics):
    """A compiled loop running `steps` Model Garden train steps on an iterator.

    One trace per model serves every chunk length (the step count is a tensor), and the
    loop stays in the graph, so Python runs once per chunk rather than once per step.
    Optimizer slots are created before tracing; otherwise TF traces the step twice.
    """
    import tensorflow as tf

    create_optimizer_slots(optimizer, model.trainable_variables)
    # Without autograph: Model Garden's step has no tensor-dependent Python control flow,
    # and converting it costs ~20% of the trace.
    return tf.function(_TrainLoop(task, model, optimizer, metrics), autograph=False)


class _TrainLoop:
    """`steps` train steps in a graph while-loop (a callable object: see _PerModelStep)."""

    def __init__(self, task, model, optimizer, metrics):
        self.task, self.model, self.optimizer, self.metrics = task, model, optimizer, metrics

    def __call__(self, iterator, steps):
        import tensorflow as tf

        def body(i, _):
            logs = self.task.train_step(next(iterator), self.model, self.optimizer,
                                        self.metrics)
            return i + 1, logs["loss"]
        _, loss = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), tf.constant(0.0)))
        return loss


def _first_line(error: BaseException) -> str:
    """The informative line of an error (TF's graph errors start with 'in user code:')."""
    lines = [l.strip() for l in str(error).strip().splitlines() if l.strip()]
    lines = [l for l in lines if not l.startswith(("in user code", "File ", "Traceback"))]
    return (lines[-1] if lines else type(error).__name__)[:300]


_ENGINES: dict = {}


def train_and_evaluate(architecture: Any, config: ProxyConfig = ProxyConfig(),
                       seed: int = 0) -> ProxyResult:
    """Proxy-trains one architecture; engines are cached per data configuration."""
    key = config.data_key()
    if key not in _ENGINES:
        _ENGINES.clear()  # one live pipeline at a time
        _ENGINES[key] = ProxyEngine(config)
    engine = _ENGINES[key]
    engine.config = config  # same data, maybe another schedule: pipelines are reused
    return engine.run(architecture, seed=seed)
