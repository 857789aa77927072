import io
import os
import time

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from apps.core import redis as redis_store
from apps.inference import registry
from apps.inference.model import CoLaNetWeights
from tests.support.wait import wait_until

from .conftest import random_weights


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_export_seed_model_writes_a_loadable_versioned_file(tmp_path):
    out = run("export_seed_model", "--out", str(tmp_path / "s.npz"), "--seed", "11")
    assert f"Wrote seeded model seed-11 (seed 11, 128 hidden units) to {tmp_path / 's.npz'}." in out
    weights = CoLaNetWeights.from_npz(tmp_path / "s.npz")
    assert weights.version == "seed-11"
    np.testing.assert_array_equal(weights.W2, CoLaNetWeights.seeded(seed=11).W2)
    run("export_seed_model", "--out", str(tmp_path / "t.npz"), "--seed", "11", "--model-version", "v7", "--hidden", "64")
    assert CoLaNetWeights.from_npz(tmp_path / "t.npz").version == "v7"
    assert CoLaNetWeights.from_npz(tmp_path / "t.npz").hidden == 64
    with pytest.raises(CommandError, match="model version 'bad/version' is invalid"):
        run("export_seed_model", "--out", str(tmp_path / "u.npz"), "--seed", "1", "--model-version", "bad/version")


def test_publish_model_copies_atomically_and_announces(tmp_path):
    source = tmp_path / "w.npz"
    random_weights(4, version="pub-1").to_npz(source)
    models = tmp_path / "models"
    pubsub = redis_store.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(redis_store.channel(registry.MODEL_CHANNEL, redis_store.client()))
    try:
        out = run("publish_model", str(source), "--model-dir", str(models))
        message = wait_until(lambda: pubsub.get_message(timeout=0.5), timeout=5, interval=0,
                             message="the announcement on the model channel")
    finally:
        pubsub.close()
    assert message["data"] == b"pub-1"
    target = models / "colanet-pub-1.npz"
    assert f"Published model pub-1 -> {target}" in out and "announced to" in out
    assert target.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in models.iterdir()) == ["colanet-pub-1.npz"]  # no temporary file left


def test_publish_refuses_invalid_files_and_changed_versions(tmp_path):
    models = tmp_path / "models"
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    with pytest.raises(CommandError, match=r"not published: .*junk.npz: not an .npz file"):
        run("publish_model", str(junk), "--model-dir", str(models), "--no-announce")
    assert not models.exists() or not any(models.iterdir())

    first = tmp_path / "a.npz"
    random_weights(1, version="same").to_npz(first)
    run("publish_model", str(first), "--model-dir", str(models), "--no-announce")
    other = tmp_path / "b.npz"
    random_weights(2, version="same").to_npz(other)
    with pytest.raises(CommandError, match="version 'same' is already published with different weights"):
        run("publish_model", str(other), "--model-dir", str(models), "--no-announce")
    assert (models / "colanet-same.npz").read_bytes() == first.read_bytes()


def test_republishing_an_older_version_makes_it_current_again(tmp_path):
    models = tmp_path / "models"
    for version, seed in (("r1", 1), ("r2", 2)):
        random_weights(seed, version=version).to_npz(tmp_path / f"{version}.npz")
        run("publish_model", str(tmp_path / f"{version}.npz"), "--model-dir", str(models), "--no-announce")
    old = time.time_ns() - 10**9
    os.utime(models / "colanet-r1.npz", ns=(old, old))
    assert registry.newest_model(models).version == "r2"
    run("publish_model", str(tmp_path / "r1.npz"), "--model-dir", str(models), "--no-announce")
    assert registry.newest_model(models).version == "r1"
