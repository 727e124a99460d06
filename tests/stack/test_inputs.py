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
        # An inventory without a filter host: every message would be delivered unscanned.
        ({"postfix_content_filter": ""}, "postfix_content_filter", "unscanned"),
        (
            {"postfix_postscreen_dnsbl_sites": ["zen.example*3\npostscreen_access_list = permit"]},
            "postfix_postscreen_dnsbl_sites[0]",
            "control character",
        ),
        ({"dmarc_policy": "monitor"}, "dmarc_policy", "one of"),
        ({"dmarc_report_addresses": ["a,mailto:x@evil.example"]}, "dmarc_report_addresses[0]", "mail address"),
        # An override that would let mail past the scanners.
        (
            {"amavis_conf": {"@bypass_virus_checks_maps": [1]}},
            "amavis_conf.@bypass_virus_checks_maps",
            "decided by the role",
        ),
    ],
)
def test_bad_input_fails_before_any_change(extra, variable, reason):
    run = run_playbook("playbooks/site.yml", "-e", json.dumps(extra))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    # A type error is caught by Ansible's own check of the entry point's argument spec,
    # the rest by validate_inputs or a filter of this collection; all stop the run before
    # any host changes.
    refused = re.search(r"invalid input|Validation of arguments failed|zerotrust\.mailstack\.\w+: ", output)
    assert refused and variable in output and reason in output, output[-3000:]
    changes = recap_changes(run.stdout)
    assert changes and set(changes.values()) == {0}, changes
