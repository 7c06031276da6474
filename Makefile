# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
# Each bootstraps what it needs (virtualenv, Python packages, Debian packages for tests).

VENV    ?= .venv
PYTHON  ?= python3
STAMP   := $(VENV)/.installed-stamp
APT_STAMP := $(VENV)/.apt-stamp

.PHONY: serve test lint bench demo clean screenshots

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Debian packages the test suite drives for real: ClamAV (second detection engine), Chromium (the web
# console's browser tests; Playwright's own browser download is not reachable, Debian's chromium is),
# Dovecot (the IMAP server the e-mail intake tests read; the tests start their own, on loopback) and nginx
# (serving the static update tree in the update-distribution tests; also started by the tests, on loopback).
$(APT_STAMP): $(STAMP)
	@missing=""; \
	command -v clamscan >/dev/null 2>&1 || missing="$$missing clamav"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium fonts-dejavu-core"; \
	command -v dovecot >/dev/null 2>&1 || test -x /usr/sbin/dovecot || missing="$$missing dovecot-imapd"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx-light"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "warning: could not install$$missing (ClamAV cross-check skipped; browser and mail tests fail)"; \
	  else \
	    echo "warning: missing Debian packages:$$missing (run as root with apt-get, or install them)"; \
	  fi; \
	fi
	touch $(APT_STAMP)

serve: $(STAMP)
	$(VENV)/bin/relreq serve

demo: $(STAMP)
	$(VENV)/bin/relreq demo

# Two pytest processes (pytest-xdist), each with its own embedded Postgres, Prefect server and ports: most of the
# suite waits on servers and subprocesses, so two share even two cores well. `loadscope` keeps a module's tests
# (and its module-scoped servers) in one process; `--no-loadscope-reorder` keeps the files' order instead of
# running the biggest modules first (which leaves the minute-long single tests for the end).
# TEST_WORKERS=0 runs the suite in this process alone.
TEST_WORKERS ?= 2

test: $(APT_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# docs/screenshots/*.png: every page of the console on the way through the whole story (docs/web.md)
screenshots: $(APT_STAMP)
	RR_SCREENSHOTS=docs/screenshots $(VENV)/bin/pytest -q -p no:cacheprovider tests/web/test_whole_story.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/python bench/artifacts_bench.py
	$(VENV)/bin/python bench/notify_latency.py
	$(VENV)/bin/python bench/updates_bench.py
	$(VENV)/bin/python bench/storm_bench.py
	$(VENV)/bin/python bench/audit_bench.py

clean:
	rm -rf $(VENV) .data
