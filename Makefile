# lnsync — the two commands a newcomer needs:
#   make run    the demo: LN and EWS simulators in-process, contact sync twice, summary
#   make test   everything CI checks: format, lints, the whole test suite
#
# Both install what they need first (xmllint for EWS schema validation; Debian/Ubuntu).

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test tools fmt-check clippy unit demo-config help

help:
	@echo "make run   - run the demo against the bundled LN and EWS simulators"
	@echo "make test  - format check, clippy, and the full test suite"

run:
	$(CARGO) run --quiet -p lnsync -- demo

test: tools fmt-check clippy
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

# xmllint validates every EWS request the client sends against Microsoft's schemas.
tools:
	@command -v xmllint >/dev/null 2>&1 || { \
	  echo "installing xmllint (libxml2-utils)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libxml2-utils >/dev/null; }

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
