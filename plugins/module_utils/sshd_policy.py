# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SSH server policy: which of its algorithms a host offers, and whether sshd applies it."""

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def _settings(lines, separator):
    """`keyword<separator>value` lines to {keyword: [values...]}, in order (repeated keywords add up)."""
    settings = {}
    for line in lines:
        keyword, found, value = line.strip().partition(separator)
        if keyword and found:
            settings.setdefault(keyword.lower(), []).append(value.strip())
    return settings


def sshd_offered(query_lines, algorithms):
    """From `keyword=<names ssh -Q lists>` lines, the policy's algorithms this host offers.

    Returns {keyword: "a,b"} in the policy's order of preference. A keyword for which
    the host offers none of the policy's algorithms is an error: sshd would refuse
    to start, or fall back to its defaults.
    """
    offered = {keyword: " ".join(values).split() for keyword, values in _settings(query_lines, "=").items()}
    result = {}
    for keyword, wanted in algorithms.items():
        kept = [name for name in wanted if name in offered.get(keyword, [])]
        if not kept:
            raise InputError(keyword, "this OpenSSH offers none of %s" % ", ".join(wanted))
        result[keyword] = ",".join(kept)
    return result


def sshd_drift(effective_lines, policy):
    """Where `sshd -T` output differs from the policy: ["keyword: wants X, sshd applies Y", ...]."""
    effective = _settings(effective_lines, " ")
    drift = []
    for keyword, wanted in policy.items():
        applied = " ".join(effective.get(keyword.lower(), []))
        if applied.lower() != str(wanted).lower():
            drift.append("%s: wants %r, sshd applies %r" % (keyword, str(wanted), applied or None))
    return drift
