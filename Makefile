# Two commands do all the set-up: `make demo` and `make test`. Both create .venv on first
# use and reinstall only when pyproject.toml changes (the stamp file records the install).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make test` also installs what only the tests need (the dev extra: librosa, pytest, selenium) and
# the optional Beam extra, so CI runs the Beam pipeline's tests; `make demo` needs neither.
TEST_STAMP := $(VENV)/.installed-test
DEMO_OUT := reports/demo
# setuptools warns on every editable install that a folder named like the package could shadow it
# (a UserWarning from the build backend); that is how an editable install works, not news.
PIP_INSTALL := PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet

.PHONY: demo test clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "tfaudio needs Python >= 3.10; set PYTHON=python3.x")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PIP_INSTALL) -e '.[dev,beam]'
	touch $(TEST_STAMP)

# The comparison on ESC-10: TFAUDIO_DATA when set, else fetched into the cache, else (offline)
# a generated dataset, said so in the report. TFAUDIO_MODELS points at local weights.
demo: $(STAMP)
	$(BIN)/tfaudio demo --out $(DEMO_OUT)
	@echo ""
	@echo "Demo report: $(DEMO_OUT)/index.html (also report.md, metrics.json, predictions.csv)"

# The page checks drive Debian's chromium through chromium-driver; install them when missing
# (needs root or sudo; without them those tests skip and say why).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; } || \
	  echo "could not install chromium; the browser checks will be skipped"

# Two worker processes, each taking whole test files (module fixtures are built once).
test: $(TEST_STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) reports/demo .pytest_cache
