"""The LSTM policy: NumPy sampling agrees with the TensorFlow graph, PPO climbs a toy
reward, and its state round-trips."""

import numpy as np
import pytest
import tensorflow as tf

from search.strategies.policy import MovingBaseline, PPOConfig, Policy
from mnas_tf.spaces import CellSpace, get_space
from search.spaces.toy import ToyObjective


@pytest.mark.parametrize("name", ["mnasfpn", "conn_search"])
def test_sampling_log_probs_and_entropies_match_the_graph(name):
    """conn_search's sequences differ in length, so the graph pads them."""
    space = get_space(name, intermediate_blocks=1)
    policy = Policy(space, seed=1)
    rng = np.random.default_rng(0)
    samples = [policy.sample(rng) for _ in range(6)]
    if name == "conn_search":
        assert len({len(s.decisions) for s in samples}) > 1
    sequences = [s.decisions for s in samples]
    graph_lp, graph_entropy = (t.numpy() for t in policy._log_probs(*policy._batch(sequences)))
    np.testing.assert_allclose(graph_lp, [s.log_prob for s in samples], atol=1e-4)
    np.testing.assert_allclose(graph_entropy, [s.entropy for s in samples], atol=1e-4)
    assert all(s.entropy > 0 for s in samples)
    policy._steps_cache.clear()  # a resumed search walks the space again: same batch
    for fresh, cached in zip(policy._batch(sequences), policy._batch(sequences)):
        np.testing.assert_array_equal(fresh, cached)
    np.testing.assert_allclose(policy.log_prob(sequences), graph_lp, atol=1e-6)


def test_greedy_sampling_ignores_the_rng_and_decodes():
    space = get_space("mnasfpn", intermediate_blocks=1)
    policy = Policy(space, seed=2)
    a, b = (policy.sample(np.random.default_rng(i), greedy=True) for i in (0, 1))
    assert a == b
    space.decode(a.decisions).validate()


def test_fused_lstm_gradients_equal_a_step_by_step_lstm():
    """The update differentiates through BlockLSTM; check it against tf_keras' LSTMCell."""
    space = get_space("conn_search", intermediate_blocks=1)
    policy = Policy(space, seed=3)
    rng = np.random.default_rng(0)
    tokens, actions, valid, live, names = policy._batch(
        [policy.sample(rng).decisions for _ in range(5)])

    def reference_log_probs():
        x = policy.embedding(tokens)
        state = [tf.zeros((len(tokens), policy.config.hidden))] * 2
        outputs = []
        for t in range(tokens.shape[1]):
            out, state = policy.cell(x[:, t], state)
            outputs.append(out)
        logits = policy.head(tf.stack(outputs, 1)) + \
            policy.config.prior_scale * tf.gather(policy.prior, names)
        logp = tf.nn.log_softmax(tf.where(valid, logits, -1e9))
        return tf.reduce_sum(tf.gather(logp, actions, batch_dims=2) * live, axis=1)

    weights = tf.constant(rng.normal(size=len(tokens)), tf.float32)
    gradients = []
    for log_probs in (lambda: policy._log_probs(tokens, actions, valid, live, names)[0],
                      reference_log_probs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(log_probs() * weights)
        gradients.append(tape.gradient(loss, policy.variables))
    for fused, reference in zip(*gradients):
        fused = tf.convert_to_tensor(fused).numpy()
        reference = tf.convert_to_tensor(reference).numpy()
        np.testing.assert_allclose(fused, reference, atol=1e-5,
                                   rtol=1e-4)


def test_ppo_improves_the_toy_reward_and_state_round_trips():
    space = CellSpace(intermediate_blocks=1, channels=(16, 32, 48, 64),
                      expansions=(16, 32, 64, 128))
    objective = ToyObjective(space, seed=0)
    policy = Policy(space, PPOConfig(learning_rate=3e-3, entropy=0.01), seed=0)
    rng = np.random.default_rng(0)
    baseline = MovingBaseline(0.9)

    def batch(n=32):
        return [policy.sample(rng) for _ in range(n)]
    before = np.mean([objective.score_decisions(s.decisions) for s in batch(64)])
    for _ in range(25):
        samples = batch()
        rewards = [objective.score_decisions(s.decisions) for s in samples]
        policy.update([s.decisions for s in samples], [s.step_log_probs for s in samples],
                      baseline.advantages(rewards))
    after = np.mean([objective.score_decisions(s.decisions) for s in batch(64)])
    assert after > before + 0.05, (before, after)

    probe = [s.decisions for s in batch(4)]
    clone = Policy(space, seed=7)
    clone.load_state(policy.state())
    np.testing.assert_allclose(clone.log_prob(probe), policy.log_prob(probe), atol=1e-6)
    assert clone.version == policy.version == 25
