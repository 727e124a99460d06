import gzip
import xml.etree.ElementTree as ET

from ansible_collections.zerotrust.mailstack.plugins.module_utils import dmarc_report as dr

# Two messages from outside.example's mx, one failing from a stranger, one for another domain.
PASSING = """job %s
reporter mx1.corp.example
received %d
ipaddr 10.89.0.14
from outside.example
mfrom outside.example
spf 0
pdomain outside.example
policy 16
rua mailto:postmaster@outside.example,mailto:dmarc@thirdparty.example!10m
pct 100
adkim 115
aspf 115
p 114
sp 0
align_dkim 4
align_spf 4
action 2
dkim outside.example mail 0
"""
HISTORY = (
    PASSING % ("4A1B2C", 1796000000)
    + PASSING % ("4A1B2D", 1796000100)
    + """job 4A1B2E
reporter mx1.corp.example
received 1796000200
ipaddr 192.0.2.66
from outside.example
mfrom stranger.test
spf 7
pdomain outside.example
policy 16
rua mailto:postmaster@outside.example
pct 100
adkim 115
aspf 115
p 114
sp 0
align_dkim 5
align_spf 5
action 1
job 4A1B2F
reporter mx1.corp.example
received 1796000300
ipaddr 198.51.100.7
from news.example
mfrom news.example
spf 0
pdomain news.example
policy 16
rua -
pct 100
adkim 114
aspf 114
p 110
sp 113
align_dkim 5
align_spf 4
action 2
"""
)
SUFFIXES = {"example", "test"}


def test_history_blocks_are_read_as_messages():
    records = dr.parse_history(HISTORY)
    assert [r["job"] for r in records] == ["4A1B2C", "4A1B2D", "4A1B2E", "4A1B2F"]
    assert records[0]["dkim"] == [("outside.example", "mail", 0)]
    assert records[0]["rua"] == ["mailto:postmaster@outside.example,mailto:dmarc@thirdparty.example!10m"]
    assert records[3]["rua"] == [] and records[2]["spf"] == 7


def test_messages_are_counted_per_domain_and_outcome():
    reports = dr.aggregate(dr.parse_history(HISTORY))
    assert sorted(reports) == ["news.example", "outside.example"]
    rows = reports["outside.example"]["rows"]
    assert sorted(rows.values()) == [1, 2]
    passing = [key for key, count in rows.items() if count == 2][0]
    assert passing[:4] == ("10.89.0.14", "none", "pass", "pass")


def test_the_report_follows_the_aggregate_schema():
    reports = dr.aggregate(dr.parse_history(HISTORY))
    xml = dr.report_xml("outside.example", reports["outside.example"], "corp.example", "dmarc@corp.example", "r1", 1, 2)
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    assert root.findtext("report_metadata/org_name") == "corp.example"
    assert root.findtext("report_metadata/date_range/begin") == "1"
    assert root.findtext("policy_published/p") == "reject"
    assert root.findtext("policy_published/sp") == "reject"  # none published: p applies
    assert root.findtext("policy_published/adkim") == "s"
    rows = {r.findtext("row/source_ip"): r for r in root.findall("record")}
    good, bad = rows["10.89.0.14"], rows["192.0.2.66"]
    assert good.findtext("row/count") == "2" and good.findtext("row/policy_evaluated/disposition") == "none"
    assert good.findtext("auth_results/dkim/selector") == "mail" and good.findtext("auth_results/dkim/result") == "pass"
    assert bad.findtext("row/policy_evaluated/disposition") == "reject"
    assert bad.findtext("auth_results/spf/domain") == "stranger.test"
    assert bad.findtext("auth_results/spf/result") == "fail" and bad.find("auth_results/dkim") is None
    news_xml = dr.report_xml("news.example", reports["news.example"], "o", "e@o.example", "r2", 1, 2)
    news = ET.fromstring(news_xml)  # noqa: S314 - our own output
    assert news.findtext("policy_published/p") == "none" and news.findtext("policy_published/sp") == "quarantine"


def test_reports_go_to_the_domains_own_addresses_and_to_others_only_with_their_consent():
    rua = ["mailto:postmaster@outside.example,mailto:dmarc@thirdparty.example!10m", "https://x.example/r"]
    assert dr.recipients(rua, "outside.example", SUFFIXES, lambda policy, domain: False) == [
        "postmaster@outside.example"
    ]
    asked = []
    consent = dr.recipients(rua, "outside.example", SUFFIXES, lambda policy, domain: asked.append(domain) or True)
    assert consent == ["postmaster@outside.example", "dmarc@thirdparty.example"]
    assert asked == ["thirdparty.example"]
    # A subdomain's reports may go to its organization's address.
    assert dr.recipients(["mailto:r@outside.example"], "reject.outside.example", SUFFIXES, lambda p, d: False) == [
        "r@outside.example"
    ]


def test_organizational_domains_come_from_the_suffix_list():
    suffixes = dr.load_suffixes("// comment\nexample\n*.ck\n!www.ck\nco.uk\n")
    assert suffixes == {"example", "co.uk"}
    assert dr.organization("a.b.corp.example", suffixes) == "corp.example"
    assert dr.organization("mail.shop.co.uk", suffixes) == "shop.co.uk"


def test_the_report_travels_gzipped_with_the_subject_rfc_7489_asks_for():
    message = dr.report_message("outside.example", b"<feedback/>", "corp.example", "dmarc@corp.example",
                                ["postmaster@outside.example"], "r1", 10, 20)  # fmt: skip
    assert message["Subject"] == "Report Domain: outside.example Submitter: corp.example Report-ID: <r1>"
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "corp.example!outside.example!10!20.xml.gz"
    assert gzip.decompress(attachment.get_payload(decode=True)) == b"<feedback/>"
