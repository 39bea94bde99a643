"""The frontier's measures on cases with known answers, and the frontier plot's
reference marks."""

import types

import pytest

from search import frontier
from search.frontier import hypervolume, pareto_front


def test_pareto_front_keeps_the_non_dominated_points_by_cost():
    points = [(3.0, 0.6), (1.0, 0.5), (2.0, 0.8), (2.0, 0.7), (4.0, 0.8)]
    assert pareto_front(points) == [1, 2]


def test_hypervolume_is_the_staircase_area_up_to_the_reference_point():
    # (1, .5) and (2, .8) are the front; (3, .6) is dominated: 1 x .5 + 2 x .8
    assert hypervolume([(1.0, 0.5), (2.0, 0.8), (3.0, 0.6)], (4.0, 0.0)) == pytest.approx(2.1)
    # an accuracy floor above 0, and a point past the cost bound that adds nothing
    assert hypervolume([(1.0, 0.5), (5.0, 0.9)], (4.0, 0.1)) == pytest.approx(3 * 0.4)
    assert hypervolume([], (4.0, 0.0)) == 0.0
    assert hypervolume([(4.0, 0.9), (1.0, 0.0)], (4.0, 0.0)) == 0.0
    # a better frontier has a larger hypervolume
    assert hypervolume([(1.0, 0.6), (2.0, 0.8)], (4.0, 0.0)) > hypervolume(
        [(1.0, 0.5), (2.0, 0.8)], (4.0, 0.0))


def _trial(i, latency, score):
    return types.SimpleNamespace(id=i, latency_ms=latency, madds=None, map=score,
                                 reward=score, arch={"i": i})


def test_frontier_marks_each_scored_reference_and_leaves_it_out_of_the_rows(
        tmp_path, monkeypatch):
    marked = []
    draw = frontier.mark_references
    monkeypatch.setattr(frontier, "mark_references", lambda ax, refs, key="latency_ms": (
        marked.extend(refs), draw(ax, refs, key)))
    children = [_trial(2, 10.0, 0.3), _trial(3, 20.0, 0.5)]
    published = _trial(1, 15.0, 0.6)
    failed = _trial(4, None, None)
    rows = frontier.write_frontier(children, str(tmp_path), 25.0, "AP50",
                                   [("mnasfpn (published)", published), ("x", failed)])
    assert [r["trial"] for r in rows] == [2, 3]  # the reference would dominate trial 3
    assert marked == [("mnasfpn (published)", published)]
    assert (tmp_path / "frontier.png").stat().st_size > 0
