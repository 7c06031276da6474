# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
# Each bootstraps what it needs (virtualenv, Python packages, Debian packages for tests).

VENV    ?= .venv
PYTHON  ?= python3
STAMP   := $(VENV)/.installed-stamp
APT_STAMP := $(VENV)/.apt-stamp

.PHONY: serve test lint bench demo clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Debian packages the test suite drives for real: ClamAV (second detection engine).
$(APT_STAMP): $(STAMP)
	@if ! command -v clamscan >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clamav >/dev/null) \
	      || echo "warning: could not install clamav; the ClamAV cross-check will be skipped"; \
	  fi; \
	fi
	touch $(APT_STAMP)

serve: $(STAMP)
	$(VENV)/bin/relreq serve

demo: $(STAMP)
	$(VENV)/bin/relreq demo

test: $(APT_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/python bench/artifacts_bench.py
	$(VENV)/bin/python bench/notify_latency.py
	$(VENV)/bin/python bench/updates_bench.py
	$(VENV)/bin/python bench/storm_bench.py

clean:
	rm -rf $(VENV) .data
