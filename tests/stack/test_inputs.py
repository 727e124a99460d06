"""ZT-IN-01: a bad inventory value stops the run before any host changes."""

import json
import re

import pytest
from conftest import run_playbook


def recap_changes(output):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


@pytest.mark.parametrize(
    "extra, variable, reason",
    [
        ({"mailstack_domain": "corp.example\nrelay_domains = *"}, "mailstack_domain", "control character"),
        ({"dns_allow_recursion": ["10.0.0.1/8"]}, "dns_allow_recursion[0]", "CIDR"),
        ({"base_journal_persistent": "maybe"}, "base_journal_persistent", "bool"),
        ({"pki_extra_sans": ["mail corp"]}, "pki_extra_sans[0]", "host name"),
    ],
)
def test_bad_input_fails_before_any_change(extra, variable, reason):
    run = run_playbook("playbooks/site.yml", "-e", json.dumps(extra))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    # A type error is caught by Ansible's own check of the entry point's argument spec,
    # the rest by validate_inputs; both stop the run before any host changes.
    refused = "invalid input" in output or "Validation of arguments failed" in output
    assert refused and variable in output and reason in output, output[-3000:]
    changes = recap_changes(run.stdout)
    assert changes and set(changes.values()) == {0}, changes
