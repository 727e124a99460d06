"""ZT-LDAP-07, statically: the slapd ACL grants the service accounts read access
under ou=people only, and write access to nobody but people on their own password.
tests/stack/test_ldap_acl.py proves the same against a running slapd.
"""

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
VARS = yaml.safe_load((ROOT / "roles" / "ldap" / "vars" / "main.yml").read_text())
NAMES = {
    "ldap_suffix": "dc=corp,dc=example",
    "__ldap_people_dn": "ou=people,dc=corp,dc=example",
    "__ldap_services_dn": "ou=services,dc=corp,dc=example",
    "__ldap_groups_dn": "ou=groups,dc=corp,dc=example",
}
PEOPLE_SCOPES = ('dn.children="ou=people,dc=corp,dc=example"', 'dn.base="ou=people,dc=corp,dc=example"')
SERVICES = ("cn=postfix,ou=services,dc=corp,dc=example", "cn=dovecot,ou=services,dc=corp,dc=example")
# The one write a service makes (ZT-AUTH-01): the IMAP auth service's last TOTP step.
STEP_RULE = 'dn.children="ou=people,dc=corp,dc=example" filter=(objectClass=mailstackUser) attrs=mailstackTotpLastStep'
STEP_WRITER = ('dn.exact="cn=dovecot,ou=services,dc=corp,dc=example"', "write")


def rules():
    """(what, [(who, access)]) for each ACL rule, variables filled in."""
    parsed = []
    for rule in VARS["__ldap_acl"]:
        text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: NAMES[m.group(1)], " ".join(rule.split()))
        what, *bys = re.split(r"\s+by\s+", text)
        parsed.append((what.removeprefix("to "), [tuple(b.rsplit(" ", 1)) for b in bys]))
    return parsed


def test_service_accounts_read_only_under_people():
    for what, grants in rules():
        for who, access in grants:
            if any(service in who for service in SERVICES):
                if (what, (who, access)) == (STEP_RULE, STEP_WRITER):
                    continue
                assert access == "read", (what, who, access)
                assert what.startswith(PEOPLE_SCOPES) or what == "attrs=mailstackTotpSecret", what


def test_only_people_may_write_and_only_their_own_password():
    for what, grants in rules():
        for who, access in grants:
            if access not in ("none", "read", "auth"):
                if (what, (who, access)) == (STEP_RULE, STEP_WRITER):
                    continue
                assert who == "self" and access == "=w", (what, who, access)
                assert what == 'dn.children="ou=people,dc=corp,dc=example" attrs=userPassword', what


def test_last_totp_step_is_written_by_the_imap_auth_service_alone():
    """Exactly one rule names the attribute, before any rule that could grant users
    (`self`) access to it: first match wins, so no user resets her replay protection."""
    parsed = rules()
    naming = [n for n, (what, _) in enumerate(parsed) if "mailstackTotpLastStep" in what]
    assert len(naming) == 1 and parsed[naming[0]] == (STEP_RULE, [STEP_WRITER, ("*", "none")])
    broader = [
        n for n, (what, grants) in enumerate(parsed) if "attrs=" not in what and any(who != "*" for who, _ in grants)
    ]
    assert all(naming[0] < n for n in broader), (naming, broader)
