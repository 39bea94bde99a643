"""Every strategy over the msnas space, on the toy evaluator: runs, is killed with SIGKILL
mid-search, resumes, and loses or repeats nothing."""

import pytest

from strategy_matrix import check_kill_and_resume


@pytest.mark.timeout(600)
@pytest.mark.parametrize("strategy", ["ppo", "evolution", "regularized_evolution", "random"])
def test_kill_and_resume_msnas(tmp_path, strategy):
    check_kill_and_resume(tmp_path, "msnas", strategy)
