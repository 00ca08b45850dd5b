"""Policy files shipped with podtier: the default policy, examples, and the JSON Schema."""

from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parent
DEFAULT_POLICY = POLICY_DIR / "default.yaml"
SCHEMA = POLICY_DIR / "schema.json"
