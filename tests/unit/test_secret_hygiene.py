"""ZT-SEC-01..03: controller secrets stay out of git, the collection tarball and job output.

The state directory holds the CA key, the service passwords and every user's
password, TOTP secret and app passwords: it must never be committed or shipped,
and nothing the playbooks print may carry a secret.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
# Where a state directory sits by default: the example inventory's old place,
# `make demo` and Molecule (.state/<stack>).
STATE_FILES = ["inventories/mysite/state/pki/ca.key", ".state/local/credentials/demo.json"]


# --- git and the collection tarball -----------------------------------------------


@pytest.mark.parametrize("path", STATE_FILES)
def test_state_directories_are_ignored_by_git(path):
    result = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert result.returncode == 0, "%s is not ignored by .gitignore: `git add -A` would commit it" % path


def _copy_tree(dest):
    """The files git would track, plus a planted secret in every default state place."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for name in STATE_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text("secret\n")


def test_collection_tarball_ships_no_state_file(tmp_path):
    tree = tmp_path / "tree"
    _copy_tree(tree)
    out = tmp_path / "out"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    built = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(tree)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = out.glob("*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names  # it is the collection
    leaked = [n for n in names if re.search(r"(^|/)\.?state(/|$)", n)]
    assert not leaked, "state files in the collection tarball: %s" % leaked


def test_example_inventory_keeps_state_outside_the_tree(tmp_path):
    """The example's default state directory resolves under the operator's XDG state dir."""
    env = dict(os.environ, HOME=str(tmp_path), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), NO_COLOR="1")
    env.pop("XDG_STATE_HOME", None)
    env.pop("MAILSTACK_STATE_DIR", None)
    result = subprocess.run(
        [str(BIN / "ansible"), "ns1.corp.example", "-i", "inventories/example/hosts.yml"]
        + ["-m", "ansible.builtin.debug", "-a", "var=mailstack_state_dir"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    state = re.search(r"mailstack_state_dir\"?:\s*\"?(/[^\s\"]*)", result.stdout).group(1)
    assert not pathlib.Path(state).is_relative_to(ROOT), state
    assert pathlib.Path(state).is_relative_to(tmp_path / ".local" / "state"), state


# --- nothing prints a secret ---------------------------------------------------------

# Variables (and lookups) that carry a password, TOTP secret, app password or key.
# Names that only point at a file or say whether a secret is issued are not secrets.
_SECRET = re.compile(r"\b[\w.]*(password|passwd|secret|otpauth|credentials|totp)\w*\b", re.IGNORECASE)
_NOT_SECRET = re.compile(r"(_file|_dir|_re|_scopes|_length|getent_passwd)$|^(enroll_do_|new_|ansible_become)")
_PRINTING_KEYS = ("msg", "fail_msg", "success_msg", "var")
_META_KEYS = {"name", "when", "that", "tags", "notify", "changed_when", "failed_when", "loop_control", "no_log"}


def _expressions(value):
    """The Jinja expressions in a task value, string literals removed (they are not variables)."""
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in _expressions(v)]
    if isinstance(value, list):
        return [e for v in value for e in _expressions(v)]
    found = re.findall(r"\{\{(.*?)\}\}|\{%(.*?)%\}", str(value), re.S)
    return [re.sub(r"'[^']*'|\"[^\"]*\"", "''", a + b) for a, b in found]


def _secret_names(value):
    words = (m.group(0) for e in _expressions(value) for m in _SECRET.finditer(e))
    return sorted({w for w in words if not _NOT_SECRET.search(w)})


def _tasks(items):
    for task in items or []:
        if not isinstance(task, dict):
            continue
        for block in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            yield from _tasks(task.get(block))
        if not any(key in task for key in ("block", "tasks", "hosts")):
            yield task


def _task_files():
    files = sorted((ROOT / "playbooks").glob("*.yml"))
    files += sorted(ROOT.glob("roles/*/tasks/*.yml")) + sorted(ROOT.glob("roles/*/handlers/*.yml"))
    return files


def _findings():
    found = []
    for path in _task_files():
        for task in _tasks(yaml.safe_load(path.read_text())):
            where = "%s: %s" % (path.relative_to(ROOT), task.get("name"))
            module = next((k for k in task if k not in _META_KEYS and k not in ("vars", "loop", "register")), "")
            args = task.get(module)
            if isinstance(args, dict):
                for key in _PRINTING_KEYS:
                    text = "{{ %s }}" % args.get(key) if key == "var" else args.get(key)
                    if key in args and _secret_names(text):
                        found.append("%s prints %s in %s" % (where, _secret_names(text), key))
            label = (task.get("loop_control") or {}).get("label")
            if label and _secret_names(label):
                found.append("%s prints %s in its loop label" % (where, _secret_names(label)))
            handled = _secret_names({k: v for k, v in task.items() if k not in _META_KEYS and k != "name"})
            if module.endswith("debug") and handled:
                found.append("%s: a debug task that reads %s" % (where, handled))
            elif handled and task.get("no_log") is not True:
                found.append("%s handles %s without no_log: true" % (where, handled))
    return found


def test_no_task_prints_or_logs_a_secret():
    findings = _findings()
    assert not findings, "\n".join(findings)


def test_the_secret_check_catches_a_printed_totp_uri():
    task = {"name": "show", "ansible.builtin.debug": {"msg": "{{ enroll_credentials.otpauth_uri }}"}}
    assert _secret_names(task["ansible.builtin.debug"]["msg"])
    assert _secret_names("{{ enroll_old.password | default('') }}") == ["enroll_old.password"]
    assert not _secret_names("{{ enroll_credentials_file }} {{ enroll_do_totp }} {{ 'password' }}")


# --- scripts/demo.sh -----------------------------------------------------------------


def test_demo_credentials_file_is_private_from_its_creation(tmp_path):
    """The summary credentials.json is created 0600, not chmodded after it was written.

    The demo's Python step runs with chmod and fchmod disabled and a umask that would make a
    plain write world-readable; it stops (missing CA) before it logs in anywhere.
    """
    script = (ROOT / "scripts" / "demo.sh").read_text()
    code = re.search(r"<<'PY'\n(.*?)\nPY\n", script, re.S).group(1)
    state = tmp_path / "state"
    (state / "credentials").mkdir(parents=True)
    app = {"secret": "abcdefgh-" + "x" * 24, "scopes": ["imap"]}
    demo = {"login": "demo", "mail": "demo@corp.example", "password": "p", "totp_secret": "T", "otpauth_uri": "o"}
    (state / "credentials" / "demo.json").write_text(json.dumps(dict(demo, app_passwords={"abcdefgh": app})))
    runner = "import os, sys; os.umask(0o022); os.chmod = os.fchmod = lambda *a, **k: None; exec(sys.stdin.read())"
    names = ["imap1.corp.example", "mx1.corp.example"]  # the names it tells the user to connect to
    command = [sys.executable, "-c", runner, str(state), *names]
    subprocess.run(command, input=code, capture_output=True, text=True, timeout=60)
    written = state / "credentials.json"
    assert written.exists()
    assert oct(written.stat().st_mode & 0o777) == oct(0o600)
