# zerotrust.mailstack — developer and CI entry points.
#   make demo   build the segmented stack locally in Podman and converge it
#   make test   everything CI runs: lint, unit and sanity beside Molecule
#   make checks lint, unit, sanity (no stack)
#   make bench  measure converges, the MTA path against stock Postfix; writes docs/performance.md
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
BIN       := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
LINK      := build/collections/ansible_collections/zerotrust/mailstack
STAGE     := scripts/stage.sh

.PHONY: help bootstrap venv link lint unit sanity checks molecule test demo down docs build clean bench

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

bootstrap:  ## host packages (podman, runc, debootstrap, ...), podman config, virtualenv
	scripts/bootstrap-host.sh

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

link:
	@mkdir -p $(dir $(LINK))
	@ln -sfn $(CURDIR) $(LINK)

lint: venv link
	$(STAGE) yamllint yamllint --strict .
	$(STAGE) ruff bash -c 'ruff check . && ruff format --check .'
	$(STAGE) role-docs scripts/role_docs.py --check
	$(STAGE) ansible-lint ansible-lint --offline

unit: venv link
	$(STAGE) pytest pytest tests/unit

sanity: venv
	$(STAGE) collection scripts/check-collection.sh
	$(STAGE) ansible-test-sanity scripts/sanity.sh

molecule: venv link
	$(STAGE) molecule molecule test --scenario-name default

checks: lint unit sanity

# CI: the checks that need no stack run at the lowest CPU priority beside
# Molecule, whose tests leave a core mostly idle while they wait on mail; they
# take about 4 min when run first. Their log is shown when they end (at once if
# they fail) and again at the end; `make test` fails if either part failed.
test: venv link
	@mkdir -p build
	@( nice -n 19 $(MAKE) --no-print-directory checks > build/checks.log 2>&1; rc=$$?; \
	   echo "==> checks beside molecule ended (exit $$rc)"; [ $$rc -eq 0 ] || cat build/checks.log; exit $$rc ) & checks=$$!; \
	trap 'kill $$checks 2>/dev/null' INT TERM; \
	$(MAKE) --no-print-directory molecule; molecule_rc=$$?; \
	wait $$checks; checks_rc=$$?; \
	echo "==> checks (lint, unit, sanity), run beside molecule:"; cat build/checks.log; \
	echo "test: molecule exit $$molecule_rc, checks exit $$checks_rc"; \
	[ $$molecule_rc -eq 0 ] && [ $$checks_rc -eq 0 ]

docs: venv
	scripts/role_docs.py

build: venv
	ansible-galaxy collection build --force --output-path build/

demo: venv link
	scripts/demo.sh up

bench: venv link
	$(BIN)/python bench/run.py

down:
	scripts/demo.sh down

clean: down
	rm -rf build .state
