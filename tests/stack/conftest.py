"""Helpers for the stack tests: they reach the containers as a client would.

Commands run as root on a host over SSH, as the controller's runs do (the ext host
is the outside peer); nothing here reads a daemon's internals to decide a result.
A test names a host by its inventory group (`sh("mx", ...)`).
"""

import contextlib
import fcntl
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
STACK = os.environ.get("MAILSTACK_STACK") or "molecule"
STATE = pathlib.Path(os.environ.get("MAILSTACK_STATE_DIR") or ROOT / ".state" / STACK)
INVENTORY = ROOT / "inventories" / "local" / "hosts.yml"
DOMAIN = "corp.example"
PEER_DOMAIN = "outside.example"

# The collection's own code (module_utils), importable by the tests as the roles use it.
_COLLECTIONS = ROOT / "build" / "collections"
_LINK = _COLLECTIONS / "ansible_collections" / "zerotrust" / "mailstack"
if not _LINK.is_symlink():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    # Two test streams start side by side (molecule/default/verify.yml): one of them links.
    with contextlib.suppress(FileExistsError):
        _LINK.symlink_to(ROOT)
sys.path.insert(0, str(_COLLECTIONS))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "beside_mail_flow: the file's tests touch no daemon, account, user or address the other"
        " stack tests use, so they run in a second stream beside them (molecule/default/verify.yml)",
    )


def _local_hosts():
    """{group: (inventory host, its inline vars)}: the stack has one host per group."""
    children = yaml.safe_load(INVENTORY.read_text())["all"]["children"]
    groups = {**children["stack"]["children"], "ext": children["ext"]}
    return {group: next(iter(members["hosts"].items())) for group, members in groups.items()}


# The tests name a host by its group ("mx"); the inventory names it as a real site
# does ("mx1.corp.example"), so a role that took one for the other would show here.
_HOSTS = _local_hosts()
STACK_HOSTS = [group for group in _HOSTS if group != "ext"]
ALL_HOSTS = STACK_HOSTS + ["ext"]


def inventory_host(host):
    """The inventory name of the group's host (mx -> mx1.corp.example)."""
    return _HOSTS[host][0]


def fqdn(host):
    """The name the stack publishes for the group's host: its mailstack_hostname in its domain."""
    name, values = _HOSTS[host]
    return "%s.%s" % ((values or {}).get("mailstack_hostname") or name, PEER_DOMAIN if host == "ext" else DOMAIN)


def container(host):
    """The group's host's container: zt-<stack>-<inventory host> (local_stack_container in the inventory)."""
    return "zt-%s-%s" % (STACK, inventory_host(host))


def recap_changed(stdout, host):
    """changed= of the group's host in a playbook's PLAY RECAP (the line must be there)."""
    name = inventory_host(host)
    match = re.search(r"^%s\s*:\s*ok=\d+\s+changed=(\d+)\s" % re.escape(name), stdout, re.M)
    assert match, "no recap line for %s: %s" % (name, stdout[-2000:])
    return int(match.group(1))


# How ssh's own message starts when it could not open the session at all, so the command
# never ran (a command's own failure may exit 255 too; a session lost midway is not retried).
_SSH_DOWN = re.compile(r"(ssh: connect to host |kex_exchange_identification|Connection (closed|reset) by )")


