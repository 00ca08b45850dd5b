"""Policies: the platform team's tiers, pools and rules, as immutable values.

The package exports the model only, which the pure core reads; loading files is in
`podtier.webhook.policy.load`.
"""

from podtier.webhook.policy.model import (
    Cost,
    LabelSelector,
    Learning,
    LearningOverride,
    Policy,
    PolicyError,
    Pool,
    Quantity,
    Rule,
    RuleMatch,
    Scaling,
    Tier,
)

__all__ = [
    "Cost",
    "LabelSelector",
    "Learning",
    "LearningOverride",
    "Policy",
    "PolicyError",
    "Pool",
    "Quantity",
    "Rule",
    "RuleMatch",
    "Scaling",
    "Tier",
]
