"""ZT-ID, ZT-AUTH, ZT-LDAP: mail logins need the password and a fresh TOTP code, or a
scoped, unexpired, unrevoked app password (device-bound ones only with a device
certificate); the directory refuses anonymous and cleartext binds and hides secrets.

Users are enrolled through playbooks/user_enroll.yml and revoked through
playbooks/user_revoke.yml, as an operator would; logins are real IMAP sessions
from the controller to the imap container, with the server certificate verified.
"""

import contextlib
import imaplib
import ipaddress
import json
import os
import re
import secrets
import shlex
import smtplib
import ssl
import stat
import string
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from conftest import ROOT, STATE, container, copy_to, fqdn, recap_changed, run_playbook, sh, wait_for

from ansible_collections.zerotrust.mailstack.plugins.module_utils import mail_auth  # (conftest: the collection)

CA = STATE / "ca.pem"
CREDENTIALS = STATE / "credentials"
DEVICES = STATE / "pki" / "devices"
IMAP_NAME = fqdn("imap")
PEOPLE = "ou=people,dc=corp,dc=example"
LOG_LINE = re.compile(
    r"^auth result=fail reason=(?P<reason>\S+) service=(?P<service>\S+) user=(?P<user>\S+) rip=(?P<rip>\S+)"
)

# The last TOTP step each user logged in with during this session: a step is accepted once.
_USED_STEPS = {}


# --- helpers -------------------------------------------------------------------


def credentials(login):
    return json.loads((CREDENTIALS / ("%s.json" % login)).read_text())