def sh(host, command, check=False, timeout=60):
    """Run a shell command as root on a stack host and return the CompletedProcess.

    It goes as the controller's runs do: SSH as the deploy account, then sudo, over one
    connection kept open per host (a tenth of the cost of a `podman exec`). Where a test
    has cut SSH on purpose, the command runs through Podman instead."""
    result = subprocess.run(
        [
            "ssh",
            "-F",
            str(STATE / "ssh" / "config"),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=300",
            "-o",
            "ControlPath=%s/sh-%%C" % (STATE / "ssh" / "cp"),
            container(host),
            "sudo -n sh -c %s" % shlex.quote("cd / && " + command),
        ],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
    )
    if result.returncode == 255 and _SSH_DOWN.match(result.stderr):
        result = subprocess.run(
            ["podman", "exec", container(host), "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if check and result.returncode != 0:
        raise AssertionError("%s: %s failed (%d): %s" % (host, command, result.returncode, result.stderr))
    return result


@contextlib.contextmanager
def ext_source_address(last_octet):
    """A second address of the outside peer's, on its network (x.y.z.<last_octet>), for the
    test's duration: a client no record, list or table of the stack knows."""
    own = sh("ext", "ip -4 -o addr show dev eth0 | awk '{print $4}'", check=True).stdout.split()[0]
    network, prefix = own.split("/")
    source = ".".join(network.split(".")[:3] + [str(last_octet)])
    sh("ext", "ip addr add %s/%s dev eth0" % (source, prefix), check=True)
    try:
        yield source
    finally:
        sh("ext", "ip addr del %s/%s dev eth0" % (source, prefix))


def signing_selector(domain=DOMAIN):
    """The selector the mx signs the domain's mail with: its DKIM rotation state's, else mail."""
    try:
        state = sh("mx", "cat /var/lib/mailstack-dkim/rotation.json")
    except (OSError, subprocess.SubprocessError):  # no stack (collection only)
        return "mail"
    if state.returncode != 0:
        return "mail"
    entry = json.loads(state.stdout)["domains"].get(domain)
    return entry["active"] if entry else "mail"


def wait_for(predicate, seconds=60):
    """True as soon as predicate() is, polling once a second; False after `seconds`."""
    for _ in range(seconds):
        if predicate():
            return True
        time.sleep(1)
    return False


def copy_to(host, source, dest):
    subprocess.run(["podman", "cp", str(source), "%s:%s" % (container(host), dest)], check=True)


@pytest.fixture(scope="session")
def addresses():
    """Container addresses on the stack network, as Podman assigned them."""
    found = {}
    for host in ALL_HOSTS:
        out = subprocess.run(["podman", "inspect", container(host)], capture_output=True, text=True, check=True)
        networks = json.loads(out.stdout)[0]["NetworkSettings"]["Networks"]
        found[host] = next(iter(networks.values()))["IPAddress"]
    return found


def ssh_login(host, user="deploy", *options, command="sudo -n true"):
    """A new SSH login over the network (no shared connection), as `user` with the deploy key."""
    return subprocess.run(
        [
            "ssh",
            "-F",
            str(STATE / "ssh" / "config"),
            "-o",
            "ControlPath=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-l",
            user,
            *options,
            container(host),
            command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


# The stack tests run in two streams (molecule/default/verify.yml). A playbook may read any
# host's facts, so none runs while a test has cut the controller's SSH to a host on purpose:
# that test holds this lock alone, each playbook run holds it shared.
_CUT_OFF_LOCK = STATE / "tests-cut-off.lock"
_cutting_off = False
# The lockout guards' rollback delay in their tests: room for the guard to reconnect while
# the other stream loads the CPUs, and a short one where the controller is cut off on
# purpose, which keeps the other stream's wait short.
ROLLBACK_SECONDS = 40
CUT_OFF_ROLLBACK_SECONDS = 20


@contextlib.contextmanager
def _playbooks_lock(mode):
    with open(_CUT_OFF_LOCK, "a") as lock:
        fcntl.flock(lock, mode)
        yield


@contextlib.contextmanager
def controller_cut_off():
    """For the duration, this test alone runs playbooks (the other stream's wait)."""
    global _cutting_off
    with _playbooks_lock(fcntl.LOCK_EX):
        _cutting_off = True
        try:
            yield
        finally:
            _cutting_off = False


def run_playbook(*args, timeout=900, inventories=None, environment=None):
    """Run playbooks/site.yml (or another playbook) against this stack from the controller.

    `inventories` replaces the stack's own (inventories/local); `environment` adds variables."""
    # A clean Ansible environment: Molecule's settings (colour, callbacks) would change the output.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(
        MAILSTACK_STACK=STACK,
        MAILSTACK_STATE_DIR=str(STATE),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections"),
        ANSIBLE_FORCE_COLOR="false",
        NO_COLOR="1",
    )
    env.update(environment or {})
    sources = inventories or [ROOT / "inventories" / "local" / "hosts.yml"]
    with contextlib.nullcontext() if _cutting_off else _playbooks_lock(fcntl.LOCK_SH):
        return subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                *[arg for source in sources for arg in ("-i", str(source))],
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=timeout,
        )
