"""Policies: the platform team's tiers, pools and rules, as immutable values."""

from webhook.policy.load import (
    load_policy,
    load_policy_text,
    parse_policy_documents,
    read_policy_files,
)
from webhook.policy.model import (
    LabelSelector,
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
    "LabelSelector",
    "Policy",
    "PolicyError",
    "Pool",
    "Quantity",
    "Rule",
    "RuleMatch",
    "Scaling",
    "Tier",
    "load_policy",
    "load_policy_text",
    "parse_policy_documents",
    "read_policy_files",
]
