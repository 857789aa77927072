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


def _p_first_beats_second(a1, b1, a2, b2):
    """P(Beta(a1, b1) > Beta(a2, b2)) by quadrature: ∫ f₁(x) F₂(x) dx."""
    from scipy import integrate
    from scipy.stats import beta

    return integrate.quad(lambda x: beta.pdf(x, a1, b1) * beta.cdf(x, a2, b2), 0, 1)[0]


def test_a_new_version_redraws_only_the_arms_that_changed_and_stays_exact():
    table = thompson.PropensityTable()
    arms = ("seg", "x", "y", "z")
    s, f = np.array([3.0, 1.0, 0.0]), np.array([1.0, 3.0, 9.0])
    first = table.choose(s, f, arms=arms, draws=40_000, rng=np.random.default_rng(3))
    assert (table.misses, table.columns_drawn) == (1, 3)
    changed = s + np.array([0.0, 6.0, 0.0])  # a reward on "y": Beta(8, 4) now
    second = table.choose(changed, f, arms=arms, draws=40_000, rng=np.random.default_rng(4))
    assert (table.misses, table.columns_drawn) == (2, 4)  # one column, not three
    assert second.probabilities.sum() == pytest.approx(1.0)
    # "z" (Beta(1, 10)) almost never wins; between x = Beta(4, 2) and y = Beta(8, 4) the closed form decides
    p_x = _p_first_beats_second(4, 2, 8, 4)
    assert second.probabilities[0] == pytest.approx(p_x, abs=0.01)
    assert second.probabilities[1] == pytest.approx(1 - p_x, abs=0.01)
    assert first.probabilities[0] == pytest.approx(_p_first_beats_second(4, 2, 2, 4), abs=0.01)
    table.choose(changed, f, arms=("seg", "x", "y", "w"), draws=40_000)  # another list: its own matrix
    assert table.columns_drawn == 7


def test_the_choice_is_a_fresh_thompson_sample_whatever_the_table():
    table = thompson.PropensityTable()
    s, f = np.array([50.0, 50.0]), np.array([50.0, 50.0])
    picks = [table.choose(s, f, arms=("a", "b"), draws=64, rng=np.random.default_rng(i)).index for i in range(400)]
    assert table.misses == 1 and 150 < sum(picks) < 250  # two equal arms: about half each


def test_empirical_bayes_prior_from_pooled_counts():
    assert thompson.empirical_bayes_prior(np.zeros(5), np.zeros(5)) == (1.0, 1.0)  # no data: Beta(1, 1)
    rng = np.random.default_rng(0)
    rates = rng.beta(2.0, 198.0, size=400)  # arms whose rates spread as Beta(2, 198): mean 0.01, strength 200
    trials = np.full(400, 2000.0)
    clicks = rng.binomial(trials.astype(int), rates).astype(float)
    alpha, beta = thompson.empirical_bayes_prior(clicks, trials - clicks)
    assert alpha / (alpha + beta) == pytest.approx(0.01, rel=0.1)
    assert 120 < alpha + beta < 330
    # no spread beyond binomial noise: the strength goes to its cap, or to an average arm's trials
    same = rng.binomial(1000, 0.02, size=50).astype(float)
    assert sum(thompson.empirical_bayes_prior(same, 1000 - same)) == pytest.approx(1000.0)
    assert sum(thompson.empirical_bayes_prior(same, 1000 - same, max_strength=None)) == pytest.approx(1000.0)
    assert sum(thompson.empirical_bayes_prior(same, 300 - same, max_strength=None)) == pytest.approx(300.0)
