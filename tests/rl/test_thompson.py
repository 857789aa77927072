"""Thompson sampling: exact Beta draws, the choice is a Thompson sample, the propensity its share."""
import numpy as np
import pytest

from apps.rl import thompson


def test_one_candidate_is_chosen_with_certainty():
    choice = thompson.choose(np.array([3.0]), np.array([9.0]))
    assert (choice.index, choice.propensity) == (0, 1.0)


def test_the_choice_is_row_zero_of_the_draws_and_its_propensity_their_share():
    s, f = np.array([10.0, 2.0, 0.0]), np.array([5.0, 2.0, 0.0])
    rng = np.random.default_rng(7)
    choice = thompson.choose(s, f, draws=500, rng=rng)
    theta = np.random.default_rng(7).beta(s + 1, f + 1, size=(500, 3))
    winners = theta.argmax(axis=1)
    assert choice.index == int(winners[0])
    assert choice.propensity == pytest.approx(np.mean(winners == choice.index))
    assert choice.probabilities.sum() == pytest.approx(1.0)
    assert choice.propensity >= 1 / 500


def test_propensities_match_the_exact_probability_of_being_the_argmax():
    # Two arms: P(Beta(3,1) > Beta(1,3)) = 1 - P(Beta(1,3) > Beta(3,1)) = 1 - 1/20 = 0.95 (closed form)
    choice = thompson.choose(np.array([2.0, 0.0]), np.array([0.0, 2.0]), draws=200_000, rng=np.random.default_rng(1))
    assert choice.probabilities[0] == pytest.approx(0.95, abs=0.003)


def test_priors_must_be_positive():
    with pytest.raises(ValueError, match="> 0"):
        thompson.choose(np.array([1.0, 1.0]), np.array([1.0, 1.0]), prior_alpha=0)


def test_beta_interval_of_the_uniform_prior():
    mean, low, high = thompson.beta_interval(0, 0)
    assert (mean, low, high) == (pytest.approx(0.5), pytest.approx(0.025), pytest.approx(0.975))


def test_the_propensity_table_is_reused_while_the_posteriors_stay_the_same():
    table = thompson.PropensityTable()
    s, f = np.array([30.0, 10.0, 5.0]), np.array([70.0, 90.0, 95.0])
    first = table.choose(s, f, draws=1000, rng=np.random.default_rng(1))
    second = table.choose(s, f, draws=1000, rng=np.random.default_rng(2))
    assert (table.misses, table.hits) == (1, 1)
    assert second.propensity == first.probabilities[second.index]
    table.choose(s + np.array([1.0, 0, 0]), f, draws=1000)  # a new posterior version: fresh draws
    assert table.misses == 2
