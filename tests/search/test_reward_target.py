"""A latency target that travels: `reward.target: {reference, ratio}` is priced on the
search's own device when it starts, kept in the store, and used by the reward, the frontier,
a resume and the retrain sweep."""

import json

import pytest

from search.config import SearchConfigError, load_config
from search.rewards import reward


def test_absolute_and_relative_targets_replace_each_other():
    default = load_config()
    assert default.reward.target == {"reference": "mnasfpn", "ratio": 1.0}
    assert default.reward.target_ms is None
    absolute = load_config(sets=["reward.target_ms=25"])
    assert (absolute.reward.target_ms, absolute.reward.target) == (25, None)
    relative = load_config(overrides={"reward": {"target_ms": 30.0}},
                           sets=["reward.target={reference: mnasfpn_dm0.7, ratio: 0.8}"])
    assert relative.reward.target_ms is None and relative.reward.target["ratio"] == 0.8
    assert load_config("mnasfpn_paper").reward.target_ms == 173.0
    # a config's own dict round-trips (workers rebuild it from to_dict())
    assert load_config(overrides=relative.to_dict()) == relative


@pytest.mark.parametrize("sets, message", [
    (["reward.target={reference: nope}"], "reward.target.reference: unknown architecture"),
    (["reward.target={reference: mnasfpn, ratio: 0}"], "ratio must be a positive number"),
    (["reward.target={reference: mnasfpn, scale: 2}"], "unknown key(s) scale"),
    (["reward.target=null"], "give target_ms (ms) or target"),
    (["reward={target: {reference: mnasfpn}, target_ms: 20}"], "not both"),
])
def test_bad_targets_are_refused(sets, message):
    with pytest.raises(SearchConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(sets=sets)


def test_relative_target_is_priced_once_and_kept_in_the_store(tmp_path, capsys):
    """Priced by an end-to-end measurement of the published cell (at 128 px to stay cheap);
    the resumed search reads the stored number rather than pricing it again."""
    from search import store as trial_store
    from search.driver import Search
    config = load_config(sets=[
        "evaluator=toy", "strategy=random", "budget=1", "latency.source=measure",
        "latency.input_size=128", "reward.target={reference: mnasfpn, ratio: 0.5}"])
    out = str(tmp_path / "s")
    summary = Search(config, out, progress=False).run()
    target = summary["reward_target"]
    assert target["reference"] == "mnasfpn" and target["ratio"] == 0.5
    assert target["target_ms"] == pytest.approx(0.5 * target["reference_ms"])
    assert 0 < target["reference_ms"] < 1000 and "measured end to end" in target["how"]
    db = trial_store.TrialStore.open_existing(f"{out}/{trial_store.DB_NAME}")
    child = db.trials(trial_store.DONE)[0]
    assert child.reward == pytest.approx(reward("mnas", child.map, child.latency_ms,
                                                target["target_ms"], -0.3))
    # a resume uses the stored target (made recognisable here), never prices it again
    db.put_state("reward_target", json.dumps({**target, "target_ms": 123.0}).encode(),
                 {**target, "target_ms": 123.0})
    db.close()
    again = Search(config, out,
                   resume=True, progress=False).run()
    assert again["reward_target"]["target_ms"] == 123.0
