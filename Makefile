# Two commands do all the set-up: `make demo` and `make test`. Both create .venv on first
# use and reinstall only when pyproject.toml changes (the stamp file records the install).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DATA := data/synth-demo
DEMO_OUT := reports/demo

.PHONY: demo test clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "tfaudio needs Python >= 3.10; set PYTHON=python3.x")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	test -f $(DEMO_DATA)/meta.csv || $(BIN)/tfaudio datasets synth $(DEMO_DATA)
	$(BIN)/tfaudio info $(DEMO_DATA)
	$(BIN)/tfaudio features $(DEMO_DATA) --out $(DEMO_OUT)/features.csv
	@echo ""
	@echo "Demo output: $(DEMO_OUT)/features.csv (one row per clip: file, label, fold, features)"

# The page checks drive Debian's chromium through chromium-driver; install them when missing
# (needs root or sudo; without them those tests skip and say why).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; } || \
	  echo "could not install chromium; the browser checks will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) data/synth-demo reports/demo .pytest_cache
