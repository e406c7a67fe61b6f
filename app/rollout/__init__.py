"""Rolling out new versions: canary by tenant, shadow runs with diffs, automatic rollback."""

from app.rollout._rollout import Diff, RollbackRecord, Rollouts, Share, canary_bucket

__all__ = ["Diff", "RollbackRecord", "Rollouts", "Share", "canary_bucket"]
