# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DMARC aggregate reports (RFC 7489 section 7.2) from OpenDMARC's history file.

OpenDMARC writes one block of "key value" lines per message it judged (HistoryFile);
its own report tools need a MySQL database. This module reads the blocks, counts them
per policy domain, and writes the XML report and the message that carries it to each
address the domain's record asks for (`rua=mailto:`), but only to an address outside
the domain's organization when that organization agrees to receive them (RFC 7489
section 7.1): otherwise a record could make us mail reports to anyone.

Standard library only: the report job imports this file as it is on the mail host.
"""

import email.message
import email.utils
import gzip
import re
import xml.etree.ElementTree as ET

# OpenDMARC's numeric codes in the history file, as its own report tool reads them.
_RESULTS = {0: "pass", 2: "softfail", 3: "neutral", 4: "temperror", 5: "permerror", 6: "none", 7: "fail", 8: "policy"}
_DISPOSITIONS = {0: "reject", 1: "reject", 2: "none", 4: "quarantine"}
_ALIGNMENT = {4: "pass", 5: "fail"}
_POLICIES = {ord("n"): "none", ord("q"): "quarantine", ord("r"): "reject"}
_MODES = {ord("r"): "r", ord("s"): "s"}
_INTEGER_KEYS = ("received", "spf", "policy", "pct", "adkim", "aspf", "p", "sp", "align_dkim", "align_spf", "action")
_MAILTO = re.compile(r"mailto:([^!,\s]+@[A-Za-z0-9.-]+)(?:![0-9]+[kmgt]?)?", re.IGNORECASE)


def parse_history(text):
    """The messages of a history file: one dict per `job` block, codes as integers."""
    records, current = [], None
    for line in text.splitlines():
        key, _sep, rest = line.partition(" ")
        if not key or line.startswith(" "):
            continue
        if key == "job":
            current = {"job": rest, "rua": [], "dkim": []}
            records.append(current)
        elif current is None:
            continue
        elif key == "dkim":
            domain, selector, result = (rest.split(" ") + ["", "", ""])[:3]
            current["dkim"].append((domain.lower(), selector, _int(result)))
        elif key == "rua":
            if rest != "-":
                current["rua"].append(rest)
        elif key in _INTEGER_KEYS:
            current[key] = _int(rest)
        else:
            current[key] = rest.lower() if key in ("from", "mfrom", "pdomain") else rest
    return records


def _int(text):
    try:
        return int(text)
    except ValueError:
        return -1


def load_suffixes(text):
    """The plain rules of a public suffix list (wildcard and exception rules are left out:
    none of them is a domain that publishes DMARC records)."""
    rules = set()
    for line in text.splitlines():
        rule = line.strip().lower()
        if rule and not rule.startswith(("//", "*", "!")):
            rules.add(rule.split()[0])
    return rules


def organization(domain, suffixes):
    """The organizational domain: one label more than the longest public suffix it ends in."""
    labels = domain.lower().rstrip(".").split(".")
    for start in range(len(labels)):
        if ".".join(labels[start:]) in suffixes:
            return ".".join(labels[max(start - 1, 0) :])
    return ".".join(labels[-2:])


def recipients(rua, policy_domain, suffixes, authorized):
    """The mailto: addresses of `rua` that may get the policy domain's reports.

    An address outside the policy domain's organization gets them only when
    `authorized(policy_domain, address_domain)` (the <policy>._report._dmarc.<domain>
    record says yes)."""
    found = []
    for uri in ",".join(rua).split(","):
        match = _MAILTO.fullmatch(uri.strip())
        if not match:
            continue
        address = match.group(1).lower()
        domain = address.rpartition("@")[2]
        same = organization(domain, suffixes) == organization(policy_domain, suffixes)
        if (same or authorized(policy_domain, domain)) and address not in found:
            found.append(address)
    return found


def _row_key(record):
    return (
        record.get("ipaddr", ""),
        _DISPOSITIONS.get(record.get("action"), "none"),
        _ALIGNMENT.get(record.get("align_dkim"), "fail"),
        _ALIGNMENT.get(record.get("align_spf"), "fail"),
        record.get("from", ""),
        record.get("mfrom", ""),
        _RESULTS.get(record.get("spf"), "none"),
        tuple((domain, selector, _RESULTS.get(result, "none")) for domain, selector, result in record["dkim"]),
    )


def aggregate(records):
    """{policy domain: {"policy": the last record's published policy, "rua": [...], "rows": {key: count}}}."""
    reports = {}
    for record in records:
        domain = record.get("pdomain")
        if not domain:
            continue
        report = reports.setdefault(domain, {"rows": {}})
        report["policy"] = {key: record.get(key) for key in ("adkim", "aspf", "p", "sp", "pct")}
        report["rua"] = record["rua"] or report.get("rua", [])
        key = _row_key(record)
        report["rows"][key] = report["rows"].get(key, 0) + 1
    return reports


def _add(parent, tag, text=None):
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def report_xml(domain, report, org_name, org_email, report_id, begin, end):
    """The aggregate report (RFC 7489 appendix C) of one policy domain, as XML bytes."""
    feedback = ET.Element("feedback")
    _add(feedback, "version", "1.0")
    metadata = _add(feedback, "report_metadata")
    _add(metadata, "org_name", org_name)
    _add(metadata, "email", org_email)
    _add(metadata, "report_id", report_id)
    window = _add(metadata, "date_range")
    _add(window, "begin", begin)
    _add(window, "end", end)
    policy, published = report["policy"], _add(feedback, "policy_published")
    _add(published, "domain", domain)
    _add(published, "adkim", _MODES.get(policy["adkim"], "r"))
    _add(published, "aspf", _MODES.get(policy["aspf"], "r"))
    _add(published, "p", _POLICIES.get(policy["p"], "none"))
    _add(published, "sp", _POLICIES.get(policy["sp"]) or _POLICIES.get(policy["p"], "none"))
    _add(published, "pct", policy["pct"] if isinstance(policy["pct"], int) and 0 <= policy["pct"] <= 100 else 100)
    for key, count in sorted(report["rows"].items()):
        ipaddr, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, spf, signatures = key
        record = _add(feedback, "record")
        row = _add(record, "row")
        _add(row, "source_ip", ipaddr)
        _add(row, "count", count)
        evaluated = _add(row, "policy_evaluated")
        _add(evaluated, "disposition", disposition)
        _add(evaluated, "dkim", dkim_aligned)
        _add(evaluated, "spf", spf_aligned)
        identifiers = _add(record, "identifiers")
        if envelope_from:
            _add(identifiers, "envelope_from", envelope_from)
        _add(identifiers, "header_from", header_from)
        results = _add(record, "auth_results")
        for signing_domain, selector, result in signatures:
            dkim = _add(results, "dkim")
            _add(dkim, "domain", signing_domain)
            if selector:
                _add(dkim, "selector", selector)
            _add(dkim, "result", result)
        spf_result = _add(results, "spf")
        _add(spf_result, "domain", envelope_from or header_from)
        _add(spf_result, "scope", "mfrom")
        _add(spf_result, "result", spf)
    return ET.tostring(feedback, encoding="utf-8", xml_declaration=True)


def report_message(domain, xml, submitter, sender, to, report_id, begin, end):
    """The mail carrying one report (RFC 7489 section 7.2.1.1): the XML gzipped, as an attachment."""
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=submitter)
    message["Subject"] = "Report Domain: %s Submitter: %s Report-ID: <%s>" % (domain, submitter, report_id)
    message.set_content("DMARC aggregate report for %s from %s.\n" % (domain, submitter))
    name = "%s!%s!%d!%d.xml.gz" % (submitter, domain, begin, end)
    message.add_attachment(gzip.compress(xml, mtime=0), maintype="application", subtype="gzip", filename=name)
    return message
