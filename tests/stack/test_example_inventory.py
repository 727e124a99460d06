"""The production-shaped inventory (inventories/example) as shipped: it passes the
validation play and renders every role in check mode against the stack's containers.

Only what a site changes when it copies the example is changed here: where each host
is (address, SSH connection) and where the controller keeps its state (the stack's,
through XDG_STATE_HOME, the example's own default). Its host names (ns1, ldap1, mx1,
...) differ from its group names, so a role default that named another role's host
by its group would not resolve.
"""

import json

import yaml
from conftest import ROOT, STATE, container, run_playbook, sh

EXAMPLE = ROOT / "inventories" / "example" / "hosts.yml"
# Where the example's mx names each endpoint (the directory, LMTP on imap, the MTA-STS MX).
ENDPOINTS = {
    "/etc/postfix/ldap/recipients.cf": "ldaps://ldap1.corp.example",
    "/etc/postfix/main.cf": "lmtp:inet:imap1.corp.example:24",
    "/var/www/mta-sts/corp.example/.well-known/mta-sts.txt": "mx: mx1.corp.example",
}


def example_hosts():
    """{host: group} for each host of the example's stack groups."""
    stack = yaml.safe_load(EXAMPLE.read_text())["all"]["children"]["stack"]["children"]
    return {host: group for group, members in stack.items() for host in members["hosts"]}


def test_example_inventory_converges_in_check_mode(tmp_path, addresses):
    hosts = example_hosts()
    assert sorted(set(hosts.values())) == ["dns", "filter", "imap", "ldap", "log", "mx"]
    where = {
        host: {
            "ansible_host": container(group),
            "ansible_ssh_common_args": "-F %s" % (STATE / "ssh" / "config"),
            "mailstack_address": addresses[group],
        }
        for host, group in hosts.items()
    }
    (tmp_path / "where.yml").write_text(yaml.safe_dump({"all": {"hosts": where}}))
    (tmp_path / "state" / "zerotrust.mailstack").mkdir(parents=True)
    (tmp_path / "state" / "zerotrust.mailstack" / "example").symlink_to(STATE)

    result = run_playbook(
        "playbooks/site.yml",
        "--check",
        "--diff",
        inventories=[EXAMPLE, tmp_path / "where.yml"],
        environment={"XDG_STATE_HOME": str(tmp_path / "state"), "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"},
        timeout=1200,
    )
    report = json.loads(result.stdout[result.stdout.index("{") :])
    stats = report["stats"]
    assert sorted(stats) == sorted(hosts), result.stderr[-2000:]
    failed = {host: s for host, s in stats.items() if s["failures"] or s["unreachable"]}
    assert not failed, [
        (task["task"]["name"], host, outcome.get("msg"))
        for play in report["plays"]
        for task in play["tasks"]
        for host, outcome in task["hosts"].items()
        if outcome.get("failed") or outcome.get("unreachable")
    ]
    # Every role rendered: the MX ran its roles' tasks, not only the validation play.
    tasks = {task["task"]["name"] for play in report["plays"] for task in play["tasks"]}
    for marker in ("ZT-SMTP-01", "ZT-AUTH-01", "ZT-LDAP-03", "ZT-DKIM-01", "ZT-NET-01", "ZT-SSH-01"):
        assert any((" : %s " % marker) in name for name in tasks), marker
    # The endpoints are the example's own hosts, found through their groups. The stack's hosts
    # are named as the example's are, so a file the example renders as the stack did shows no
    # diff: what the example renders is the file's diff where it has one, else the file as it is.
    diffs = [
        diff
        for play in report["plays"]
        for task in play["tasks"]
        for host, outcome in task["hosts"].items()
        if host == "mx1.corp.example"
        for result in [outcome, *outcome.get("results", [])]
        for diff in (result.get("diff") if isinstance(result.get("diff"), list) else [result.get("diff") or {}])
    ]
    after = {diff.get("before_header"): str(diff.get("after", "")) for diff in diffs}
    for path, endpoint in ENDPOINTS.items():
        text = after[path] if path in after else sh("mx", "cat %s" % path, check=True).stdout
        assert endpoint in text, (path, endpoint)
    rendered = "\n".join(after.values())
    for stray in ("ldap.corp.example", "inet:imap.corp.example", "mx: mx.corp.example"):
        assert stray not in rendered, stray
