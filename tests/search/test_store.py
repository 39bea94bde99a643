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


def test_reference_trials_stay_out_of_every_child_read(tmp_path):
    """A reference (the published cell) is a row of its own role: budget counts,
    de-duplication and the default reads see children only."""
    from search.store import REFERENCE
    store = TrialStore(str(tmp_path / "s.sqlite"), {})
    ref = store.add(ARCH, arch_hash(ARCH), seed=0, extra={"reference": "mnasfpn"},
                    role=REFERENCE)
    store.finish(ref, map=0.5, reward=0.5)
    assert store.find(arch_hash(ARCH)) is None  # never stands in for a child
    assert store.trials() == [] and store.counts()[DONE] == 0
    child = store.add(ARCH, arch_hash(ARCH), seed=7)
    store.finish(child, map=0.4, reward=0.4)
    assert store.find(arch_hash(ARCH)).id == child
    assert [t.id for t in store.trials(DONE)] == [child]
    assert [(t.id, t.role, t.extra) for t in store.references()] == [
        (ref, REFERENCE, {"reference": "mnasfpn"})]
    assert store.counts(REFERENCE) == {PENDING: 0, RUNNING: 0, DONE: 1, FAILED: 0}
    assert [t.id for t in store.trials(role=None)] == [ref, child]
    with pytest.raises(ValueError, match="role must be one of child, reference"):
        store.add(ARCH, "h", seed=0, role="baseline")


def test_a_store_from_before_roles_gets_the_column_and_keeps_its_children(tmp_path):
    import sqlite3
    path = str(tmp_path / "old.sqlite")
    TrialStore(path, {"seed": 0}).close()
    with sqlite3.connect(path) as db:  # the trials table as it was: no role column
        db.execute("ALTER TABLE trials DROP COLUMN role")
        db.execute("INSERT INTO trials (arch, arch_hash, status, seed, created) VALUES "
                   "('{}', 'h', 'done', 3, 0)")
    store = TrialStore(path, {"seed": 0})
    [old] = store.trials()
    assert (old.role, old.seed, store.references()) == ("child", 3, [])
