"""ZT-LDAP-07: the postfix and dovecot service accounts read only what their lookups
need under ou=people and write nothing, not even their own password.

Each probe binds as the service account over StartTLS from the controller, with the
password the ldap role keeps in the controller's state directory. The writes that
must be refused would write the value already stored, so a regression changes nothing.
"""

import os
import subprocess

import pytest
from conftest import STATE, run_playbook
from test_identity import CA, PEOPLE, ldapsearch, root_search

SUFFIX = "dc=corp,dc=example"
GROUPS = "ou=groups,%s" % SUFFIX
SERVICES = ["postfix", "dovecot"]


def service_dn(service):
    return "cn=%s,ou=services,%s" % (service, SUFFIX)


def bind(service):
    password = (STATE / "secrets" / ("ldap-%s" % service)).read_text().strip()
    return ["-ZZ", "-x", "-D", service_dn(service), "-w", password]


def as_service(addresses, service, *args):
    return ldapsearch(addresses["ldap"], *bind(service), *args)


def modify_as(addresses, service, ldif):
    env = dict(os.environ, LDAPTLS_CACERT=str(CA), LDAPTLS_REQCERT="allow")
    command = ["ldapmodify", "-o", "nettimeout=10", "-H", "ldap://%s" % addresses["ldap"], *bind(service)]
    return subprocess.run(command, input=ldif, capture_output=True, text=True, env=env, timeout=60)


def assert_refused(result):
    assert result.returncode == 50 and "Insufficient access" in result.stderr, (result.returncode, result.stderr)


@pytest.fixture(scope="module")
def totp_user():
    """A user holding a TOTP secret and an app password (enrolled here if none is)."""
    for login in ("alice", "demo"):
        dn = "uid=%s,%s" % (login, PEOPLE)
        has_totp = "mailstackTotpSecret:" in root_search(dn, "-s base mailstackTotpSecret")
        if has_totp and "mailstackAppId:" in root_search(dn, "-s one mailstackAppId"):
            return login
    result = run_playbook("playbooks/user_enroll.yml", "-e", "user=demo", "-e", "app_name=acl-probe")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return "demo"


@pytest.mark.parametrize("service", SERVICES)
def test_service_account_reads_no_group(addresses, service):
    assert "dn: cn=staff,%s" % GROUPS in root_search(GROUPS, "-s one dn")  # there is something to hide
    found = as_service(addresses, service, "-b", GROUPS, "-s", "sub", "(objectClass=*)", "dn", "member")
    assert found.returncode in (0, 32), found.stderr  # 32: the subtree is invisible
    assert "dn:" not in found.stdout and "member" not in found.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_service_account_cannot_change_its_own_password(addresses, service):
    password = bind(service)[-1]
    ldif = "dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n" % (service_dn(service), password)
    assert_refused(modify_as(addresses, service, ldif))
    assert as_service(addresses, service, "-s", "base", "-b", service_dn(service), "dn").returncode in (0, 32)


@pytest.mark.parametrize("service", SERVICES)
def test_service_account_cannot_write_a_user(addresses, service):
    dn = "uid=bob,%s" % PEOPLE
    current = root_search(dn, "-s base mailstackEnabled").split("mailstackEnabled: ")[1].split()[0]
    ldif = "dn: %s\nchangetype: modify\nreplace: mailstackEnabled\nmailstackEnabled: %s\n" % (dn, current)
    assert_refused(modify_as(addresses, service, ldif))


def test_postfix_reads_what_its_maps_need_and_no_secret(addresses, totp_user):
    # The query of roles/postfix's maps (__postfix_ldap_filter) for bob's address.
    address = "bob@corp.example"
    query = "(&(objectClass=mailstackUser)(mailstackEnabled=TRUE)(|(mail=%s)(mailstackAlias=%s)))" % (address, address)
    found = as_service(addresses, "postfix", "-b", PEOPLE, "-s", "sub", query, "mail", "uid")
    assert found.returncode == 0, found.stderr
    assert "mail: bob@corp.example" in found.stdout and "uid: bob" in found.stdout
    user = "uid=%s,%s" % (totp_user, PEOPLE)
    secrets = as_service(addresses, "postfix", "-b", user, "-s", "sub", "(objectClass=*)", "*")
    assert "mailstackTotpSecret" not in secrets.stdout and "userPassword" not in secrets.stdout
    assert "mailstackAppId" not in secrets.stdout  # app passwords are the IMAP auth service's business


def test_dovecot_reads_the_totp_secret_and_app_passwords_but_no_hash(addresses, totp_user):
    user = "uid=%s,%s" % (totp_user, PEOPLE)
    own = as_service(
        addresses, "dovecot", "-b", user, "-s", "base", "uid", "mail", "mailstackEnabled", "mailstackTotpSecret"
    )
    assert own.returncode == 0, own.stderr
    stored = root_search(user, "-s base mailstackTotpSecret").split("mailstackTotpSecret: ")[1].split()[0]
    assert "mailstackTotpSecret: %s" % stored in own.stdout and "mailstackEnabled: TRUE" in own.stdout
    apps = as_service(addresses, "dovecot", "-b", user, "-s", "one", "(objectClass=mailstackAppPassword)", "*")
    assert apps.returncode == 0 and "mailstackAppId:" in apps.stdout and "mailstackScope:" in apps.stdout
    assert "userPassword" not in apps.stdout
