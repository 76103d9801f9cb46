# Elasticsearch for development and the integration suite; included by the root Makefile.
#   make es-local / es-local-stop   local single-node Elasticsearch (scripts/es-local), no Docker
#   make up / down                  Elasticsearch + Kibana in Docker (docker-compose.yml)
#   make bench-es                   bulk and rule-query benchmark on the running Elasticsearch

# The venv interpreter (the root Makefile calls it PY; its PYTHON is the one that makes the venv).
ES_PYTHON := $(or $(PY),.venv/bin/python)

.PHONY: es-local es-local-stop up down bench-es

es-local:
	scripts/es-local start

es-local-stop:
	scripts/es-local stop

# A private .env: every change-me in .env.example becomes its own random secret.
.env:
	$(ES_PYTHON) -c "import pathlib, re, secrets; \
	text = pathlib.Path('.env.example').read_text(); \
	pathlib.Path('.env').write_text(re.sub(r'(?m)=change-me$$', lambda _: '=' + secrets.token_hex(24), text))"
	chmod 600 .env
	@echo "wrote .env with random passwords and keys"

up: .env
	docker compose up -d --wait

down:
	docker compose down

bench-es: $(STAMP)
	$(ES_PYTHON) -m dac.bench_es
