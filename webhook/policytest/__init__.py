"""`podtier policy test`: YAML test suites for policy files, runnable in CI without Python code.

suite file ─► policy files, input pods, cluster state ─► admission.mutate + validate
           ─► got (tier, pool, allowed, warnings, patched pod) vs expected ─► diffs
"""

from podtier.webhook.policytest.report import junit_xml, render_text
from podtier.webhook.policytest.run import CaseResult, SuiteResult, run_suite
from podtier.webhook.policytest.suite import Expectation, Suite, SuiteError, find_suites, load_suite

__all__ = [
    "CaseResult",
    "Expectation",
    "Suite",
    "SuiteError",
    "SuiteResult",
    "find_suites",
    "junit_xml",
    "load_suite",
    "render_text",
    "run_suite",
]
