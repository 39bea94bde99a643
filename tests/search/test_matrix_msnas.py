"""Every strategy over the msnas space, on the toy evaluator: it runs, is stopped mid-search
(in-process, as a kill leaves the store; and one strategy by a real SIGKILL of the CLI),
resumes, and loses or repeats nothing."""

import pytest

from strategy_matrix import check_interrupt_and_resume, check_kill_and_resume


@pytest.mark.parametrize("strategy", ["ppo", "evolution", "regularized_evolution", "random"])
def test_interrupt_and_resume_msnas(tmp_path, monkeypatch, strategy):
    check_interrupt_and_resume(tmp_path, monkeypatch, "msnas", strategy)


@pytest.mark.timeout(600)
def test_sigkill_and_resume_msnas_evolution(tmp_path):
    check_kill_and_resume(tmp_path, "msnas", "evolution")
