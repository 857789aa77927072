"""Champion / challenger (apps.training.services): a challenger is published through the inference
registry only when it beats the model in service on the holdout; every file keeps its metrics and
feature-layout version, and a file of another layout refuses to load."""
from __future__ import annotations

import numpy as np
import pytest

from apps.core import redis as redis_store
from apps.inference import registry
from apps.inference.model import CoLaNetWeights, ModelFileError
from apps.inference.runtime import InferenceRuntime
from apps.training.services import Evaluation, challenger_decide, challenger_publish_if_better
from apps.training.trainer import TrainConfig, train
from tests.training.test_trainer import planted


@pytest.fixture(scope="module")
def data():
    return planted(3000, 11), planted(1500, 12)


@pytest.fixture(scope="module")
def good(data):
    (X, y, reward), _ = data
    return train(X, y, reward, version="good-1", config=TrainConfig(epochs=25, seed=1)).weights


def test_a_better_challenger_is_published_with_its_metrics(data, good, tmp_path):
    _, (Xh, yh, _) = data
    model_dir = tmp_path / "models"  # empty: the champion is the seeded initialisation
    pubsub = redis_store.client().pubsub()
    pubsub.subscribe(redis_store.channel(registry.MODEL_CHANNEL, redis_store.client()))
    pubsub.get_message(timeout=1)
    selection = challenger_publish_if_better(challenger=good, X_holdout=Xh, y_holdout=yh, out_dir=tmp_path / "out",
                                             model_dir=model_dir, metadata={"data_window": {"since": "a", "until": "b"}})
    assert selection.better and selection.published, selection.reason
    assert selection.champion.version == "seed-42" and selection.challenger.auc >= 0.9
    assert selection.champion.log_loss - selection.challenger.log_loss > selection.challenger.log_loss_half_width > 0
    assert registry.newest_model(model_dir).version == "good-1"
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    assert message is not None and message["data"] == b"good-1"
    stored = CoLaNetWeights.from_npz(model_dir / "colanet-good-1.npz")
    assert stored.layout_version == 1 and stored.metadata["feature_layout_version"] == 1
    assert stored.metadata["data_window"] == {"since": "a", "until": "b"}
    assert stored.metadata["decision"]["published"] is True
    assert stored.metadata["holdout"]["challenger"]["auc"] == pytest.approx(selection.challenger.auc)
    assert stored.metadata["holdout"]["champion"]["version"] == "seed-42"
    assert np.array_equal(stored.W1, good.W1)


def test_a_worse_challenger_is_not_published(data, good, tmp_path):
    (X, y, reward), (Xh, yh, _) = data
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    good.to_npz(model_dir / "colanet-good-1.npz")  # the model in service
    shuffled = np.random.default_rng(0).permutation(y)  # labels unrelated to the rows
    worse = train(X, shuffled, reward, version="worse-1", config=TrainConfig(epochs=5, seed=2)).weights
    before = registry.published_models(model_dir)
    selection = challenger_publish_if_better(challenger=worse, X_holdout=Xh, y_holdout=yh, out_dir=tmp_path / "out",
                                             model_dir=model_dir)
    assert not selection.better and not selection.published
    assert selection.champion.version == "good-1" and "not more than the bootstrap half-width" in selection.reason
    assert registry.published_models(model_dir) == before and registry.newest_model(model_dir).version == "good-1"
    kept = CoLaNetWeights.from_npz(tmp_path / "out" / "colanet-worse-1.npz")  # kept for inspection, with why
    assert kept.metadata["decision"] == {"published": False, "better": False, "reason": selection.reason}


def test_the_decision_rule():
    def ev(ll, hw, auc):
        return Evaluation(version="v", log_loss=ll, log_loss_half_width=hw, auc=auc, rows=100, clicks=10)

    assert challenger_decide(challenger=ev(0.30, 0.01, 0.80), champion=ev(0.32, 0.01, 0.80))[0] is True
    assert challenger_decide(challenger=ev(0.30, 0.03, 0.80), champion=ev(0.32, 0.01, 0.70))[0] is False  # within CI
    better, why = challenger_decide(challenger=ev(0.30, 0.01, 0.79), champion=ev(0.32, 0.01, 0.80))
    assert not better and "AUC 0.7900 is lower" in why
    assert challenger_decide(challenger=ev(0.30, 0.01, float("nan")), champion=ev(0.32, 0.01, 0.8))[0] is False


def test_a_file_without_a_layout_is_layout_1_and_another_layout_refuses_to_load(good, tmp_path):
    plain = tmp_path / "colanet-plain-1.npz"
    np.savez(plain, W1=good.W1, b1=good.b1, theta=good.theta, W2=good.W2, b2=good.b2, version=np.array("plain-1"))
    assert CoLaNetWeights.from_npz(plain).layout_version == 1
    other = tmp_path / "colanet-other-1.npz"
    np.savez(other, W1=good.W1, b1=good.b1, theta=good.theta, W2=good.W2, b2=good.b2, version=np.array("other-1"),
             layout_version=np.array(2))
    with pytest.raises(ModelFileError, match=r"trained on feature layout 2, but this code builds layout 1 rows"):
        CoLaNetWeights.from_npz(other)


async def test_a_bidder_keeps_its_model_when_a_file_of_another_layout_is_published(good, tmp_path):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    good.to_npz(model_dir / "colanet-good-1.npz")
    runtime = InferenceRuntime(model_dir=model_dir)
    runtime.load()
    path = model_dir / "colanet-other-2.npz"
    np.savez(path, W1=good.W1, b1=good.b1, theta=good.theta, W2=good.W2, b2=good.b2, version=np.array("other-2"),
             layout_version=np.array(2))
    assert await runtime.reload(path, "other-2", trigger="test") is False
    assert runtime.model_version == "good-1"
