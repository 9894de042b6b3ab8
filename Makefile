# Two commands matter: `make run` and `make test`. Everything else is for developers.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN := gen
PROTOS := protos/wallet/v1/wallet.proto protos/fraud/v1/fraud.proto
GEN_STAMP := $(GEN)/.stamp
# buf (proto lint + breaking-change check), pinned by tools/buf/package-lock.json; its
# config is buf.yaml. The released contract the breaking check compares against is a
# committed image (protos/released/README.md: how to cut a release).
BUF_DIR := tools/buf
BUF := $(BUF_DIR)/node_modules/.bin/buf
BUF_STAMP := $(BUF_DIR)/node_modules/.installed
RELEASED_CONTRACT := protos/released/wallet-fraud-v1.binpb
# requirements.lock pins the whole tree (runtime + the dev extra) with hashes; `make lock`
# regenerates it from pyproject.toml, keeping existing pins (PIP_COMPILE_ARGS=--upgrade to
# move them).
PIP_TOOLS := pip-tools==7.6.2
LOCK_CMD := pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra dev \
	--no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

.PHONY: install proto run test test-fast lint fmt clean bench bench-tools chaos migrate lock certs \
	proto-check contract-release axe

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	@# Put the repository and the generated stubs on the venv's import path.
	$(PY) -c "import site, pathlib; root = pathlib.Path.cwd(); pathlib.Path(site.getsitepackages()[0], 'digital_wallet.pth').write_text(f'{root}\n{root / \"$(GEN)\"}\n')"
	@touch $(STAMP)

install: $(STAMP) $(GEN_STAMP)

lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(PIP_TOOLS)
	$(VENV)/bin/$(LOCK_CMD) $(PIP_COMPILE_ARGS)

$(GEN_STAMP): $(STAMP) $(PROTOS)
	rm -rf $(GEN) && mkdir -p $(GEN)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -I protos --python_out=$(GEN) --grpc_python_out=$(GEN) \
		--mypy_out=$(GEN) --mypy_grpc_out=$(GEN) $(PROTOS)
	@for d in wallet wallet/v1 fraud fraud/v1; do touch $(GEN)/$$d/__init__.py; done
	@touch $(GEN_STAMP)

proto: $(STAMP)
	@rm -f $(GEN_STAMP)
	@$(MAKE) --no-print-directory $(GEN_STAMP)

migrate: install
	$(PY) -m wallet_service.migrate

run: install
	$(PY) -m scripts.run_all

# A development CA and certificates for wallet, fraud and gateway under data/certs/ (TLS/mTLS
# between the processes; see README "TLS between the processes"). `make run` stays plaintext.
certs: install
	$(PY) -m scripts.make_certs data/certs

# axe-core for the browser tests' accessibility checks, from the committed package-lock.json
# (npm ci checks its integrity hash). Without npm it says so and the axe tests skip (CI=true:
# they fail). Re-run only when the lock file changes.
AXE_DIR := tools/axe
AXE_JS := $(AXE_DIR)/node_modules/axe-core/axe.min.js
$(AXE_JS): $(AXE_DIR)/package.json $(AXE_DIR)/package-lock.json
	cd $(AXE_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(AXE_JS)

axe:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(AXE_JS); \
	else echo "npm is not installed: the axe-core accessibility tests will skip"; fi

# pytest exits 5 when it collected no tests: a failure too (a broken path or marker
# expression must not pass as green).
test: install axe
	@$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS); status=$$?; \
		if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; fi; \
		exit $$status

test-fast: install
	$(PY) -m pytest -q -x -m "not slow and not postgres" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@$(MAKE) --no-print-directory proto-check

# The protos: buf lint (buf.yaml) and buf breaking against the last released contract.
# Without npm the check cannot run: a clear message, and a failure under CI=true.
proto-check:
	@if [ ! -f $(BUF_STAMP) ] && ! command -v npm >/dev/null 2>&1; then \
		echo "proto-check: npm is not installed, so buf ($(BUF_DIR)) is not either: the protos" \
			"were NOT linted nor checked for breaking changes (install Node.js 18+ with npm)." >&2; \
		if [ "$$CI" = "true" ]; then exit 1; fi; \
		exit 0; \
	fi; \
	$(MAKE) -s --no-print-directory $(BUF_STAMP) && \
	$(BUF) lint && \
	$(BUF) breaking --against $(RELEASED_CONTRACT) && \
	echo "proto-check: buf lint and buf breaking (against $(RELEASED_CONTRACT)) passed"

# --ignore-scripts: the package's bin finds its platform binary by itself.
$(BUF_STAMP): $(BUF_DIR)/package.json $(BUF_DIR)/package-lock.json
	cd $(BUF_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# Cut a release of the contract: the image `buf breaking` compares against from now on.
contract-release: $(BUF_STAMP)
	$(BUF) build --exclude-source-info -o $(RELEASED_CONTRACT)

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	@# wrk drives the gateway rows (a Python HTTP client would eat the cores it measures).
	@command -v wrk >/dev/null || \
		echo "wrk is not installed (make bench-tools): the gateway rows use the httpx load generator"
	$(PY) -m bench.run $(BENCH_ARGS)

# System tools for `make bench` (needs root: apt-get). Kept apart so bench never installs.
bench-tools:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

chaos: install
	$(PY) -m chaos.run $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) $(GEN) .mypy_cache .ruff_cache .pytest_cache .hypothesis $(BUF_DIR)/node_modules \
		$(AXE_DIR)/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
