"""The densification schedule: defaults follow the run's length, explicit steps are kept, bad values refused."""

from __future__ import annotations

import pytest

from ccl_gs.splat.strategy import DensifyConfig, make_strategy


@pytest.mark.parametrize("iterations, start, stop", [(30_000, 500, 16_500), (2000, 200, 1100), (40, 4, 22)])
def test_unset_start_and_stop_follow_the_run(iterations, start, stop):
    r = DensifyConfig().resolved(iterations)
    assert (r.refine_start_iter, r.refine_stop_iter) == (start, stop)
    s = make_strategy(DensifyConfig(), iterations)
    assert (s.refine_start_iter, s.refine_stop_iter) == (start, stop)


def test_explicit_steps_are_kept():
    r = DensifyConfig(refine_start_iter=7, refine_stop_iter=10**6).resolved(100)
    assert (r.refine_start_iter, r.refine_stop_iter) == (7, 10**6)


@pytest.mark.parametrize("kw, flag", [({"refine_start_iter": -1}, "refine-start-iter"), ({"refine_every": 0}, "refine-every"),
                                      ({"reset_every": 0}, "reset-every"), ({"refine_stop_iter": -3}, "refine-stop-iter")])
def test_bad_values_name_the_flag(kw, flag):
    with pytest.raises(ValueError, match=flag):
        DensifyConfig(**kw)
