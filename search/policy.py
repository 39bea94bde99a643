"""The controller's policy: an LSTM over the decisions of a search space, trained by PPO.

At every step the LSTM reads an embedding of the previous decision (a learned start token
first) and a per-kind softmax head scores that kind's choices; choices the space marks
invalid get probability zero. All heads are slices of one output layer, so sequences whose
kinds differ step by step (Conn-Search's variable in-degree) still batch together.

Sampling runs in NumPy on a copy of the weights (about 10 us a step: the controller must
not be the bottleneck of a search), the PPO update in TensorFlow; `log_prob` checks that
both agree. Only tf_keras layers are used, so the weights checkpoint like any Keras model.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Optional, Sequence

import numpy as np

from search.space import CellSpace


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    hidden: int = 100
    embedding: int = 32
    learning_rate: float = 3.5e-4
    clip: float = 0.2
    epochs: int = 4
    entropy: float = 1e-3
    grad_clip: float = 1.0
    baseline_decay: float = 0.95

    def validate(self) -> None:
        for name in ("hidden", "embedding", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"ppo.{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"ppo.learning_rate must be positive, got {self.learning_rate}")
        if not 0 < self.clip < 1:
            raise ValueError(f"ppo.clip must be in (0, 1), got {self.clip}")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(f"ppo.baseline_decay must be in [0, 1), got {self.baseline_decay}")


@dataclasses.dataclass(frozen=True)
class Sample:
    decisions: tuple[int, ...]
    log_prob: float
    entropy: float


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


class Vocabulary:
    """Global indices for (kind, choice): kind k's head is the slice offsets[k]..+len."""

    def __init__(self, space: CellSpace):
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
        self.optimizer = tf_keras.optimizers.Adam(config.learning_rate)
        self.variables = (self.embedding.trainable_variables + self.cell.trainable_variables
                          + self.head.trainable_variables)
        self.optimizer.build(self.variables)
        self.version = 0
        self._update_fn = tf.function(self._update_step, autograph=False, reduce_retracing=True)
        self._sync_numpy()

    # ----------------------------------------------------------------- numpy side
    def _sync_numpy(self) -> None:
        emb, kernel, recurrent, bias, out_w, out_b = (v.numpy().astype(np.float64)
                                                      for v in self.variables)
        # Every token's input projection precomputed: a step is one small matmul.
        self._np = (emb @ kernel + bias, recurrent, out_w, out_b)

    def _np_step(self, token: int, h, c, head: slice):
        projected, recurrent, out_w, out_b = self._np
        z = projected[token] + h @ recurrent  # gates i, f, g, o as tf_keras orders them
        n = len(h)
        gate = 1.0 / (1.0 + np.exp(-z))
        c = gate[n:2 * n] * c + gate[:n] * np.tanh(z[2 * n:3 * n])
        h = gate[3 * n:] * np.tanh(c)
        return h @ out_w[:, head] + out_b[head], h, c

    def sample(self, rng: np.random.Generator, greedy: bool = False) -> Sample:
        """Draws one decision sequence; returns it with its log-probability and entropy."""
        hidden = self.config.hidden
        state = {"token": self.vocab.start, "h": np.zeros(hidden), "c": np.zeros(hidden),
                 "log_prob": 0.0, "entropy": 0.0}

        def choose(kind, name, valid):
            offset = self.vocab.offsets[kind]
            logits, state["h"], state["c"] = self._np_step(state["token"], state["h"],
                                                           state["c"], self.vocab.heads[kind])
            scores = logits[np.asarray(valid)]
            p = np.exp(scores - scores.max())
            p /= p.sum()
            # inverse-CDF draw: Generator.choice(p=...) costs 10x more per call
            j = int(np.argmax(p)) if greedy else \
                min(int(np.searchsorted(np.cumsum(p), rng.random())), len(p) - 1)
            state["log_prob"] += float(np.log(p[j]))
            state["entropy"] -= float((p * np.log(np.maximum(p, 1e-30))).sum())
            state["token"] = offset + valid[j]
            return valid[j]

        decisions: list[int] = []
        self.space.run(lambda k, n, v: decisions.append(choose(k, n, v)) or decisions[-1])
        return Sample(tuple(decisions), state["log_prob"], state["entropy"])

    # ----------------------------------------------------------------- tensorflow side
    def _batch(self, sequences: Sequence[Sequence[int]]):
        """Padded tensors: previous tokens, actions (global), validity masks, step masks."""
        decoded = [self.space.decode_steps(seq)[1] for seq in sequences]
        length = max(len(steps) for steps in decoded)
        n, v = len(decoded), self.vocab.size
        tokens = np.full((n, length), self.vocab.start, np.int32)
        actions = np.zeros((n, length), np.int32)
        valid = np.zeros((n, length, v), bool)
        live = np.zeros((n, length), np.float32)
        for b, steps in enumerate(decoded):
            for t, step in enumerate(steps):
                offset = self.vocab.offsets[step.kind]
                actions[b, t] = offset + step.choice
                valid[b, t, offset + np.asarray(step.valid)] = True
                live[b, t] = 1.0
                if t + 1 < length:
                    tokens[b, t + 1] = actions[b, t]
        for b in range(n):  # padding steps get one dummy valid choice so softmax is defined
            valid[b, live[b] == 0, 0] = True
        return tokens, actions, valid, live

    def _log_probs(self, tokens, actions, valid, live):
        """Sequence log-probs and entropies. Only the recurrence runs step by step; the
        input projection, the heads and the softmax run once over all steps (few ops per
        step keeps a PPO update cheap on a CPU)."""
        import tensorflow as tf
        cell = self.cell
        n, steps, units = tf.shape(tokens)[0], tokens.shape[1], self.config.hidden
        projected = tf.einsum("bte,eg->btg", self.embedding(tokens), cell.kernel) + cell.bias
        h = tf.zeros((n, units))
        c = tf.zeros((n, units))
        outputs = []
        for t in range(steps):  # gates i, f, g, o as tf_keras' LSTMCell orders them
            z = projected[:, t] + tf.matmul(h, cell.recurrent_kernel)
            i, f, g, o = tf.split(z, 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outputs.append(h)
        logits = tf.where(valid, self.head(tf.stack(outputs, axis=1)), -1e9)
        logp = tf.nn.log_softmax(logits)
        chosen = tf.gather(logp, actions, batch_dims=2)
        entropy = -tf.reduce_sum(tf.where(valid, tf.exp(logp) * logp, 0.0), axis=-1)
        return tf.reduce_sum(chosen * live, axis=1), tf.reduce_sum(entropy * live, axis=1)

    def log_prob(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Log-probabilities under the TensorFlow graph (equal to sampling's, to 1e-5)."""
        lp, _ = self._log_probs(*self._batch(sequences))
        return lp.numpy()

    def _update_step(self, tokens, actions, valid, live, old_log_prob, advantage):
        import tensorflow as tf
        cfg = self.config
        with tf.GradientTape() as tape:
            lp, ent = self._log_probs(tokens, actions, valid, live)
            ratio = tf.exp(lp - old_log_prob)
            clipped = tf.clip_by_value(ratio, 1 - cfg.clip, 1 + cfg.clip)
            surrogate = tf.minimum(ratio * advantage, clipped * advantage)
            loss = -tf.reduce_mean(surrogate) - cfg.entropy * tf.reduce_mean(ent)
        grads = tape.gradient(loss, self.variables)
        grads, _ = tf.clip_by_global_norm(grads, cfg.grad_clip)
        self.optimizer.apply_gradients(zip(grads, self.variables))
        return loss, tf.reduce_mean(ent)

    def update(self, sequences: Sequence[Sequence[int]], old_log_probs: Sequence[float],
               advantages: Sequence[float]) -> dict:
        """PPO epochs on one batch of finished children; returns loss and entropy."""
        import tensorflow as tf
        tokens, actions, valid, live = self._batch(sequences)
        args = [tf.constant(a) for a in (tokens, actions, valid, live)] + [
            tf.constant(np.asarray(old_log_probs, np.float32)),
            tf.constant(np.asarray(advantages, np.float32))]
        for _ in range(self.config.epochs):
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

