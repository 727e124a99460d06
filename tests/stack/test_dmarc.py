"""ZT-DMARC-01..04: the mx checks every message from outside against its sender
domain's SPF, DKIM and DMARC, refuses what a p=reject domain disowns (our own
domains first), holds what a p=quarantine domain disowns, and says what it found
in Authentication-Results headers of its own, which no sender can forge.

Messages go in from the outside peer as raw SMTP sessions (swaks), signed or not
with outside.example's DKIM key (made on the peer by the opendkim role, published
by the stack's name server), and are looked for in the mailbox on imap or in the
mx's queue.
"""

import base64
import email.utils
import json
import re
import time

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import auth_results
from conftest import fqdn, sh, wait_for
from test_content_filter import delivered

MX = fqdn("mx")
PEER = fqdn("ext")
OUTSIDE_KEY = "/etc/dkimkeys/outside.example/mail.private"


def new_marker(kind):
    return "dmarc-%s-%d" % (kind, time.time() * 1000)


def send(marker, header_from, extra_headers=(), sign=False, envelope="peer@outside.example", source=None, ehlo=PEER):
    """Send one message from the outside peer to demo (from its address `source`, if given);
    the swaks transcript."""
    headers = list(extra_headers) + [
        "From: %s" % header_from,
        "To: demo@corp.example",
        "Subject: %s" % marker,
        "Date: %s" % email.utils.formatdate(),
        "Message-Id: <%s@outside.example>" % marker,
    ]
    message = "\r\n".join(headers) + "\r\n\r\nhello\r\n"
    path = "/tmp/%s.eml" % marker
    # base64 on the way: a header may hold quotes, "%" or "$" the shell must not read.
    encoded = base64.b64encode(message.encode()).decode()
    sh("ext", "printf %%s '%s' | base64 -d > %s" % (encoded, path), check=True)
    if sign:
        sh(
            "ext",
            "dkimsign mail outside.example %s < %s > %s.signed && mv %s.signed %s" % ((OUTSIDE_KEY,) + (path,) * 4),
            check=True,
        )
        assert "DKIM-Signature:" in sh("ext", "cat %s" % path).stdout
    return sh(
        "ext",
        "swaks --server %s --tls --ehlo %s --from '%s' --to demo@corp.example --data @%s%s"
        % (MX, ehlo, envelope, path, " --local-interface %s" % source if source else ""),
    ).stdout


def delivered_headers(marker):
    assert wait_for(lambda: delivered(marker), 120), "%s never reached the mailbox" % marker
    (path,) = delivered(marker)
    return sh("imap", "sed '/^$/q' %s" % path, check=True).stdout


def our_headers(headers):
    """The values of the Authentication-Results headers of the mx's authserv-id, unfolded."""
    unfolded = headers.replace("\n\t", " ").replace("\n ", " ")
    lines = [line for line in unfolded.splitlines() if line.lower().startswith("authentication-results:")]
    values = [line.split(":", 1)[1] for line in lines]
    return [values[index - 1] for index in auth_results.our_indexes(values, MX)]


def our_results(headers):
    """The results in the mx's Authentication-Results header, which is one (ZT-DMARC-02)."""
    ours = our_headers(headers)
    assert len(ours) == 1, headers
    return auth_results.parse(ours[0])[1]


def result(results, method):
    (found,) = [r for r in results if r.startswith(method + "=")]
    return found.split()[0].split("=")[1].rstrip(";")


def test_our_domain_publishes_spf_and_dmarc_that_disown_every_other_sender():
    spf = sh("ext", "dig +short TXT corp.example", check=True).stdout
    assert '"v=spf1 ' in spf and ' -all"' in spf, spf
    dmarc = sh("ext", "dig +short TXT _dmarc.corp.example", check=True).stdout
    assert '"v=DMARC1; p=reject;' in dmarc and "rua=mailto:postmaster@corp.example" in dmarc, dmarc


def test_signed_mail_from_outside_passes_spf_dkim_and_dmarc():
    marker = new_marker("signed")
    assert "250 2.0.0 Ok: queued" in send(marker, "Peer <peer@outside.example>", sign=True)
    results = our_results(delivered_headers(marker))
    assert [result(results, m) for m in ("spf", "dkim", "dmarc")] == ["pass", "pass", "pass"], results


@pytest.mark.parametrize(
    "header_from",
    [
        "CEO <ceo@corp.example>",
        # A subdomain falls under our policy (sp=reject) even though the public suffix
        # list does not know our top-level name (.example here, .internal elsewhere).
        "CEO <ceo@x.corp.example>",
        "Shop <orders@x.reject.outside.example>",
        # Forms a mail client reads as ceo@corp.example but OpenDMARC did not.
        "ceo @ corp . example",
        "CEO <ceo@corp.example <peer@outside.example>>",
        "CEO <ceo@[10.0.0.1]>",
    ],
    ids=["own", "own-subdomain", "p-reject-subdomain", "spaced", "nested", "literal"],
)
def test_mail_from_outside_in_our_domains_name_is_refused(header_from):
    # The impersonation the review found: From: ceo@corp.example from outside, and the
    # forms a red-team pass got through. The twin above (the peer's own domain,
    # signed) is delivered.
    marker = new_marker("forged-own")
    out = send(marker, header_from, sign=True)
    assert "550 5.7.1" in out and "queued" not in out, out[-1500:]
    time.sleep(5)
    assert not delivered(marker)


