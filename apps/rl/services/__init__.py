"""apps.rl services (docs/RULES.md §8): decisions, their rewards, and off-policy evaluation."""
from .decisions import DecisionResult, rl_decide, rl_sync_catalog
from .evaluation import rl_evaluate_policy
from .rewards import RewardResult, rl_expire_due, rl_feedback_poll, rl_feedback_record, rl_reward

__all__ = [
    "DecisionResult", "RewardResult", "rl_decide", "rl_evaluate_policy", "rl_expire_due", "rl_feedback_poll", "rl_feedback_record",
    "rl_reward", "rl_sync_catalog",
]
