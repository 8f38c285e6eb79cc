# lnsync — the two commands a newcomer needs:
#   make run    the demo: LN and EWS simulators in-process, contacts and calendars synced, summary
#   make test   everything CI checks: format, lints, the whole test suite
#
# Both install what they need first (xmllint for EWS schema validation; Debian/Ubuntu).

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test tools fmt-check clippy unit demo-config help lambda cargo-lambda

help:
	@echo "make run    - run the demo against the bundled LN and EWS simulators"
	@echo "make test   - format check, clippy, and the full test suite"
	@echo "make lambda - release zips of the Lambda functions (cargo-lambda), with sizes"

run:
	$(CARGO) run --quiet -p lnsync -- demo

test: tools fmt-check clippy
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

# xmllint validates every EWS request the client sends against Microsoft's schemas.
# moto (in .venv/moto) is the local DynamoDB + SQS the AWS adapters' contract tests run against
# (tests/suite/src/moto.rs starts it; the version is pinned because the tests patch two of its
# gaps, see there).
MOTO_VENV := .venv/moto
MOTO_VERSION := 5.2.5

tools: cargo-lambda
	@command -v xmllint >/dev/null 2>&1 || { \
	  echo "installing xmllint (libxml2-utils)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libxml2-utils >/dev/null; }
	@$(MOTO_VENV)/bin/python -c 'import moto, sys; sys.exit(moto.__version__ != "$(MOTO_VERSION)")' 2>/dev/null || { \
	  echo "installing moto[server] $(MOTO_VERSION) into $(MOTO_VENV)"; \
	  python3 -m venv $(MOTO_VENV) && \
	  $(MOTO_VENV)/bin/pip install -q --no-cache-dir 'moto[server]==$(MOTO_VERSION)'; }

# cargo-lambda (from PyPI, brings zig for the arm64 cross build) in its own venv. Its bin must be
# on PATH when it runs: it finds zig there. tests/suite/tests/lambda_e2e.rs uses the same venv.
CARGO_LAMBDA_VENV := .venv/cargo-lambda
CARGO_LAMBDA_VERSION := 1.9.2
LAMBDA_PATH := $(CURDIR)/$(CARGO_LAMBDA_VENV)/bin:$(PATH)
LAMBDA_FUNCTIONS := scheduler worker
# Release zips must stay small: cold starts load the whole package (10 MB, decimal).
LAMBDA_MAX_BYTES := 10000000

cargo-lambda:
	@test -x $(CARGO_LAMBDA_VENV)/bin/cargo-lambda || { \
	  echo "installing cargo-lambda $(CARGO_LAMBDA_VERSION) into $(CARGO_LAMBDA_VENV)"; \
	  python3 -m venv $(CARGO_LAMBDA_VENV) && \
	  $(CARGO_LAMBDA_VENV)/bin/pip install -q --no-cache-dir cargo-lambda==$(CARGO_LAMBDA_VERSION); }

# Release zips of every function, arm64 (Graviton) when the aarch64 target can be added,
# else x86_64 (set Architectures accordingly in infra/). Prints each zip's size.
lambda: cargo-lambda
	@arch=--arm64; \
	rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu || \
	  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || arch=--x86-64; \
	echo "cargo lambda build --release $$arch"; \
	PATH="$(LAMBDA_PATH)" cargo lambda build --release $$arch --output-format zip \
	  $(foreach f,$(LAMBDA_FUNCTIONS),--bin $(f)) || \
	{ [ "$$arch" = --arm64 ] && echo "arm64 build failed; falling back to --x86-64" && \
	  PATH="$(LAMBDA_PATH)" cargo lambda build --release --x86-64 --output-format zip \
	  $(foreach f,$(LAMBDA_FUNCTIONS),--bin $(f)); }
	@for f in $(LAMBDA_FUNCTIONS); do \
	  zip="$${CARGO_TARGET_DIR:-target}/lambda/$$f/bootstrap.zip"; \
	  test -f "$$zip" || { echo "missing $$zip"; exit 1; }; \
	  size=$$(stat -c %s "$$zip"); \
	  printf '%-10s %8d bytes  %s\n' "$$f" "$$size" "$$zip"; \
	  [ "$$size" -le $(LAMBDA_MAX_BYTES) ] || { echo "$$f: zip over $(LAMBDA_MAX_BYTES) bytes"; exit 1; }; done

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