def test_a_p_reject_domain_disowning_a_message_gets_it_refused():
    # reject.outside.example publishes p=reject with strict alignment: the peer's SPF
    # and DKIM (outside.example) are not its. Unsigned mail in the peer's own name,
    # which SPF alone aligns, is delivered.
    refused, accepted = new_marker("p-reject"), new_marker("spf-aligned")
    out = send(refused, "Shop <orders@reject.outside.example>", sign=True)
    assert "550 5.7.1" in out and "queued" not in out, out[-1500:]
    assert "250 2.0.0 Ok: queued" in send(accepted, "Peer <peer@outside.example>")
    results = our_results(delivered_headers(accepted))
    assert [result(results, m) for m in ("spf", "dkim", "dmarc")] == ["pass", "none", "pass"], results
    assert not delivered(refused)


def mx_queue():
    listing = sh("mx", "postqueue -j", check=True).stdout
    return [json.loads(line) for line in listing.splitlines() if line.strip()]


def test_a_p_quarantine_domain_disowning_a_message_gets_it_held():
    marker = new_marker("p-quarantine")
    assert "250 2.0.0 Ok: queued" in send(marker, "News <news@quarantine.outside.example>")
    held = lambda: [m for m in mx_queue() if m["queue_name"] == "hold" and m["sender"] == "peer@outside.example"]  # noqa: E731
    assert wait_for(held, 30), mx_queue()
    assert any(marker in sh("mx", "postcat -hq %s" % m["queue_id"]).stdout for m in held())
    time.sleep(5)
    assert not delivered(marker)
    for message in held():
        sh("mx", "postsuper -d %s hold" % message["queue_id"], check=True)


def test_authentication_results_in_our_name_from_outside_are_removed():
    # A sender writes the verdicts it would like, in our name, in every form RFC 8601
    # allows (letter case, a version, a comment or a fold before the id, a quoted id, a
    # trailing dot, an ARC copy, too many results for OpenDKIM to parse): they are all
    # gone; only the mx's own verdicts remain. Another server's header is left as it came.
    marker = new_marker("verdicts")
    forged = [
        "%s; dkim=pass header.d=forged1.example" % MX,
        "%s 1; spf=pass smtp.mailfrom=forged2.example" % MX.upper(),
        "%s;\r\n\tdmarc=pass header.from=forged3.example" % MX,
        "(x) %s; dmarc=pass header.from=forged4.example" % MX,
        "\r\n (checked)\r\n %s;\r\n spf=pass smtp.mailfrom=forged5.example" % MX,
        '"%s"; dmarc=pass header.from=forged6.example' % MX,
        "%s.; dmarc=pass header.from=forged7.example" % MX,
        "%s; %s" % (MX, "; ".join("dkim=pass header.d=forged8.example" for _ in range(17))),
    ]
    headers = ["Authentication-Results: " + value for value in forged]
    headers.append("ARC-Authentication-Results: i=1; %s; dmarc=pass header.from=forged9.example" % MX)
    headers.append("Authentication-Results: relay.outside.example; arc=none")
    assert "250 2.0.0 Ok: queued" in send(marker, "Peer <peer@outside.example>", headers)
    delivered = delivered_headers(marker)
    results = our_results(delivered)
    # The checkers' own results alone (OpenDKIM adds dkim-atps for an unsigned message).
    assert sorted(r.split("=")[0] for r in results) == ["dkim", "dkim-atps", "dmarc", "spf"], results
    assert [result(results, m) for m in ("spf", "dkim", "dmarc")] == ["pass", "none", "pass"], results
    assert not re.search(r"forged[0-9]\.example", delivered), delivered
    assert "Authentication-Results: relay.outside.example; arc=none" in delivered, delivered


def sent_while_down(service, socket, marker, header_from):
    """Send signed mail from outside while the mx's `service` is stopped, then again once it
    is back; the delivered copy's headers. A checker that does not answer makes the mx
    answer 4xx (the sender keeps the message and retries), never take it unchecked."""
    sh("mx", "systemctl stop %s" % service, check=True)
    try:
        out = send(marker, header_from, sign=True)
        # 4xx at the first command after the milter is missed (STARTTLS or MAIL).
        assert re.search(r"^<\S*\s+4[0-9][0-9] ", out, re.M) and "queued" not in out, out[-1500:]
    finally:
        sh("mx", "systemctl start %s" % service, check=True)
    assert wait_for(lambda: sh("mx", "test -S %s" % socket).returncode == 0, 30)
    assert "250 2.0.0 Ok: queued" in send(marker, header_from, sign=True)
    return delivered_headers(marker)


def test_mail_waits_while_opendmarc_is_down_then_is_taken():
    socket = "/var/spool/postfix/opendmarc/opendmarc.sock"
    headers = sent_while_down("opendmarc", socket, new_marker("milter-down"), "Peer <peer@outside.example>")
    results = our_results(headers)
    assert [result(results, m) for m in ("spf", "dkim", "dmarc")] == ["pass", "pass", "pass"], results