def enroll(login, *extra):
    """Run user_enroll.yml; (result, ids of the app passwords it added, credentials)."""
    before = set(credentials(login)["app_passwords"]) if (CREDENTIALS / ("%s.json" % login)).exists() else set()
    args = ["playbooks/user_enroll.yml", "-e", "user=%s" % login]
    for item in extra:
        args += ["-e", item]
    result = run_playbook(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    creds = credentials(login)
    return result, sorted(set(creds["app_passwords"]) - before), creds


def revoke(login, *extra):
    args = ["playbooks/user_revoke.yml", "-e", "user=%s" % login]
    for item in extra:
        args += ["-e", item]
    return run_playbook(*args)


class _Imap(imaplib.IMAP4_SSL):
    """IMAP over TLS to an address, verifying the certificate for the server's name."""

    def _create_socket(self, timeout):
        sock = imaplib.IMAP4._create_socket(self, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=IMAP_NAME)


def imap_login(address, user, password, cert=None):
    """True when LOGIN succeeds; then SELECT INBOX must work too."""
    context = ssl.create_default_context(cafile=str(CA))
    if cert:
        context.load_cert_chain(str(DEVICES / ("%s.pem" % cert)), str(DEVICES / ("%s.key" % cert)))
    client = _Imap(address, 993, ssl_context=context, timeout=30)
    try:
        try:
            client.login(user, password)
        except imaplib.IMAP4.error:
            return False
        status, _ = client.select("INBOX")
        assert status == "OK", "logged in, but SELECT INBOX failed"
        return True
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def fresh_code(login, secret):
    """A code of a time step this user has not logged in with yet and the server takes now:
    the current step's (not about to roll over), else the next step's, which the server's
    window of one step each way already takes, else the next step's once it has begun."""
    while True:
        now = time.time()
        current = int(now // mail_auth.TOTP_PERIOD)
        last = _USED_STEPS.get(login, -1)
        if current > last and now % mail_auth.TOTP_PERIOD < 25:
            step = current
        elif current + 1 > last:
            step = current + 1
        else:
            time.sleep(mail_auth.TOTP_PERIOD - now % mail_auth.TOTP_PERIOD + 0.2)
            continue
        _USED_STEPS[login] = step
        return mail_auth.totp(secret, step), step


def wrong_code(secret):
    """A code no step within the accepted window (±1, with margin) produces."""
    step = int(time.time() // mail_auth.TOTP_PERIOD)
    valid = {mail_auth.totp(secret, s) for s in range(step - 3, step + 4)}
    code = secrets.randbelow(10**6)
    while "%06d" % code in valid:
        code = (code + 1) % 10**6
    return "%06d" % code


# IMAP logins are checked on the imap host, SMTP logins on the mx (ZT-AUTH-05).
def last_auth_line(user, host="imap"):
    out = sh(host, "journalctl -u mailstack-authd -o cat -n 300 --no-pager", check=True).stdout
    lines = [line for line in out.splitlines() if line.startswith("auth ") and " user=%s " % user in line]
    assert lines, "no auth line for %s in the daemon's log on %s" % (user, host)
    return lines[-1]


def reason_of(user, host="imap"):
    return re.search(r"reason=(\S+)", last_auth_line(user, host)).group(1)


def ldapsearch(address, *args):
    """ldapsearch from the controller to the ldap container.

    The controller cannot resolve the stack's names, so the certificate name is not
    checked here (test_pki checks it); the CA still must have signed it.
    """
    env = dict(os.environ, LDAPTLS_CACERT=str(CA), LDAPTLS_REQCERT="allow")
    return subprocess.run(
        ["ldapsearch", "-LLL", "-o", "nettimeout=10", "-H", "ldap://%s" % address, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def ldap_bind(address, dn, password):
    """A simple bind over StartTLS that reads the entry itself; the ldapsearch result."""
    return ldapsearch(address, "-ZZ", "-x", "-D", dn, "-w", password, "-s", "base", "-b", dn, "uid")


def ldapi(ldif, command="ldapmodify"):
    """A root write through ldapi in the ldap container (test set-up only)."""
    result = subprocess.run(
        ["podman", "exec", "-i", container("ldap"), command, "-Q", "-Y", "EXTERNAL", "-H", "ldapi:///"],
        input=ldif,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def root_search(base, *args):
    command = "ldapsearch -Q -LLL -Y EXTERNAL -H ldapi:/// -b '%s' %s" % (base, " ".join(args))
    return sh("ldap", command, check=True).stdout


# --- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def imap(addresses):
    return addresses["imap"]


@pytest.fixture(scope="module")
def enrolled():
    """alice: new password and TOTP, an imap-only app password `laptop`;
    bob: new password and TOTP, a device-bound app password `phone` with a device certificate;
    demo: new password and TOTP (for the throttle and lockout tests).

    The throttle tests count failures from the controller's and the outside peer's
    addresses; the login check keeps those per source for 15 minutes, across enrolments.
    A run of this file within 15 minutes of another would start with them, so the
    per-source counts are cleared first (as an operator lifting a throttle would), and
    again at the end: the tests after this file log in from the same addresses."""
    clear = "find /var/lib/mailstack-auth/.sources -mindepth 1 -type f -delete"
    sh("imap", clear, check=True)
    _, alice_apps, alice = enroll("alice", "new_password=true", "new_totp=true", "app_name=laptop", "app_scopes=imap")
    _, bob_apps, bob = enroll(
        "bob", "new_password=true", "new_totp=true", "app_name=phone", "app_device_bound=true", "device_cert=true"
    )
    _, _, demo = enroll("demo", "new_password=true", "new_totp=true")
    assert len(alice_apps) == 1 and len(bob_apps) == 1
    yield {
        "alice": alice,
        "alice_laptop": alice["app_passwords"][alice_apps[0]]["secret"],
        "bob": bob,
        "bob_phone": bob["app_passwords"][bob_apps[0]]["secret"],
        "demo": demo,
    }
    sh("imap", clear, check=True)


# --- enrollment ----------------------------------------------------------------


def test_credentials_file_and_qr_code_are_private(enrolled):
    assert stat.S_IMODE(CREDENTIALS.stat().st_mode) == 0o700
    for name in ("alice.json", "alice-totp.png"):
        assert stat.S_IMODE((CREDENTIALS / name).stat().st_mode) == 0o600, name
    assert (CREDENTIALS / "alice-totp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    alice = enrolled["alice"]
    assert set(alice) >= {"login", "mail", "password", "totp_secret", "otpauth_uri", "app_passwords"}
    assert alice["otpauth_uri"] == mail_auth.otpauth_uri(alice["totp_secret"], "alice@corp.example", "corp.example")
    assert len(alice["password"]) == 20
    assert re.fullmatch(r"[A-Z2-7]{32}", alice["totp_secret"])
    laptop = [app for app in alice["app_passwords"].values() if app["secret"] == enrolled["alice_laptop"]][0]
    assert laptop["name"] == "laptop" and laptop["scopes"] == ["imap"] and laptop["device_bound"] is False
    assert mail_auth.parse_app_password(laptop["secret"])


def test_directory_keeps_hashes_and_the_log_no_secret(enrolled):
    entry = root_search("uid=alice,%s" % PEOPLE, "-s base userPassword")
    assert enrolled["alice"]["password"] not in entry
    assert "userPassword:: " in entry  # base64 of {ARGON2}...
    log = sh("ldap", "journalctl -t mailstack-enroll -o cat --no-pager -n 50", check=True).stdout
    app_id = enrolled["alice_laptop"].split("-")[0]
    assert re.search(r"enroll user=alice changed=\S*app\S* app=%s device=laptop" % app_id, log), log
    for secret in (enrolled["alice"]["password"], enrolled["alice"]["totp_secret"], enrolled["alice_laptop"]):
        assert secret not in log


def test_enrollment_run_again_without_new_flags_changes_nothing(enrolled):
    before = (CREDENTIALS / "alice.json").read_text()
    result, added, _ = enroll("alice")
    assert recap_changed(result.stdout, "ldap") == 0
    assert added == []
    assert (CREDENTIALS / "alice.json").read_text() == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["user=carol"], "not an enabled user"),
        (["user=mallory"], "not an enabled user"),
        (['{"user": "alice\\n"}'], "must be the login of a mail user"),
        (["user=alice", "app_scopes=pop3", "app_name=x"], "app_scopes must be"),
        # Postfix passes no client certificate: such a password could never be used.
        (["user=bob", "app_name=x", "app_device_bound=true", "app_scopes=imap,smtp"], "cannot be scoped to smtp"),
    ],
)
def test_enrollment_refuses_bad_input_before_any_change(extra, message):
    args = ["playbooks/user_enroll.yml"]
    for item in extra:
        args += ["-e", item]
    result = run_playbook(*args)
    assert result.returncode != 0
    assert message in result.stdout
    assert recap_changed(result.stdout, "ldap") == 0


# --- password + TOTP -----------------------------------------------------------


def test_password_alone_is_refused(enrolled, imap):
    assert not imap_login(imap, "alice", enrolled["alice"]["password"])
    assert reason_of("alice") == "totp-missing"


def test_password_and_current_code_log_in(enrolled, imap):
    code, _ = fresh_code("alice", enrolled["alice"]["totp_secret"])
    assert imap_login(imap, "alice", enrolled["alice"]["password"] + code)


def test_replayed_code_is_refused(enrolled, imap):
    code, _ = fresh_code("alice", enrolled["alice"]["totp_secret"])
    assert imap_login(imap, "alice", enrolled["alice"]["password"] + code)
    assert not imap_login(imap, "alice", enrolled["alice"]["password"] + code)
    assert reason_of("alice") == "totp-replayed"


# A second auth host: another mailstack-authd on the imap container with the same
# directory and service account but its own state directory and socket, as a second
# IMAP host of the group runs it. Asked directly, in the daemon's line protocol.
PEER_UNIT = "mailstack-authd-peer"
PEER_CONFIG = "/etc/mailstack/authd-peer.json"
PEER_SOCKET = "/run/%s/auth.sock" % PEER_UNIT
PEER_CLIENT = r"""
import socket, sys
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
    client.settimeout(30)
    client.connect(sys.argv[1])
    client.sendall(sys.stdin.buffer.read())
    client.shutdown(socket.SHUT_WR)
    sys.stdout.buffer.write(client.makefile("rb").readline())
"""


def _imap_exec(command, data):
    """A command in the imap container with `data` on stdin (passwords stay out of argv)."""
    result = subprocess.run(
        ["podman", "exec", "-i", container("imap"), *command], input=data, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, (command, result.stderr)
    return result.stdout


@contextlib.contextmanager
def second_auth_host():
    config = json.loads(sh("imap", "cat /etc/mailstack/authd.json", check=True).stdout)
    config.update(socket=PEER_SOCKET, state_dir="/var/lib/%s" % PEER_UNIT)
    try:
        _imap_exec(
            ["sh", "-c", "umask 027 && cat > %s && chgrp mailstack-auth %s" % (PEER_CONFIG, PEER_CONFIG)],
            json.dumps(config),
        )
        run = (
            "systemd-run --unit=%s --collect -p User=mailstack-auth -p Group=mailstack-auth"
            " -p RuntimeDirectory=%s -p StateDirectory=%s -p StateDirectoryMode=0700 -p UMask=0077"
            " /usr/local/sbin/mailstack-authd %s" % (PEER_UNIT, PEER_UNIT, PEER_UNIT, PEER_CONFIG)
        )
        sh("imap", run, check=True)
        assert wait_for(lambda: sh("imap", "test -S %s" % PEER_SOCKET).returncode == 0, 30), sh(
            "imap", "journalctl -u %s -o cat --no-pager -n 20" % PEER_UNIT
        ).stdout
        yield
    finally:
        sh("imap", "systemctl stop %s; systemctl reset-failed %s" % (PEER_UNIT, PEER_UNIT))
        sh("imap", "rm -f %s; rm -rf /var/lib/%s" % (PEER_CONFIG, PEER_UNIT))


def ask_second_auth_host(user, password, rip="192.0.2.99"):
    """The second daemon's (kind, value) for an IMAP login of `user`."""
    line = mail_auth.format_request("AUTH", "imap", user, password, rip, "")
    return mail_auth.parse_reply(_imap_exec(["python3", "-c", PEER_CLIENT, PEER_SOCKET], line))


def test_code_accepted_by_one_auth_host_is_refused_by_another(enrolled, imap):
    """Issue 9 item 4: the last used step lives in the directory, claimed by compare-and-swap,
    not in each host's state directory, so a code is accepted once across all auth hosts."""
    alice = enrolled["alice"]
    entry = "uid=alice,%s" % PEOPLE
    with second_auth_host():
        code, step = fresh_code("alice", alice["totp_secret"])
        assert imap_login(imap, "alice", alice["password"] + code)  # Dovecot and the first daemon
        assert "mailstackTotpLastStep: %d" % step in root_search(entry, "-s base mailstackTotpLastStep")
        assert ask_second_auth_host("alice", alice["password"] + code) == ("FAIL", "totp-replayed")
        # Positive twin: the second host takes a fresh code, which the first then refuses.
        code, step = fresh_code("alice", alice["totp_secret"])
        assert ask_second_auth_host("alice", alice["password"] + code) == ("OK", "alice")
        assert "mailstackTotpLastStep: %d" % step in root_search(entry, "-s base mailstackTotpLastStep")
        assert not imap_login(imap, "alice", alice["password"] + code)
        assert reason_of("alice") == "totp-replayed"
    # And the first host goes on with the next code (which also clears the failure above).
    code, _ = fresh_code("alice", alice["totp_secret"])
    assert imap_login(imap, "alice", alice["password"] + code)


def test_wrong_code_is_refused(enrolled, imap):
    assert not imap_login(imap, "alice", enrolled["alice"]["password"] + wrong_code(enrolled["alice"]["totp_secret"]))
    assert reason_of("alice") == "totp-invalid"


def test_code_from_three_steps_ago_is_refused(enrolled, imap):
    secret = enrolled["alice"]["totp_secret"]
    step = int(time.time() // mail_auth.TOTP_PERIOD)
    current = {mail_auth.totp(secret, s) for s in range(step - 1, step + 3)}
    # The code of the newest step at least three back that no current step shares.
    old = next(code for code in (mail_auth.totp(secret, step - k) for k in range(3, 50)) if code not in current)
    assert not imap_login(imap, "alice", enrolled["alice"]["password"] + old)
    assert reason_of("alice") == "totp-invalid"


def test_failed_login_is_logged_for_fail2ban(enrolled, imap):
    assert not imap_login(imap, "alice", "not-the-password" + wrong_code(enrolled["alice"]["totp_secret"]))
    match = LOG_LINE.match(last_auth_line("alice"))
    assert match, last_auth_line("alice")
    assert match.group("user") == "alice" and match.group("service") == "imap"
    ipaddress.ip_address(match.group("rip"))  # a real address fail2ban can ban


# --- app passwords -------------------------------------------------------------


def test_app_password_with_imap_scope_logs_in(enrolled, imap):
    assert imap_login(imap, "alice", enrolled["alice_laptop"])


def doveadm_auth(host, service, user, password):
    return sh(host, "doveadm auth test -x service=%s %s '%s'" % (service, user, password))


def test_each_auth_host_checks_only_its_own_service_doveadm(enrolled):
    """Asked directly (doveadm, as root), the imap host checks IMAP logins only and the
    mx SMTP logins only (ZT-AUTH-05); the mx also enforces the app password's scope."""
    laptop = enrolled["alice_laptop"]  # imap scope only
    imap_ok = doveadm_auth("imap", "imap", "alice", laptop)
    assert imap_ok.returncode == 0, imap_ok.stdout + imap_ok.stderr
    for host, service, reason in (
        ("imap", "smtp", "service-not-served"),
        ("mx", "imap", "service-not-served"),
        ("mx", "smtp", "app-scope"),
    ):
        refused = doveadm_auth(host, service, "alice", laptop)
        assert refused.returncode != 0 and "auth failed" in refused.stdout + refused.stderr, (host, service)
        assert reason_of("alice", host) == reason, (host, service)


def test_expired_app_password_is_refused(enrolled, imap):
    _, added, creds = enroll("alice", "app_name=expired", "app_days=0", "app_scopes=imap")
    app = creds["app_passwords"][added[0]]
    assert app["name"] == "expired"
    assert not imap_login(imap, "alice", app["secret"])
    assert reason_of("alice") == "app-expired"


def test_revoked_app_password_is_refused_at_once(enrolled, imap):
    _, added, creds = enroll("alice", "app_name=tablet", "app_scopes=imap")
    secret = creds["app_passwords"][added[0]]["secret"]
    assert imap_login(imap, "alice", secret)
    result = revoke("alice", "app=%s" % added[0])
    assert result.returncode == 0, result.stdout[-3000:]
    assert not imap_login(imap, "alice", secret)
    assert "mailstackAppId=%s" % added[0] not in root_search("uid=alice,%s" % PEOPLE, "-s one dn")
    assert added[0] not in credentials("alice")["app_passwords"]
    # The other app passwords stay.
    assert imap_login(imap, "alice", enrolled["alice_laptop"])


def test_a_revoke_that_cannot_read_the_credentials_file_leaves_the_account_whole(enrolled, imap):
    """The credentials document is worked out before anything is revoked: a file the run
    cannot read stops it with the app password still working (never halfway, with no log
    line and no kick). With the file back, the same revoke goes through."""
    _, added, creds = enroll("alice", "app_name=probe", "app_scopes=imap")
    secret = creds["app_passwords"][added[0]]["secret"]
    document = CREDENTIALS / "alice.json"
    kept = document.read_bytes()
    document.write_text("[]\n")
    try:
        refused = revoke("alice", "app=%s" % added[0])
    finally:
        document.write_bytes(kept)
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert recap_changed(refused.stdout, "ldap") == 0
    assert imap_login(imap, "alice", secret)
    result = revoke("alice", "app=%s" % added[0])
    assert result.returncode == 0, result.stdout[-3000:]
    assert not imap_login(imap, "alice", secret)


def test_a_whole_app_password_pasted_as_the_app_id_is_refused_and_never_shown(enrolled):
    secret = enrolled["alice_laptop"]
    refused = revoke("alice", "app=%s" % secret)
    assert refused.returncode != 0 and "app must be an 8-character app id" in refused.stdout
    assert secret.split("-", 1)[1] not in refused.stdout + refused.stderr
    assert recap_changed(refused.stdout, "ldap") == 0


def test_revoking_an_unknown_app_id_or_nothing_is_an_error():
    unknown = revoke("alice", "app=zzzzzzzz")
    assert unknown.returncode != 0 and "alice has no app password zzzzzzzz" in unknown.stdout
    nothing = revoke("alice")
    assert nothing.returncode != 0 and "name exactly one thing to revoke" in nothing.stdout
    assert recap_changed(unknown.stdout, "ldap") == 0 and recap_changed(nothing.stdout, "ldap") == 0


def test_device_bound_app_password_needs_the_device_certificate(enrolled, imap):
    assert not imap_login(imap, "bob", enrolled["bob_phone"])
    assert reason_of("bob") == "app-device"
    assert imap_login(imap, "bob", enrolled["bob_phone"], cert="bob-phone")


def test_device_bound_app_password_is_for_imap_only(enrolled, addresses):
    """Only Dovecot's TLS front end verifies the device certificate: enrolled without
    scopes, a device-bound password is good for imap alone, and SMTP AUTH refuses it."""
    phone = [app for app in enrolled["bob"]["app_passwords"].values() if app["secret"] == enrolled["bob_phone"]][0]
    assert phone["scopes"] == ["imap"] and phone["device_bound"] is True
    assert smtp_auth_code(addresses["mx"], "bob", enrolled["bob_phone"]) in (535, 454)
    assert reason_of("bob", "mx") == "app-scope"


def test_revoked_device_loses_its_app_passwords_and_certificate(imap):
    _, added, creds = enroll("bob", "app_name=spare", "app_device_bound=true", "device_cert=true")
    secret = creds["app_passwords"][added[0]]["secret"]
    assert imap_login(imap, "bob", secret, cert="bob-spare")
    result = revoke("bob", "device=spare")
    assert result.returncode == 0, result.stdout[-3000:]
    assert not (DEVICES / "bob-spare.pem").exists()
    assert (DEVICES / "revoked" / "bob-spare.pem").exists()
    assert "mailstackDevice: spare" not in root_search("uid=bob,%s" % PEOPLE, "-s one mailstackDevice")
    assert not imap_login(imap, "bob", secret, cert="bob-phone")


# --- disabled and revoked users ------------------------------------------------


def test_disabled_user_cannot_log_in_and_revoke_all_locks_the_account(addresses, imap):
    password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(20))
    secret = mail_auth.new_totp_secret()
    dn = "uid=carol,%s" % PEOPLE
    ldapi(
        "dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n-\n"
        "replace: mailstackTotpSecret\nmailstackTotpSecret: %s\n" % (dn, password, secret)
    )
    code, _ = fresh_code("carol", secret)
    assert not imap_login(imap, "carol", password + code)
    assert reason_of("carol") == "disabled"

    result = revoke("carol", "all=true")
    assert result.returncode == 0, result.stdout[-3000:]
    entry = root_search(dn, "-s base mailstackEnabled mailstackTotpSecret pwdAccountLockedTime")
    assert "mailstackEnabled: FALSE" in entry
    assert "pwdAccountLockedTime: 000001010000Z" in entry
    assert "mailstackTotpSecret" not in entry
    bind = ldapsearch(addresses["ldap"], "-ZZ", "-x", "-D", dn, "-w", password, "-s", "base", "-b", dn, "uid")
    assert bind.returncode == 49, bind.stdout + bind.stderr  # invalid credentials: password replaced, account locked


# --- SMTP submission (Postfix asks the same Dovecot auth service) ---------------

MX_NAME = fqdn("mx")


@contextlib.contextmanager
def submission(address):
    """An SMTP session on 587 after STARTTLS, the server verified as the MX."""
    client = smtplib.SMTP(address, 587, local_hostname="client.corp.example", timeout=30)
    try:
        client._host = MX_NAME  # the name STARTTLS verifies the certificate for
        client.starttls(context=ssl.create_default_context(cafile=str(CA)))
        client.ehlo("client.corp.example")
        yield client
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()


def smtp_auth_code(address, user, password):
    with submission(address) as client:
        try:
            return client.login(user, password)[0]
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code


def test_submission_refuses_the_password_alone(enrolled, addresses):
    # Refused either way: 535, or 454 when Dovecot's per-address auth penalty (up to 15 s,
    # grown by the failed logins of the tests before this one from the same controller
    # address) outlasts Postfix's wait for the SASL answer.
    assert smtp_auth_code(addresses["mx"], "alice", enrolled["alice"]["password"]) in (535, 454)


def test_submission_with_password_and_code_sends_mail_the_outside_receives(enrolled, addresses):
    marker = "submission-probe-%d" % time.time()
    code, _ = fresh_code("alice", enrolled["alice"]["totp_secret"])
    with submission(addresses["mx"]) as client:
        assert client.login("alice", enrolled["alice"]["password"] + code)[0] == 235
        refused = client.sendmail(
            "alice@corp.example",
            ["peer@outside.example"],
            "From: alice@corp.example\r\nSubject: %s\r\n\r\nhello\r\n" % marker,
        )
        assert refused == {}
    assert wait_for(
        lambda: sh("ext", "grep -rl '%s' /var/mail/vhosts/outside.example/peer/new/" % marker).returncode == 0
    ), "the outside peer never received the submitted message"


def test_submission_refuses_a_sender_address_of_another_user(enrolled, addresses):
    code, _ = fresh_code("alice", enrolled["alice"]["totp_secret"])
    with submission(addresses["mx"]) as client:
        assert client.login("alice", enrolled["alice"]["password"] + code)[0] == 235
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(
                "bob@corp.example", ["peer@outside.example"], "From: bob@corp.example\r\nSubject: spoof\r\n\r\nx\r\n"
            )
        code_, message = refused.value.recipients["peer@outside.example"]
        assert code_ == 553 and b"not owned by user alice" in message


def test_imap_only_app_password_is_refused_by_smtp_auth(enrolled, addresses):
    assert smtp_auth_code(addresses["mx"], "alice", enrolled["alice_laptop"]) == 535
    assert reason_of("alice", "mx") == "app-scope"


def test_smtp_scoped_app_password_sends_but_cannot_read_mail(enrolled, addresses, imap):
    _, (app_id,), creds = enroll("alice", "app_name=mua", "app_scopes=smtp")
    app_password = creds["app_passwords"][app_id]["secret"]
    with submission(addresses["mx"]) as client:
        assert client.login("alice", app_password)[0] == 235
        assert (
            client.sendmail(
                "alice@corp.example", ["peer@outside.example"], "From: alice@corp.example\r\nSubject: app\r\n\r\nx\r\n"
            )
            == {}
        )
    assert not imap_login(imap, "alice", app_password)
    assert reason_of("alice") == "app-scope"


# bob may send to 3 recipients an hour (inventories/local/group_vars/mx.yml).
BOB_HOURLY_LIMIT = 3
FORGET_COUNTS = (
    "import sqlite3; db = sqlite3.connect('/var/lib/policyd-rate-limit/db.sqlite3');"
    " db.execute('DELETE FROM mail_count'); db.commit()"
)


@pytest.fixture()
def bob_sender(enrolled):
    """An smtp-scoped app password of bob's, his sending counters cleared first."""
    _, (app_id,), creds = enroll("bob", "app_name=mailer", "app_scopes=smtp")
    sh("mx", 'python3 -c "%s"' % FORGET_COUNTS, check=True)
    return creds["app_passwords"][app_id]["secret"]


def send_as_bob(client, marker):
    return client.sendmail(
        "bob@corp.example", ["peer@outside.example"], "From: bob@corp.example\r\nSubject: %s\r\n\r\nx\r\n" % marker
    )


def refusal_of_bob(client, marker):
    """(code, text) of the refusal of one message: at RCPT (policyd-rate-limit 1.0) or DATA (1.2)."""
    try:
        send_as_bob(client, marker)
    except smtplib.SMTPRecipientsRefused as exc:
        return exc.recipients["peer@outside.example"]
    except smtplib.SMTPDataError as exc:
        return exc.smtp_code, exc.smtp_error
    raise AssertionError("the message was accepted")


def test_sending_limit_defers_mail_past_the_hourly_threshold(enrolled, bob_sender, addresses):
    with submission(addresses["mx"]) as client:
        assert client.login("bob", bob_sender)[0] == 235
        for number in range(BOB_HOURLY_LIMIT):
            assert send_as_bob(client, "limit-%d" % number) == {}
        code, text = refusal_of_bob(client, "limit-over")
        assert code == 450 and b"Sending limit of this login reached" in text, text
    # Counted per login: alice still sends.
    code, _ = fresh_code("alice", enrolled["alice"]["totp_secret"])
    with submission(addresses["mx"]) as client:
        assert client.login("alice", enrolled["alice"]["password"] + code)[0] == 235
        assert (
            client.sendmail(
                "alice@corp.example",
                ["peer@outside.example"],
                "From: alice@corp.example\r\nSubject: other\r\n\r\nx\r\n",
            )
            == {}
        )


def test_sending_limit_service_down_defers_mail_never_accepts_it(bob_sender, addresses):
    sh("mx", "systemctl stop policyd-rate-limit", check=True)
    try:
        with submission(addresses["mx"]) as client:
            assert client.login("bob", bob_sender)[0] == 235
            code, text = refusal_of_bob(client, "limit-service-down")
            assert code // 100 == 4, text
    finally:
        sh("mx", "systemctl start policyd-rate-limit", check=True)
    assert wait_for(lambda: sh("mx", "test -S /var/spool/postfix/ratelimit/policy").returncode == 0, 20)
    with submission(addresses["mx"]) as client:
        assert client.login("bob", bob_sender)[0] == 235
        assert send_as_bob(client, "limit-service-back") == {}


def test_mail_from_outside_is_delivered_over_lmtp_and_readable_over_imap(enrolled, imap):
    marker = "inbound-lmtp-%d" % time.time()
    out = sh(
        "ext",
        "swaks --server %s --tls --ehlo %s --from peer@outside.example "
        "--to alice@corp.example --header 'Subject: %s'" % (MX_NAME, fqdn("ext"), marker),
    )
    assert "250 2.0.0 Ok: queued" in out.stdout, out.stdout[-1500:]
    assert wait_for(lambda: sh("imap", "grep -rl '%s' /var/vmail/alice/Maildir/new/" % marker).returncode == 0)
    log = sh("mx", "journalctl -t postfix/lmtp --no-pager -n 50").stdout
    assert "Verified TLS connection established to %s" % IMAP_NAME in log
    # Every directory of the mailbox is the virtual user's alone.
    modes = sh("imap", "find /var/vmail/alice -type d -printf '%m %u\\n' | sort -u", check=True).stdout.split("\n")
    assert [m for m in modes if m] == ["700 vmail"]
    context = ssl.create_default_context(cafile=str(CA))
    client = _Imap(imap, 993, ssl_context=context, timeout=30)
    try:
        client.login("alice", enrolled["alice_laptop"])
        client.select("INBOX", readonly=True)
        status, found = client.search(None, "SUBJECT", '"%s"' % marker)
        assert status == "OK" and found[0].split(), "the delivered message is not in alice's INBOX"
    finally:
        client.logout()


def test_directory_outage_fails_logins_temporarily_never_open(enrolled, addresses, imap):
    sh("ldap", "systemctl stop slapd", check=True)
    try:
        code, _ = fresh_code("bob", enrolled["bob"]["totp_secret"])
        client = _Imap(imap, 993, ssl_context=ssl.create_default_context(cafile=str(CA)), timeout=30)
        try:
            with pytest.raises(imaplib.IMAP4.error, match=r"UNAVAILABLE"):
                client.login("bob", enrolled["bob"]["password"] + code)
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                client.logout()
        assert reason_of("bob") == "directory-unavailable"
        # SMTP AUTH fails too. Dovecot marks the failure temporary, but Postfix's
        # Dovecot SASL client answers 535 to every failure reply (454 only when it
        # loses the auth connection). Refused either way, never accepted.
        code, _ = fresh_code("bob", enrolled["bob"]["totp_secret"])
        assert smtp_auth_code(addresses["mx"], "bob", enrolled["bob"]["password"] + code) in (454, 535)
        assert reason_of("bob", "mx") == "directory-unavailable"
        # Inbound mail waits too: the recipient cannot be checked, so RCPT is deferred.
        with smtplib.SMTP(addresses["mx"], 25, local_hostname="client.outside.example", timeout=30) as client:
            client.ehlo()
            assert client.mail("peer@outside.example")[0] == 250
            assert client.rcpt("bob@corp.example")[0] // 100 == 4
    finally:
        sh("ldap", "systemctl start slapd", check=True)
    code, _ = fresh_code("bob", enrolled["bob"]["totp_secret"])
    assert wait_for(lambda: imap_login(imap, "bob", enrolled["bob"]["password"] + code), 20)


# --- the directory -------------------------------------------------------------


def test_anonymous_bind_is_refused(addresses):
    out = ldapsearch(addresses["ldap"], "-ZZ", "-x", "-b", "dc=corp,dc=example", "uid")
    assert out.returncode != 0
    assert "anonymous bind disallowed" in out.stderr


def test_bind_without_tls_is_refused(enrolled, addresses):
    out = ldapsearch(
        addresses["ldap"], "-x", "-D", "uid=alice,%s" % PEOPLE, "-w", enrolled["alice"]["password"], "-b", PEOPLE
    )
    assert out.returncode != 0
    assert "Confidentiality required" in out.stderr


def test_user_cannot_read_totp_secrets_or_app_password_hashes(enrolled, addresses):
    bind = ["-ZZ", "-x", "-D", "uid=alice,%s" % PEOPLE, "-w", enrolled["alice"]["password"]]
    own = ldapsearch(addresses["ldap"], *bind, "-b", "uid=alice,%s" % PEOPLE, "-s", "sub", "*")
    assert own.returncode == 0, own.stderr
    assert "mail: alice@corp.example" in own.stdout  # the bind worked and she reads her own entry
    assert "mailstackTotpSecret" not in own.stdout
    assert "userPassword" not in own.stdout
    bob = ldapsearch(addresses["ldap"], *bind, "-b", "uid=bob,%s" % PEOPLE, "-s", "sub", "*")
    assert bob.returncode in (0, 32), bob.stderr  # 32: bob's entry is invisible to her
    assert "mailstackTotpSecret" not in bob.stdout and "userPassword" not in bob.stdout


def test_user_changes_her_own_password_but_no_one_elses(enrolled, addresses, imap):
    alice = enrolled["alice"]
    alice_dn, bob_dn = "uid=alice,%s" % PEOPLE, "uid=bob,%s" % PEOPLE
    new = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
    env = dict(os.environ, LDAPTLS_CACERT=str(CA), LDAPTLS_REQCERT="allow")

    def ldappasswd(*args):
        command = ["ldappasswd", "-o", "nettimeout=10", "-H", "ldap://%s" % addresses["ldap"], "-ZZ", "-x", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    changed = ldappasswd("-D", alice_dn, "-w", alice["password"], "-s", new)
    assert changed.returncode == 0, changed.stderr
    old, alice["password"] = alice["password"], new  # later tests log in with the new one
    assert ldap_bind(addresses["ldap"], alice_dn, new).returncode == 0
    assert ldap_bind(addresses["ldap"], alice_dn, old).returncode == 49
    code, _ = fresh_code("alice", alice["totp_secret"])
    assert imap_login(imap, "alice", new + code)
    stored = root_search(alice_dn, "-s base userPassword")
    assert "userPassword:: " in stored and new not in stored  # hashed by the directory
    other = ldappasswd("-D", alice_dn, "-w", new, "-s", "x" * 24, bob_dn)
    assert other.returncode != 0 and "Insufficient access (50)" in other.stdout, other.stdout + other.stderr
    assert ldap_bind(addresses["ldap"], bob_dn, enrolled["bob"]["password"]).returncode == 0


def test_user_leaving_the_inventory_is_disabled_and_locked(addresses):
    """dave joins the inventory, gets a password, leaves it: he can neither bind nor receive mail."""
    inventory = yaml.safe_load((ROOT / "inventories" / "local" / "group_vars" / "all.yml").read_text())
    users = inventory["mailstack_users"]
    dave = {"login": "dave", "name": "Dave Example", "mail": "dave@corp.example"}
    dn = "uid=dave,%s" % PEOPLE
    extra = STATE / "users-test.json"

    def converge(listed):
        extra.write_text(json.dumps({"mailstack_users": listed}))
        result = run_playbook("tests/stack/playbooks/users.yml", "-e", "@%s" % extra)
        assert result.returncode == 0, result.stdout[-3000:]

    def rcpt_code():
        with smtplib.SMTP(addresses["mx"], 25, local_hostname="client.outside.example", timeout=30) as client:
            client.ehlo()
            assert client.mail("peer@outside.example")[0] == 250
            return client.rcpt("dave@corp.example")[0]

    try:
        converge(users + [dave])
        password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
        sh("ldap", "ldappasswd -Q -Y EXTERNAL -H ldapi:/// -s '%s' '%s'" % (password, dn), check=True)
        assert ldap_bind(addresses["ldap"], dn, password).returncode == 0
        assert "mailstackEnabled: TRUE" in root_search(dn, "-s base mailstackEnabled")
        assert rcpt_code() == 250

        converge(users)
        entry = root_search(dn, "-s base mailstackEnabled pwdAccountLockedTime mail")
        assert "mailstackEnabled: FALSE" in entry and "pwdAccountLockedTime: 000001010000Z" in entry
        assert "mail: dave@corp.example" in entry  # disabled, not deleted: the mailbox stays his
        assert ldap_bind(addresses["ldap"], dn, password).returncode == 49
        assert rcpt_code() == 550  # unknown at RCPT: no mail accepted for a departed user
    finally:
        extra.unlink(missing_ok=True)


# --- throttling and lockout (last: they refuse addresses for 15 minutes) ---------

# Logins from the outside peer: (service, password) pairs tried one after another from ext,
# IMAP on 993 and SMTP AUTH on 587 after STARTTLS, both servers verified by name.
EXT_LOGINS = r"""
import concurrent.futures, imaplib, json, smtplib, ssl, sys
user, attempts, imap_name, mx_name = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile="/tmp/mailstack-ca.pem")

def attempt(service, password):
    if service == "imap":
        client = imaplib.IMAP4_SSL(imap_name, 993, ssl_context=context, timeout=60)
        try:
            client.login(user, password)
            return "ok"
        except imaplib.IMAP4.error as exc:
            return "refused: %s" % exc
        finally:
            try:
                client.logout()
            except Exception:
                pass
    with smtplib.SMTP(mx_name, 587, local_hostname="client.outside.example", timeout=60) as client:
        client.starttls(context=context)
        client.ehlo("client.outside.example")
        try:
            client.login(user, password)
            return "ok"
        except smtplib.SMTPAuthenticationError as exc:
            return "refused: %s" % exc.smtp_code

# All at once, as an attacker would: the throttle must hold against a burst, not only a queue.
# At most 10 together: Postfix's per-client concurrency limit.
with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
    print(json.dumps(list(pool.map(lambda a: attempt(*a), attempts))))
"""


def ext_logins(user, attempts):
    """Results ("ok" or "refused: ...") of logins from the outside peer, one per attempt."""
    copy_to("ext", CA, "/tmp/mailstack-ca.pem")
    command = " ".join(
        shlex.quote(arg) for arg in ["python3", "-c", EXT_LOGINS, user, json.dumps(attempts), IMAP_NAME, MX_NAME]
    )
    out = sh("ext", command, check=True, timeout=600)
    return json.loads(out.stdout)


def auth_lines_since(since, user, rip, host="imap"):
    """The daemon's log lines on `host` for `user` from `rip` since unix time `since`."""
    out = sh(host, "journalctl -u mailstack-authd -o cat --no-pager --since @%d" % since, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("auth ") and " user=%s rip=%s" % (user, rip) in line]


def test_outsider_cannot_lock_a_user_out(enrolled, addresses, imap):
    """20 failed IMAP and SMTP logins for alice from the outside peer, in one burst: the peer
    is refused after 5 evaluated ones, slapd counts none of them, and alice from another address (the
    controller) logs in at once with password + code, over IMAP and SMTP."""
    alice = enrolled["alice"]
    dn = "uid=alice,%s" % PEOPLE
    policy_before = root_search(dn, "-s base pwdFailureTime pwdAccountLockedTime")
    since = int(time.time()) - 1
    attempts = [
        ("imap" if n % 2 else "smtp", "guess-%s%s" % (secrets.token_hex(4), wrong_code(alice["totp_secret"])))
        for n in range(20)
    ]
    results = ext_logins("alice", attempts)
    assert len(results) == 20 and not any(r == "ok" for r in results), results
    # Each auth host counts its own logins: IMAP on imap, SMTP on mx. smtplib tries each
    # mechanism Postfix offers (PLAIN, then LOGIN): at least one line a login.
    for host, service in (("imap", "imap"), ("mx", "smtp")):
        lines = auth_lines_since(since, "alice", addresses["ext"], host)
        assert len(lines) >= 10 and all(" service=%s " % service in line for line in lines), (host, lines)
        reasons = [re.search(r"reason=(\S+)", line).group(1) for line in lines]
        evaluated = [r for r in reasons if r != "source-throttled"]
        assert len(evaluated) <= 5 and reasons.count("source-throttled") >= 5, (host, reasons)
    # No wrong code reached the directory: the password policy counted nothing, locked nothing.
    assert root_search(dn, "-s base pwdFailureTime pwdAccountLockedTime") == policy_before
    # Positive twin: alice, from the controller, at once.
    code, _ = fresh_code("alice", alice["totp_secret"])
    assert imap_login(imap, "alice", alice["password"] + code)
    code, _ = fresh_code("alice", alice["totp_secret"])
    with submission(addresses["mx"]) as client:
        assert client.login("alice", alice["password"] + code)[0] == 235
    # The peer itself stays refused for alice, even with her right password and a fresh code.
    code, _ = fresh_code("alice", alice["totp_secret"])
    assert ext_logins("alice", [["imap", alice["password"] + code]]) != ["ok"]
    assert re.search(r"reason=(\S+)", auth_lines_since(since, "alice", addresses["ext"])[-1]).group(1) == (
        "source-throttled"
    )


def test_five_wrong_codes_refuse_that_address_not_the_user(enrolled, addresses, imap):
    demo = enrolled["demo"]
    # All five at once: the throttle counts each attempt before it is evaluated, so a burst
    # gets no more evaluations than a queue (and the server's delays overlap).
    guesses = [demo["password"] + wrong_code(demo["totp_secret"]) for _ in range(5)]
    with ThreadPoolExecutor(max_workers=5) as pool:
        assert not any(pool.map(lambda guess: imap_login(imap, "demo", guess), guesses))
    assert reason_of("demo") == "totp-invalid"
    code, _ = fresh_code("demo", demo["totp_secret"])
    assert not imap_login(imap, "demo", demo["password"] + code)
    assert reason_of("demo") == "source-throttled"
    # From another address (the outside peer) the same login works with the next code.
    code, _ = fresh_code("demo", demo["totp_secret"])
    assert ext_logins("demo", [["imap", demo["password"] + code]]) == ["ok"]


def test_five_wrong_passwords_lock_the_directory_account(enrolled, addresses):
    """ppolicy: five failed binds lock the entry, even against the right password; slapd
    logs each failure with the client address. Unlocked afterwards (a root write)."""
    demo = enrolled["demo"]
    dn = "uid=demo,%s" % PEOPLE
    assert ldap_bind(addresses["ldap"], dn, demo["password"]).returncode == 0
    try:
        for _ in range(5):
            assert ldap_bind(addresses["ldap"], dn, "wrong-" + secrets.token_hex(8)).returncode == 49
        assert ldap_bind(addresses["ldap"], dn, demo["password"]).returncode == 49
        assert "pwdAccountLockedTime:" in root_search(dn, "-s base pwdAccountLockedTime")
        log = sh("ldap", "journalctl -u slapd -o cat --no-pager -n 400", check=True).stdout
        binds = re.findall(r"conn=(\d+) op=\d+ BIND dn=\"%s\"" % re.escape(dn), log)
        failed = [c for c in binds if re.search(r"conn=%s op=\d+ RESULT tag=97 err=49" % c, log)]
        assert len(failed) >= 6, log[-3000:]
        accept = re.search(r"conn=%s fd=\d+ ACCEPT from IP=([0-9.]+):\d+" % failed[-1], log)
        assert accept and ipaddress.ip_address(accept.group(1)), "the failed bind's client address is not logged"
    finally:
        ldapi("dn: %s\nchangetype: modify\ndelete: pwdAccountLockedTime\n" % dn)
    assert ldap_bind(addresses["ldap"], dn, demo["password"]).returncode == 0


def test_enrollment_follows_a_rebuilt_directory(enrolled):
    """The controller's copy of a user's credentials is reconciled with the directory:
    after a rebuild (emulated: demo's password, TOTP secret and app password gone from
    the directory) enrolment issues new secrets and drops the stale app password."""
    _, apps, before = enroll("demo", "app_name=old-client")
    stale = before["app_passwords"][apps[0]]["secret"]
    dn = "uid=demo,%s" % PEOPLE
    ldapi("dn: mailstackAppId=%s,%s\nchangetype: delete\n" % (apps[0], dn))
    ldapi("dn: %s\nchangetype: modify\ndelete: userPassword\n-\ndelete: mailstackTotpSecret\n" % dn)

    _, added, after = enroll("demo")

    assert added == [] and apps[0] not in after["app_passwords"]
    assert after["password"] != before["password"] and after["totp_secret"] != before["totp_secret"]
    code, _ = fresh_code("demo", after["totp_secret"])
    stale_login, new_login = ext_logins("demo", [["imap", stale], ["imap", after["password"] + code]])
    assert stale_login.startswith("refused") and new_login == "ok"


# Run on the imap host as root (as Dovecot's workers may): 64 clients connect at once
# with non-blocking sockets, as lua-socket does, and each asks for one user.
CONNECTION_BURST = """
import socket, threading
start = threading.Barrier(64)
results = []
def ask():
    client = socket.socket(socket.AF_UNIX)
    client.setblocking(False)
    start.wait()
    try:
        client.connect("/run/mailstack-auth/auth.sock")
    except BlockingIOError:
        results.append("refused")
        return
    client.settimeout(20)
    client.sendall(b"USER\\tbob\\n")
    results.append(client.makefile("rb").readline().decode().strip())
threads = [threading.Thread(target=ask) for _ in range(64)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
print(sorted(set(results)), len(results))
"""


def test_auth_daemon_takes_a_burst_of_simultaneous_connections():
    # Every auth worker and LMTP delivery may ask at once. A connection beyond the listen
    # backlog is refused outright, and each refusal becomes a 451 or a failed login.
    out = subprocess.run(
        ["podman", "exec", "-i", container("imap"), "python3", "-"],
        input=CONNECTION_BURST,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert out.strip() == "['OK\\tbob'] 64", out
