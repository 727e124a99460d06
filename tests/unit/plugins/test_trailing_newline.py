"""ZT-IN-01: no validator lets a trailing newline through.

Python's `$` also matches just before a final newline, so `^name$` accepted
"name\\n"; every pattern is used with fullmatch (or ends in \\Z).
"""

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dns_zone, dovecot_config, firewall
from ansible_collections.zerotrust.mailstack.plugins.module_utils import postfix_config as pc
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

MASTER = {"type": "inet", "command": "smtpd"}
CALLS = {
    "nft flow name": lambda x: firewall.nft_rules([{"name": "smtp" + x, "port": 25}], {}),
    "zone owner": lambda x: dns_zone.normalize_records([{"name": "mx" + x, "type": "A", "value": "192.0.2.1"}]),
    "TLSA data": lambda x: dns_zone.format_rdata("TLSA", "3 1 1 abcdef" + x, "v"),
    "CAA data": lambda x: dns_zone.format_rdata("CAA", '0 issue "ca.example"' + x, "v"),
    "main.cf name": lambda x: pc.check_param_name("myhostname" + x, "p"),
    "master.cf name": lambda x: pc.render_master_cf({"smtp": dict(MASTER, name="smtp" + x)}),
    "master.cf command": lambda x: pc.render_master_cf({"smtp": dict(MASTER, command="smtpd" + x)}),
    "master.cf flag": lambda x: pc.render_master_cf({"smtp": dict(MASTER, maxproc="10" + x)}),
    "dovecot setting": lambda x: dovecot_config.render_dovecot_conf({"protocols" + x: "imap"}),
    "dovecot section": lambda x: dovecot_config.render_dovecot_conf({"service imap" + x: {"vsz_limit": 0}}),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_trailing_newline_is_refused(name):
    CALLS[name]("")  # the value itself is fine
    with pytest.raises(InputError):
        CALLS[name]("\n")
