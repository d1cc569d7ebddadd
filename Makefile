# The two commands of the README: `make demo` and `make test`; `make bench` prints every performance figure.
# `make test` runs the test files on two processes (the machine's cores), each file whole in one of them, so
# that a module's Prometheus and store are set up once.
# All install what is missing first.
SHELL := /bin/bash
VENV   ?= .venv
PYTHON ?= python3
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench setup prometheus rabbitmq clean

demo: setup
	$(VENV)/bin/kubecost-worker demo

test: setup rabbitmq
	$(VENV)/bin/python -m pytest -q --durations=15 -n 2 --dist loadfile

bench: setup rabbitmq
	$(VENV)/bin/python bench/run.py

setup: $(VENV)/.installed prometheus

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# Debian's prometheus package brings prometheus and promtool: the local stand-in for Thanos Query.
prometheus:
	@command -v promtool >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# The broker tests need a RabbitMQ on 127.0.0.1:5672; start the installed one if it is down.
rabbitmq:
	@if command -v rabbitmq-server >/dev/null 2>&1 && ! (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null; then \
	  rabbitmq-server -detached; \
	  for i in $$(seq 60); do (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done; \
	fi


clean:
	rm -rf $(VENV) .demo .kcw-data .pytest_cache
