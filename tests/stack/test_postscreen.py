"""ZT-SMTP-12: postscreen answers port 25 first; clients are refused or served by what they do.

The clients are stack hosts that otherwise send no mail, each a new client to postscreen
(its memory of clients is cleared first): the name server stands for a spam robot and the
log host for a sender on a DNS block list; the mailbox host is on that list too, but is
one of the stack's own mail hosts, which postscreen lets through.
"""

import json
import socket

import pytest
from conftest import fqdn, sh, wait_for

# Talks SMTP to the mx from inside a container and prints each reply as a JSON list of
# lines; with "early", it says EHLO before the greeting has ended.
CLIENT = r"""
import json, socket, sys
mx, early = sys.argv[1], sys.argv[2] == "early"
conn = socket.create_connection((mx, 25), timeout=30)
replies = conn.makefile("rb")

pending = []

def reply():
    # A reply ends at its last line, or where another code begins: postscreen answers
    # a client that spoke early without ever ending its greeting.
    lines = []
    while True:
        line = pending.pop() if pending else replies.readline().decode().rstrip("\r\n")
        if lines and line[:3] != lines[0][:3]:
            pending.append(line)
            return lines
        lines.append(line)
        if not line or line[3:4] != "-":
            return lines

def command(text):
    conn.sendall(text.encode() + b"\r\n")
    return reply()

if early:
    conn.sendall(b"EHLO %s\r\n" % sys.argv[3].encode())
    out = [reply(), reply()]
else:
    out = [reply(), command("EHLO " + sys.argv[3])]
out += [command("MAIL FROM:<>"), command("RCPT TO:<demo@corp.example>"), command("QUIT")]
print(json.dumps(out))
"""


def session(host, early=False):
    """The mx's replies to an SMTP session from `host`: greeting, EHLO, MAIL, RCPT, QUIT."""
    out = sh(
        host, "python3 - %s %s %s <<'EOF'\n%s\nEOF" % (fqdn("mx"), "early" if early else "late", fqdn(host), CLIENT)
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def code(reply):
    return int(reply[-1][:3])


@pytest.fixture(scope="module", autouse=True)
def new_clients():
    """postscreen forgets every client it has passed (its cache), as if each were new."""
    sh(
        "mx",
        "systemctl stop postfix && rm -f /var/lib/postfix/postscreen_cache.db && systemctl start postfix",
        check=True,
    )
    assert wait_for(lambda: sh("mx", "ss -Hltn 'sport = :25' | grep -q LISTEN").returncode == 0, 30)


def test_a_client_that_speaks_before_the_greeting_is_refused(addresses):
    greeting, ehlo, mail, rcpt, _ = session("dns", early=True)
    # postscreen held back the end of its greeting; the robot did not wait for it.
    assert greeting == [greeting[0]] and greeting[0].startswith("220-")
    assert code(ehlo) == 250 and code(mail) == 250
    assert rcpt == ["550 5.5.1 Protocol error"], rcpt
    log = sh("mx", "journalctl -t postfix/postscreen -o cat --no-pager --since -5min", check=True).stdout
    assert "PREGREET" in log and "[%s]" % addresses["dns"] in log


def test_the_same_client_waiting_for_the_greeting_is_served():
    greeting, ehlo, mail, rcpt, _ = session("dns")
    assert greeting[0].startswith("220-") and greeting[-1].startswith("220 ")
    assert code(ehlo) == 250 and code(mail) == 250
    assert code(rcpt) == 250, rcpt


def test_a_client_on_a_dns_block_list_is_refused():
    rcpt = session("log")[3]
    assert code(rcpt) == 550 and "blocked using bl.outside.example" in rcpt[-1], rcpt


def test_a_stack_mail_host_on_the_same_list_is_let_through():
    greeting, ehlo, mail, rcpt, _ = session("imap")
    # Not held back either: postscreen passed it to smtpd at once.
    assert greeting == [greeting[0]] and greeting[0].startswith("220 ")
    assert code(rcpt) == 250, rcpt


def test_a_client_on_no_list_is_served():
    rcpt = session("ext")[3]
    assert code(rcpt) == 250, rcpt


def test_what_is_not_smtp_ends_the_session_and_smtp_is_served(addresses):
    """postscreen's own non-SMTP test is off (ZT-SMTP-12); smtpd drops such clients itself."""
    with socket.create_connection((addresses["mx"], 25), timeout=30) as conn:
        replies = conn.makefile("rb")
        while not replies.readline().startswith(b"220 "):
            pass
        conn.sendall(b"POST / HTTP/1.1\r\nHost: mx\r\n\r\n")
        answer = replies.readline()
        assert replies.read() == b""  # closed
    assert answer.startswith(b"221 ")
    assert code(session("ext")[1]) == 250
