"""Beat entries of the DSP slice (merged by ``config.celery``).

* The platform snapshot is republished every 10 s: a lost key or announcement heals on its own
  (edits publish at once, after commit).
* Spend per platform and hour is copied from Redis to Postgres every 5 s (budgets act in Redis at once).
"""
BEAT_SCHEDULE = {
    "dsp-publish-platforms": {"task": "dsp.publish_platforms", "schedule": 10.0, "options": {"expires": 9}},
    "dsp-flush-spend": {"task": "dsp.flush_spend", "schedule": 5.0, "options": {"expires": 4}},
}
