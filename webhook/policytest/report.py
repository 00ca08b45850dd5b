"""Suite results as text for people (a diff per failing pod) and as JUnit XML for CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from podtier.webhook.policytest.run import CaseResult, SuiteResult


def render_text(results: Sequence[SuiteResult]) -> str:
    lines = []
    for suite in results:
        policy = f" [policy {suite.policy}]" if suite.policy else ""
        lines.append(f"{suite.file}: {suite.name}{policy}")
        if suite.error:
            lines.append(f"  ERROR {suite.error}")
            continue
        for case in suite.cases:
            if case.passed:
                lines.append(f"  ok    {case.title}")
            elif case.error:
                lines.append(f"  ERROR {case.title} ({case.path}): {case.error}")
            else:
                lines.append(f"  FAIL  {case.title} ({case.path})")
                lines += [
                    f"          {d.field}: expected {d.expected}, got {d.got}"
                    for d in case.differences
                ]
    passed, failed, errors = _counts(results)
    lines.append(f"{passed} passed, {failed} failed, {errors} errors in {len(results)} suites")
    return "\n".join(lines)


def junit_xml(results: Sequence[SuiteResult]) -> bytes:
    root = ET.Element("testsuites", name="podtier policy test")
    for suite in results:
        cases = list(suite.cases)
        element = ET.SubElement(
            root,
            "testsuite",
            name=suite.name,
            file=str(suite.file),
            tests=str(max(len(cases), 1)),
            failures=str(sum(1 for c in cases if c.differences and not c.error)),
            errors=str(1 if suite.error else sum(1 for c in cases if c.error)),
        )
        if suite.error:
            case = ET.SubElement(element, "testcase", classname=suite.name, name="(suite)")
            ET.SubElement(case, "error", message=suite.error).text = suite.error
            continue
        for result in cases:
            _testcase(element, suite, result)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _testcase(parent: ET.Element, suite: SuiteResult, result: CaseResult) -> None:
    case = ET.SubElement(parent, "testcase", classname=suite.name, name=result.title)
    if result.error:
        ET.SubElement(case, "error", message=result.error).text = result.error
    elif result.differences:
        body = "\n".join(
            f"{d.field}: expected {d.expected}, got {d.got}" for d in result.differences
        )
        message = f"{len(result.differences)} field(s) differ: " + ", ".join(
            d.field for d in result.differences
        )
        ET.SubElement(case, "failure", message=message).text = body


def _counts(results: Sequence[SuiteResult]) -> tuple[int, int, int]:
    passed = failed = errors = 0
    for suite in results:
        if suite.error:
            errors += 1
            continue
        for case in suite.cases:
            if case.passed:
                passed += 1
            elif case.error:
                errors += 1
            else:
                failed += 1
    return passed, failed, errors
