"""The LSTM policy: NumPy sampling agrees with the TensorFlow graph, PPO climbs a toy
reward, and its state round-trips."""

import numpy as np

from search.policy import MovingBaseline, PPOConfig, Policy
from search.space import CellSpace, get_space
from search.toy import ToyObjective


def test_sampling_log_probs_match_the_graph_for_variable_length_spaces():
    space = get_space("mnasfpn", num_blocks=4)
    policy = Policy(space, seed=1)
    rng = np.random.default_rng(0)
    samples = [policy.sample(rng) for _ in range(6)]
    graph = policy.log_prob([s.decisions for s in samples])
    np.testing.assert_allclose(graph, [s.log_prob for s in samples], atol=1e-4)
    assert all(s.entropy > 0 for s in samples)


def test_ppo_improves_the_toy_reward_and_state_round_trips():
    space = CellSpace(num_blocks=4, channels=(16, 32, 48, 64), expansions=(16, 32, 64, 128))
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
        policy.update([s.decisions for s in samples], [s.log_prob for s in samples],
                      baseline.advantages(rewards))
    after = np.mean([objective.score_decisions(s.decisions) for s in batch(64)])
    assert after > before + 0.05, (before, after)

    probe = [s.decisions for s in batch(4)]
    clone = Policy(space, seed=7)
    clone.load_state(policy.state())
    np.testing.assert_allclose(clone.log_prob(probe), policy.log_prob(probe), atol=1e-6)
    assert clone.version == policy.version == 25
