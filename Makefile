# `make run` serves the app on the committed weights; `make test` installs what the
# tests need (venv, Chromium, MNIST) and runs linters and tests. Both start from nothing.
VENV := .venv
PY := $(VENV)/bin/python
MNIST_RAW := data/MNIST/raw
SHARED_MNIST := ../shared/mnist

.PHONY: run test train data

run: $(VENV)/.run-installed
	$(PY) app.py

test: $(VENV)/.dev-installed data /usr/bin/chromium
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/vermin --target=3.10- --violations --no-tips --no-parse-comments -q *.py tests benchmarks harness
	$(PY) -m pytest -q

train: $(VENV)/.run-installed
	$(PY) train.py

$(VENV)/.run-installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.run-installed

# Debian's Chromium for the browser tests; Playwright drives it (never `playwright install`).
/usr/bin/chromium:
	apt-get update -qq && apt-get install -y -qq chromium

# MNIST from the offline copy beside the checkout when there is one, else downloaded.
data: $(MNIST_RAW)/train-labels-idx1-ubyte

$(MNIST_RAW)/train-labels-idx1-ubyte:
	mkdir -p $(MNIST_RAW)
	if [ -d $(SHARED_MNIST) ]; then \
	  for f in $(SHARED_MNIST)/*.gz; do \
	    out=$(MNIST_RAW)/$$(basename $$f .gz); gunzip -c $$f > $$out.tmp && mv $$out.tmp $$out; \
	  done; \
	else \
	  $(PY) -c 'import mnist; mnist.load_mnist(mnist.DATA_DIR, train=True)'; \
	fi
