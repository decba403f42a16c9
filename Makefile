# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run demo test unit bench kafka-jars browser k8s-tools clean

$(VENV)/.installed: pyproject.toml examples/gateway-plugin-example/pyproject.toml tests/plugin_fixtures/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q -e examples/gateway-plugin-example -e tests/plugin_fixtures
	touch $@

# Start local Kafka (unless GATEWAY_BROKER_URL is reachable) and a worker, publish a demo, show the reply.
run: $(VENV)/.installed
	$(PY) -m devtools.run_local

# The same, but exit after the demo reply.
demo: $(VENV)/.installed
	$(PY) -m devtools.run_local --exit-after-demo

kafka-jars: $(VENV)/.installed
	$(PY) -m devtools.kafka_local fetch

# The whole suite: a static security check of the shipped packages, then unit tests and integration tests
# against a real local broker.
# The dashboard's test drives a real headless Chromium: the distribution's package, installed when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

# The Kubernetes overlay is rendered by kubectl's kustomize; where there is no kubectl, kustomize itself
# is built from the Go module proxy into .local/bin.
k8s-tools:
	@command -v kubectl >/dev/null || command -v kustomize >/dev/null || test -x .local/bin/kustomize || \
		GOBIN=$(CURDIR)/.local/bin go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0

test: $(VENV)/.installed kafka-jars browser k8s-tools
	$(PY) -m bandit -q -r gateway_app agents_tables
	$(PY) -m pytest -ra

unit: $(VENV)/.installed
	$(PY) -m pytest -ra tests/unit

# Side-by-side benchmark (gateway vs raw aiokafka passthrough); writes docs/benchmarks.md. Not a test.
bench: $(VENV)/.installed kafka-jars
	$(PY) -m devtools.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .local .cache
