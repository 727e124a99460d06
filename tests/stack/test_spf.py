"""ZT-SMTP-14: the mx checks the SPF of mail from outside at RCPT.

plain.example, a domain of the peer's operator in an organization of its own, publishes
SPF naming the peer's MX and no DMARC record: before this check, its name sent from any
address was delivered (DMARC, which judges SPF, has no policy to apply). The peer sends
in its name from its own address and from a second one that no record names.
"""

import re

from conftest import ext_source_address, sh, wait_for
from test_content_filter import delivered
from test_dmarc import delivered_headers, new_marker, our_results, result, send

SENDER = "peer@plain.example"
# A second address of the peer's: plain.example's SPF does not name it.
UNNAMED = 251


def refused_at_rcpt(transcript):
    """The 5.7.23 refusal (SPF) answering RCPT TO, and nothing queued."""
    rcpt = transcript.split("RCPT TO:", 1)[-1]
    return bool(re.search(r"\n<[~*]\* 550 5\.7\.23 ", rcpt)) and "Ok: queued" not in transcript


def test_a_sender_whose_spf_names_the_client_is_accepted():
    marker = new_marker("spf-pass")
    assert "250 2.0.0 Ok: queued" in send(marker, "Peer <%s>" % SENDER, envelope=SENDER)
    results = our_results(delivered_headers(marker))
    assert result(results, "spf") == "pass", results
    assert result(results, "dmarc") == "none", results


def test_a_sender_whose_spf_disowns_the_client_is_refused_at_rcpt():
    marker = new_marker("spf-fail")
    with ext_source_address(UNNAMED) as source:
        transcript = send(marker, "Peer <%s>" % SENDER, envelope=SENDER, source=source)
    assert refused_at_rcpt(transcript), transcript
    assert "SPF" in transcript.split("RCPT TO:", 1)[-1]


def test_a_bounce_from_a_helo_name_whose_spf_disowns_the_client_is_refused():
    """A null sender (a bounce) has only its HELO name to vouch for it: SPF checks that."""
    marker = new_marker("spf-helo")
    with ext_source_address(UNNAMED) as source:
        forged = send(marker, "Mail Delivery <%s>" % SENDER, envelope="<>", source=source, ehlo="plain.example")
        # The twin: the same bounce from the same address under a name without SPF is taken.
        honest = send(marker + "-twin", "Mail Delivery <%s>" % SENDER, envelope="<>", source=source)
    assert refused_at_rcpt(forged), forged
    assert "250 2.0.0 Ok: queued" in honest, honest


def test_mail_waits_while_the_spf_check_is_down_then_is_taken():
    """The checker down (its service gone from master.cf) is a fault: the client is told to
    retry (4xx), nothing is taken unchecked, and its retry once the checker is back is
    checked and taken."""
    marker = new_marker("spf-down")
    take_down = "cp -a /etc/postfix/master.cf /root/master.cf.keep && postconf -MX policyd-spf/unix && postfix reload"
    sh("mx", take_down, check=True)
    try:
        deferred = send(marker, "Peer <%s>" % SENDER, envelope=SENDER)
    finally:
        sh("mx", "cp -a /root/master.cf.keep /etc/postfix/master.cf && postfix reload", check=True)
    assert re.search(r"\n<[~*]\* 4\d\d ", deferred.split("RCPT TO:", 1)[-1]), deferred
    assert "Ok: queued" not in deferred
    assert "250 2.0.0 Ok: queued" in send(marker, "Peer <%s>" % SENDER, envelope=SENDER)
    assert wait_for(lambda: delivered(marker), 120)
    assert len(delivered(marker)) == 1
