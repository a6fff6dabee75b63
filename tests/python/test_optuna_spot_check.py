"""Spot-check policies: deterministic per trial number and seed."""

import pytest
from dataproxy.optuna import NoSpotCheck, SpotCheck, SpotCheckPolicy


def picked(policy, n=400):
    return [i for i in range(n) if policy.should_check(i)]


def test_fraction_is_seeded_and_close_to_asked():
    a = picked(SpotCheckPolicy(fraction=0.25, seed=7))
    assert a == picked(SpotCheckPolicy(fraction=0.25, seed=7))
    assert a != picked(SpotCheckPolicy(fraction=0.25, seed=8))
    assert 60 <= len(a) <= 140


def test_every_and_first_add_to_the_fraction():
    assert picked(SpotCheckPolicy(every=5), 20) == [0, 5, 10, 15]
    assert picked(SpotCheckPolicy(first=3), 20) == [0, 1, 2]
    both = set(picked(SpotCheckPolicy(fraction=0.1, every=7, seed=1)))
    assert set(range(0, 400, 7)) <= both
    assert both > set(range(0, 400, 7))


def test_nothing_by_default():
    assert picked(SpotCheckPolicy()) == []
    assert picked(NoSpotCheck()) == []
    assert isinstance(SpotCheckPolicy(), SpotCheck)


@pytest.mark.parametrize("kwargs", [{"fraction": 1.5}, {"fraction": -0.1}, {"every": -1}])
def test_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError):
        SpotCheckPolicy(**kwargs)
