"""The controller's policy: an LSTM over the decisions of a search space, trained by PPO.

At every step the LSTM reads an embedding of the previous decision (a learned start token
first) and a per-kind softmax head scores that kind's choices; choices the space marks
invalid get probability zero. All heads are slices of one output layer, so sequences whose
kinds differ step by step (Conn-Search's variable in-degree) still batch together.

Sampling runs in NumPy on a copy of the weights (about 40 us a step: the controller must
not be the bottleneck of a search), the PPO update in TensorFlow; `log_prob` checks that
both agree. Only tf_keras layers are used, so the weights checkpoint like any Keras model.
"""

from __future__ import annotations

import dataclasses
import io
import math
from typing import Optional, Sequence

import numpy as np

from mnas_tf.spaces import CellSpace


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    update_every: int = 4  # one PPO update per K finished children
    hidden: int = 100
    embedding: int = 32
    learning_rate: float = 1e-3
    clip: float = 0.2
    epochs: int = 4
    entropy: float = 0.1  # per decision (the mean entropy of the decisions taken)
    grad_clip: float = 1.0
    baseline_decay: float = 0.95
    # the per-decision prior's logits are prior_scale x its weights: under Adam that is
    # its learning rate relative to the LSTM's (see Policy.prior)
    prior_scale: float = 20.0

    def validate(self) -> None:
        for name in ("update_every", "hidden", "embedding", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"ppo.{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"ppo.learning_rate must be positive, got {self.learning_rate}")
        if not 0 < self.clip < 1:
            raise ValueError(f"ppo.clip must be in (0, 1), got {self.clip}")
        if not self.prior_scale >= 0:
            raise ValueError(f"ppo.prior_scale must be >= 0, got {self.prior_scale}")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(f"ppo.baseline_decay must be in [0, 1), got {self.baseline_decay}")


@dataclasses.dataclass(frozen=True)
class Sample:
    decisions: tuple[int, ...]
    log_prob: float
    entropy: float
    step_log_probs: tuple[float, ...] = ()  # per decision: what the PPO ratios start from


class MovingBaseline:
    """Advantage = reward - an exponential moving average of past rewards, normalised."""

    def __init__(self, decay: float, value: Optional[float] = None):
        self.decay, self.value = decay, value

    def advantages(self, rewards: Sequence[float]) -> np.ndarray:
        rewards = np.asarray(rewards, float)
        if self.value is None:
            self.value = float(rewards.mean())
        advantages = rewards - self.value
        if len(rewards) > 1 and advantages.std() > 1e-12:
            advantages = advantages / (advantages.std() + 1e-8)
        for r in rewards:
            self.value = self.decay * self.value + (1 - self.decay) * float(r)
        return advantages


def _keras_to_block_gates(weights):
    """Reorders the last axis from tf_keras' (i, f, g, o) gates to BlockLSTM's (i, g, f, o)."""
    import tensorflow as tf
    i, f, g, o = tf.split(weights, 4, axis=-1)
    return tf.concat([i, g, f, o], axis=-1)


class Vocabulary:
    """Global indices for (kind, choice): kind k's head is the slice offsets[k]..+len; and
    an index per decision name (`names`) for the per-decision prior."""

    def __init__(self, space: CellSpace):
        self.names = {name: i for i, name in enumerate(space.decision_names())}
        self.kinds = list(space.kinds)
        self.offsets, self.heads, size = {}, {}, 0
        for kind, choices in space.kinds.items():
            self.offsets[kind] = size
            self.heads[kind] = slice(size, size + len(choices))
            size += len(choices)
        self.size = size
        self.start = size  # the start token's embedding row


class Policy:
    """LSTM policy over a space's decisions; PPO updates; NumPy sampling."""

    def __init__(self, space: CellSpace, config: PPOConfig = PPOConfig(), seed: int = 0):
        import tensorflow as tf
        import tf_keras
        config.validate()
        self.space, self.config = space, config
        self.vocab = Vocabulary(space)
        tf_keras.utils.set_random_seed(seed)
        self.embedding = tf_keras.layers.Embedding(self.vocab.size + 1, config.embedding,
                                                   name="controller_embedding")
        self.cell = tf_keras.layers.LSTMCell(config.hidden, name="controller_lstm")
        self.head = tf_keras.layers.Dense(self.vocab.size, name="controller_heads")
        self.embedding.build((None,))
        self.cell.build((None, config.embedding))
        self.head.build((None, config.hidden))
        # A learned logit offset per decision name: every decision can move on its own,
        # while the LSTM carries what depends on earlier decisions. Without it all input
        # decisions share one head and the LSTM state barely tells them apart, so the
        # policy collapses early onto one choice for all of them (benchmarks/controller.py).
        self.prior = tf.Variable(tf.zeros((len(self.vocab.names), self.vocab.size)),
                                 name="controller_decision_prior")
        self.optimizer = tf_keras.optimizers.Adam(config.learning_rate)
        self.variables = (self.embedding.trainable_variables + self.cell.trainable_variables
                          + self.head.trainable_variables + [self.prior])
        self.optimizer.build(self.variables)
        self.version = 0
        self._steps_cache: dict = {}
        self._update_fn = tf.function(self._update_epochs, autograph=False, reduce_retracing=True)
        self._sync_numpy()

    # ----------------------------------------------------------------- numpy side
    def _sync_numpy(self) -> None:
        emb, kernel, recurrent, bias, out_w, out_b, prior = (v.numpy() for v in self.variables)
        prior = prior * self.config.prior_scale
        # Precomputed so a step is one matmul, one tanh and a few vector ops: every token's
        # input projection; the i, f, o gate columns halved, because
        # sigmoid(x) = 0.5 + 0.5 * tanh(x / 2) lets one tanh serve all four gates; each
        # kind's head as its own contiguous matrix.
        hidden = self.config.hidden
        halve = np.full(4 * hidden, 0.5, np.float32)
        halve[2 * hidden:3 * hidden] = 1.0  # g is a plain tanh
        self._np_projected = (emb @ kernel + bias) * halve
        self._np_recurrent = np.ascontiguousarray(recurrent * halve)
        self._np_gate_scale = halve
        self._np_gate_shift = np.where(halve == 0.5, 0.5, 0.0).astype(np.float32)
        self._np_heads = {kind: (np.ascontiguousarray(out_w[:, s]), out_b[s].copy(),
                                 np.ascontiguousarray(prior[:, s]))
                          for kind, s in self.vocab.heads.items()}

    def sample(self, rng: np.random.Generator, greedy: bool = False) -> Sample:
        """Draws one decision sequence; returns it with its log-probability and entropy."""
        n = self.config.hidden
        projected, recurrent, heads = self._np_projected, self._np_recurrent, self._np_heads
        scale, shift = self._np_gate_scale, self._np_gate_shift
        offsets, names = self.vocab.offsets, self.vocab.names
        token = self.vocab.start
        h, c = np.zeros(n, np.float32), np.zeros(n, np.float32)
        log_prob = entropy = 0.0
        steps, step_log_probs = [], []

        def choose(kind, name, valid):
            nonlocal token, h, c, log_prob, entropy
            gates = np.tanh(projected[token] + h @ recurrent) * scale + shift  # i, f, g, o
            c = gates[n:2 * n] * c + gates[:n] * gates[2 * n:3 * n]
            h = gates[3 * n:] * np.tanh(c)
            weight, bias, prior = heads[kind]
            name_index = names[name]
            logits = (h @ weight + bias + prior[name_index]).tolist()
            if len(valid) != len(logits):
                logits = [logits[v] for v in valid]
            # a decision has at most a dozen choices: plain Python beats NumPy calls here
            top = max(logits)
            shifted = [x - top for x in logits]
            weights = [math.exp(x) for x in shifted]
            total = sum(weights)
            if greedy:
                j = weights.index(max(weights))
            else:  # inverse-CDF draw
                u, j, cumulative = rng.random() * total, 0, weights[0]
                while cumulative < u and j < len(weights) - 1:
                    j += 1
                    cumulative += weights[j]
            log_total = math.log(total)
            step_log_probs.append(shifted[j] - log_total)
            log_prob += shifted[j] - log_total
            entropy += log_total - sum(w * s for w, s in zip(weights, shifted)) / total
            token = offsets[kind] + valid[j]
            steps.append((token, offsets[kind], valid, name_index))
            return valid[j]

        decisions = []
        self.space.run(lambda k, name, v: decisions.append(choose(k, name, v)) or decisions[-1])
        decisions = tuple(decisions)
        self._remember_steps(decisions, steps)
        return Sample(decisions, log_prob, entropy, tuple(step_log_probs))

    def _remember_steps(self, decisions, steps) -> None:
        """Sampling already walked the space; the update reuses that walk (bounded cache)."""
        cache = self._steps_cache
        if len(cache) >= 4096:
            cache.pop(next(iter(cache)))
        cache[decisions] = steps

    def _steps(self, decisions) -> list:
        """(action token, kind offset, valid choices, name index) per step of a sequence."""
        key = tuple(int(d) for d in decisions)
        steps = self._steps_cache.get(key)
        if steps is None:  # e.g. after a resume: walk the space again
            offsets, names = self.vocab.offsets, self.vocab.names
            steps = [(offsets[s.kind] + s.choice, offsets[s.kind], s.valid, names[s.name])
                     for s in self.space.decode_steps(key)[1]]
        return steps

    # ----------------------------------------------------------------- tensorflow side
    def _batch(self, sequences: Sequence[Sequence[int]]):
        """Padded tensors: previous tokens, actions (global), validity masks, step masks,
        decision-name indices."""
        walks = [self._steps(seq) for seq in sequences]
        # padded to the longest sequence the space has, so every update reuses one trace
        length = max(len(self.vocab.names), *(len(steps) for steps in walks))
        n, v = len(walks), self.vocab.size
        tokens = np.full((n, length), self.vocab.start, np.int32)
        actions = np.zeros((n, length), np.int32)
        valid = np.zeros((n, length, v), bool)
        live = np.zeros((n, length), np.float32)
        names = np.zeros((n, length), np.int32)
        for b, steps in enumerate(walks):
            for t, (action, offset, choices, name) in enumerate(steps):
                actions[b, t] = action
                names[b, t] = name
                valid[b, t, offset + np.asarray(choices)] = True
            live[b, :len(steps)] = 1.0
            tokens[b, 1:len(steps)] = actions[b, :len(steps) - 1]
            valid[b, len(steps):, 0] = True  # padding: one dummy valid choice
        return tokens, actions, valid, live, names

    def _log_probs(self, tokens, actions, valid, live, names):
        """Sequence log-probs and entropies (sums over the live steps)."""
        import tensorflow as tf
        chosen, entropy = self._step_log_probs(tokens, actions, valid, live, names)
        return tf.reduce_sum(chosen, axis=1), tf.reduce_sum(entropy, axis=1)

    def _step_log_probs(self, tokens, actions, valid, live, names):
        """Per-decision log-probs and entropies, zero on padding. The recurrence is one fused `BlockLSTM` op and
        the heads and the softmax run once over all steps: a PPO update is a handful of
        ops, not hundreds, which is what keeps it cheap on a CPU. BlockLSTM wants the gates
        as (i, g, f, o), tf_keras stores (i, f, g, o). (BlockLSTMV2 takes the Keras order,
        but its registered gradient is wrong in TF 2.20: tests/search/test_policy.py.)"""
        import tensorflow as tf
        cell = self.cell
        n, units = tf.shape(tokens)[0], self.config.hidden
        zeros = tf.zeros((n, units))
        peephole = tf.zeros((units,))
        outputs = tf.raw_ops.BlockLSTM(
            seq_len_max=tf.cast(tf.shape(tokens)[1], tf.int64),
            x=tf.transpose(self.embedding(tokens), [1, 0, 2]), cs_prev=zeros, h_prev=zeros,
            w=_keras_to_block_gates(tf.concat([cell.kernel, cell.recurrent_kernel], axis=0)),
            b=_keras_to_block_gates(cell.bias), wci=peephole, wcf=peephole, wco=peephole,
            forget_bias=0.0, cell_clip=-1.0, use_peephole=False)
        hidden = tf.transpose(outputs[-1], [1, 0, 2])
        prior = self.config.prior_scale * tf.gather(self.prior, names)
        logits = tf.where(valid, self.head(hidden) + prior, -1e9)
        logp = tf.nn.log_softmax(logits)
        chosen = tf.gather(logp, actions, batch_dims=2)
        entropy = -tf.reduce_sum(tf.where(valid, tf.exp(logp) * logp, 0.0), axis=-1)
        return chosen * live, entropy * live

    def log_prob(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Log-probabilities under the TensorFlow graph (equal to sampling's, to 1e-5)."""
        lp, _ = self._log_probs(*self._batch(sequences))
        return lp.numpy()

    def _update_epochs(self, tokens, actions, valid, live, names, old_log_prob, advantage):
        """All PPO epochs of one update in one graph call (one Python->TF round trip).

        The ratios are per decision, each clipped on its own, with the child's advantage
        on every decision it took. A sequence-level ratio multiplies ~50 of them, so it
        leaves the clip range after a tiny step and the update stalls (measured on the toy
        reward: benchmarks/controller.py)."""
        import tensorflow as tf
        cfg = self.config
        advantage = advantage[:, None]
        steps = tf.reduce_sum(live)
        for _ in range(cfg.epochs):
            with tf.GradientTape() as tape:
                lp, ent = self._step_log_probs(tokens, actions, valid, live, names)
                ratio = tf.exp(lp - old_log_prob)
                clipped = tf.clip_by_value(ratio, 1 - cfg.clip, 1 + cfg.clip)
                surrogate = tf.minimum(ratio * advantage, clipped * advantage) * live
                loss = (-tf.reduce_sum(surrogate) - cfg.entropy * tf.reduce_sum(ent)) / steps
            grads = tape.gradient(loss, self.variables)
            grads, _ = tf.clip_by_global_norm(grads, cfg.grad_clip)
            self.optimizer.apply_gradients(zip(grads, self.variables))
        return loss, tf.reduce_sum(ent) / steps

    def update(self, sequences: Sequence[Sequence[int]],
               old_log_probs: Sequence[Sequence[float]], advantages: Sequence[float]) -> dict:
        """PPO epochs on one batch of finished children; `old_log_probs` are each child's
        per-decision log-probs at sampling time. Returns loss and mean per-decision
        entropy."""
        import tensorflow as tf
        tokens, actions, valid, live, names = self._batch(sequences)
        old = np.zeros(live.shape, np.float32)
        for b, lps in enumerate(old_log_probs):
            if len(lps) != int(live[b].sum()):
                raise ValueError(f"child {b}: {len(lps)} step log-probs for "
                                 f"{int(live[b].sum())} decisions")
            old[b, :len(lps)] = lps
        args = [tf.constant(a) for a in (tokens, actions, valid, live, names)] + [
            tf.constant(old), tf.constant(np.asarray(advantages, np.float32))]
        loss, entropy = self._update_fn(*args)
        self.version += 1
        self._sync_numpy()
        return {"loss": float(loss), "entropy": float(entropy), "version": self.version}

    # ----------------------------------------------------------------- persistence
    def state(self) -> bytes:
        """Weights, optimiser slots and version as one .npz blob (for the search database)."""
        buffer = io.BytesIO()
        arrays = {f"w{i}": v.numpy() for i, v in enumerate(self.variables)}
        arrays.update({f"o{i}": v.numpy() for i, v in enumerate(self.optimizer.variables())})
        np.savez(buffer, version=self.version, **arrays)
        return buffer.getvalue()

    def load_state(self, blob: bytes) -> None:
        data = np.load(io.BytesIO(blob))
        for i, v in enumerate(self.variables):
            v.assign(data[f"w{i}"])
        for i, v in enumerate(self.optimizer.variables()):
            v.assign(data[f"o{i}"])
        self.version = int(data["version"])
        self._sync_numpy()

