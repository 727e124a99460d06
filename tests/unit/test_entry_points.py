"""Every role entry point a play or role includes with tasks_from is declared in meta/argument_specs.yml."""

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
PREFIX = "zerotrust.mailstack."
INCLUDES = {"include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role"}
# What an entry point must declare as main does for the same variable.
SAME = ("type", "default", "required", "elements", "options", "choices")


def _walk(node):
    if isinstance(node, dict):
        yield node
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            yield from _walk(child)


def _roles(task, args):
    name = args.get("name") or args.get("role") or ""
    if not name.startswith(PREFIX):
        return []
    name = name.removeprefix(PREFIX)
    if "{{" not in name:
        return [name]
    loop = task.get("loop")
    if name.replace(" ", "") == "{{item}}" and isinstance(loop, list):
        return [item for item in loop if isinstance(item, str)]
    return []


def _uses():
    """(file, role, entry point) of every literal tasks_from of the collection."""
    uses = []
    for top in ("playbooks", "roles", "molecule"):
        for path in sorted((ROOT / top).rglob("*.y*ml")):
            for task in _walk(yaml.safe_load(path.read_text())):
                for key in INCLUDES & task.keys():
                    args = task[key] if isinstance(task[key], dict) else {}
                    entry_point = args.get("tasks_from")
                    if not isinstance(entry_point, str) or "{{" in entry_point:
                        continue
                    for role in _roles(task, args):
                        uses.append((str(path.relative_to(ROOT)), role, entry_point.removesuffix(".yml")))
    return uses


def _specs(role):
    return yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]


USES = _uses()
SPECS = {path.parent.parent.name: _specs(path.parent.parent.name) for path in ROLES.glob("*/meta/argument_specs.yml")}


def test_every_tasks_from_is_declared():
    undeclared = ["%s: %s/%s" % use for use in USES if use[2] not in SPECS.get(use[1], {})]
    assert undeclared == []


def test_the_scan_finds_known_entry_points():
    found = {(role, entry_point) for _, role, entry_point in USES}
    assert {("base", "lockout_guard"), ("pki", "device"), ("dns", "publish")} <= found
    assert "lockout_guard" in SPECS["base"]


def test_every_validate_task_file_is_declared():
    """site.yml's validation play includes each role's validate.yml by a computed name, which
    the scan above cannot follow."""
    with_validate = sorted(path.parent.parent.name for path in ROLES.glob("*/tasks/validate.yml"))
    assert len(with_validate) >= 14
    assert [role for role in with_validate if "validate" not in SPECS.get(role, {})] == []


@pytest.mark.parametrize("role", sorted(SPECS))
def test_declared_entry_points_have_task_files(role):
    # main may have no tasks (the mailstack role only holds shared defaults).
    missing = [name for name in SPECS[role] if not (ROLES / role / "tasks" / ("%s.yml" % name)).exists()]
    assert [name for name in missing if name != "main"] == []


@pytest.mark.parametrize("role", sorted(SPECS))
def test_entry_point_options_are_declared_as_main_declares_them(role):
    main = SPECS[role]["main"].get("options") or {}
    differ = [
        "%s: %s %s" % (entry_point, option, key)
        for entry_point, spec in SPECS[role].items()
        for option, declared in (spec.get("options") or {}).items()
        if option in main
        for key in SAME
        if declared.get(key) != main[option].get(key)
    ]
    assert differ == []


@pytest.mark.parametrize("role", sorted(path.parts[-3] for path in ROLES.glob("*/tasks/validate.yml")))
def test_validate_shares_the_options_of_main(role):
    assert SPECS[role]["validate"]["options"] is SPECS[role]["main"]["options"]
