"""The stack the tests run (inventories/local) is named as a real site is, and Molecule runs its hosts."""

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOCAL = ROOT / "inventories" / "local"


def _groups(node, found=None):
    """{group: {host: inline vars}} of an inventory tree."""
    found = {} if found is None else found
    for name, group in (node.get("children") or {}).items():
        found[name] = dict(group.get("hosts") or {})
        _groups(group, found)
    return found


GROUPS = _groups(yaml.safe_load((LOCAL / "hosts.yml").read_text())["all"])
HOSTS = {host: values or {} for members in GROUPS.values() for host, values in members.items()}


def test_hosts_are_named_unlike_their_groups():
    """A role that took a host for its group, or a short name for an inventory name, fails in the stack."""
    assert HOSTS
    for host, values in HOSTS.items():
        assert host not in GROUPS, host
        assert "." in host and values.get("mailstack_hostname") not in (None, host), host


def test_molecule_platforms_are_the_inventory_hosts():
    molecule = yaml.safe_load((ROOT / "molecule" / "default" / "molecule.yml").read_text())
    assert sorted(platform["name"] for platform in molecule["platforms"]) == sorted(HOSTS)


def test_host_vars_files_name_inventory_hosts():
    for path in (LOCAL / "host_vars").glob("*.yml"):
        assert path.stem in HOSTS, path


def test_each_stack_keeps_its_own_ssh_connections():
    """Stacks share host names, and Ansible's ControlPath hashes the name: with one
    directory for all, a run reused another stack's open connection and converged it."""
    values = yaml.safe_load((LOCAL / "hosts.yml").read_text())["all"]["vars"]
    assert values["ansible_control_path_dir"].startswith("{{ mailstack_state_dir }}/")
    assert "{{ mailstack_state_dir }}/" in values["ansible_ssh_common_args"]
