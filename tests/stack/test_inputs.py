"""ZT-IN-01: a bad inventory value stops the run before any host changes."""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import run_playbook

# Each run stops in the validation play, before any host changes: nothing the mail tests use moves.
pytestmark = pytest.mark.beside_mail_flow


def recap_changes(output):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


BAD_INPUTS = [
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
    # A line of its own in the report daemon's configuration.
    ({"tlsrpt_sender": "postmaster@corp.example\nlog_level = debug"}, "tlsrpt_sender", "control character"),
    # The hosts install what the controller fetched: only a wheel over https, checked by its hash.
    (
        {"tlsrpt_reporter_url": "http://mirror.example/tlsrpt_reporter-0.6.0-py3-none-any.whl"},
        "tlsrpt_reporter_url",
        "https URL",
    ),
    # An override that would let mail past the scanners.
    (
        {"amavis_conf": {"@bypass_virus_checks_maps": [1]}},
        "amavis_conf.@bypass_virus_checks_maps",
        "decided by the role",
    ),
]


@pytest.fixture(scope="module")
def runs():
    """Each bad input's run, three at a time: they all stop in the validation play, which
    changes nothing, so they cannot disturb one another (and a run that did change a host
    fails its own test)."""
    extras = [json.dumps(extra) for extra, _, _ in BAD_INPUTS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = pool.map(lambda extra: run_playbook("playbooks/site.yml", "-e", extra), extras)
        return dict(zip(extras, results, strict=True))


@pytest.mark.parametrize("extra, variable, reason", BAD_INPUTS)
def test_bad_input_fails_before_any_change(runs, extra, variable, reason):
    run = runs[json.dumps(extra)]
    output = run.stdout + run.stderr
    assert run.returncode != 0
    # A type error is caught by Ansible's own check of the entry point's argument spec,
    # the rest by validate_inputs or a filter of this collection; all stop the run before
    # any host changes.
    refused = re.search(r"invalid input|Validation of arguments failed|zerotrust\.mailstack\.\w+: ", output)
    assert refused and variable in output and reason in output, output[-3000:]
    changes = recap_changes(run.stdout)
    assert changes and set(changes.values()) == {0}, changes
