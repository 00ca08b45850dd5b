"""Policy files: reading, checking and reloading the platform team's tiers, pools and rules.

The model itself (immutable values the pure core reads) is `podtier.webhook.core.policy`; this
package re-exports its names for the edges. Loading files is `podtier.webhook.policy.load`.
"""

from podtier.webhook.core.policy import (
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
