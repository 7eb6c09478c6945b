#!/usr/bin/env python3
"""Checks that the promtool tests cover every alert both ways.

promtool passes a test that expects no alert from a misspelt alert name, and it
cannot tell that an alert was never tested. This script fails unless every alert
in the rule file has at least one test where it fires (non-empty exp_alerts)
and one where it must stay quiet (exp_alerts: []), and every alert named in the
tests exists.

Usage: check-alert-tests.py RULES.yaml TESTS.yaml
"""
import sys

import yaml


def main(rules_path: str, tests_path: str) -> int:
    with open(rules_path, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    with open(tests_path, encoding="utf-8") as f:
        tests = yaml.safe_load(f)

    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    fires: dict[str, int] = {a: 0 for a in alerts}
    quiet: dict[str, int] = {a: 0 for a in alerts}
    errors = []
    for test in tests.get("tests", []):
        for case in test.get("alert_rule_test", []):
            name = case["alertname"]
            if name not in fires:
                errors.append(f"test {test.get('name')!r} names unknown alert {name!r}")
                continue
            if case.get("exp_alerts"):
                fires[name] += 1
            else:
                quiet[name] += 1
    for a in alerts:
        if not fires[a]:
            errors.append(f"alert {a} has no test where it fires")
        if not quiet[a]:
            errors.append(f"alert {a} has no test where it stays quiet")
    for e in errors:
        print(f"check-alert-tests: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"check-alert-tests: {len(alerts)} alerts, each tested firing and quiet")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
