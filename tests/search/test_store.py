"""The durable trial store: rows survive reopening, running trials are requeued, states
and results land together, and a different config is refused."""

import pytest

from search.store import (DONE, FAILED, PENDING, RUNNING, ConfigMismatch, TrialStore,
                          arch_hash)

ARCH = {"channels": 48, "blocks": [{"inputs": [0, 1], "level": 3}]}


def test_hash_is_stable_and_order_insensitive():
    assert arch_hash(ARCH) == arch_hash(dict(reversed(list(ARCH.items()))))
    assert arch_hash(ARCH) != arch_hash({**ARCH, "channels": 64})
    assert len(arch_hash(ARCH)) == 16


def test_lifecycle_and_reopen(tmp_path):
    path = str(tmp_path / "search.sqlite")
    store = TrialStore(path, {"seed": 0})
    a = store.add(ARCH, arch_hash(ARCH), seed=1, log_prob=-3.5, policy_version=0,
                  extra={"iteration": 0})
    b = store.add(ARCH, arch_hash(ARCH), seed=2)
    store.start(a)
    store.start(b)
    store.finish(a, map=0.25, latency_ms=12.0, reward=0.2, metrics={"AP50": 0.5},
                 extra={"child": 1})
    store.close()

    store = TrialStore(path, {"seed": 0})
    assert store.requeue_running() == [b]
    assert store.counts() == {PENDING: 1, RUNNING: 0, DONE: 1, FAILED: 0}
    done = store.find(arch_hash(ARCH))
    assert (done.id, done.map, done.log_prob, done.arch) == (a, 0.25, -3.5, ARCH)
    assert done.extra == {"iteration": 0, "child": 1} and done.metrics == {"AP50": 0.5}
    store.start(b)
    assert store.get(b).attempts == 2
    store.finish(b, status=FAILED, error="loss is nan")
    assert [t.error for t in store.trials(FAILED)] == ["loss is nan"]
    with pytest.raises(ValueError, match="'done' or 'failed'"):
        store.finish(b, status=RUNNING)


def test_states_commit_with_results_or_not_at_all(tmp_path):
    store = TrialStore(str(tmp_path / "s.sqlite"), {})
    t = store.add(ARCH, "h", seed=0)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.finish(t, map=1.0)
            store.put_state("controller", b"weights", {"version": 1})
            raise RuntimeError("killed between the two writes")
    assert store.get(t).status == PENDING and store.get_state("controller") is None
    with store.transaction():
        store.finish(t, map=1.0)
        store.put_state("controller", b"weights", {"version": 1})
    assert store.get_state("controller") == (b"weights", {"version": 1})


def test_other_config_is_refused_naming_the_keys(tmp_path):
    path = str(tmp_path / "s.sqlite")
    TrialStore(path, {"target_ms": 20, "w": -0.3}).close()
    with pytest.raises(ConfigMismatch, match="differs in: target_ms"):
        TrialStore(path, {"target_ms": 30, "w": -0.3})
