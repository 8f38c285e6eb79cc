# lnsync — the two commands a newcomer needs:
#   make run    the demo: LN and EWS simulators in-process, contacts and calendars synced, summary
#   make test   everything CI checks: format, lints, the whole test suite
#
# Both install what they need first (xmllint for EWS schema validation; Debian/Ubuntu).

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test tools fmt-check clippy unit demo-config help lambda cargo-lambda \
	iac-tools iac-check sam-build deploy

help:
	@echo "make run       - run the demo against the bundled LN and EWS simulators"
	@echo "make test      - format check, clippy, template checks, and the full test suite"
	@echo "make lambda    - release zips of the Lambda functions (cargo-lambda), with sizes"
	@echo "make iac-check - cfn-lint, checkov and sam validate on infra/template.yaml"
	@echo "make deploy    - sam build + sam deploy (--guided the first time), see docs/deploy.md"

run:
	$(CARGO) run --quiet -p lnsync -- demo

test: tools fmt-check clippy iac-check
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

# xmllint validates every EWS request the client sends against Microsoft's schemas.
# moto (in .venv/moto) is the local DynamoDB + SQS the AWS adapters' contract tests run against
# (tests/suite/src/moto.rs starts it; the version is pinned because the tests patch two of its
# gaps, see there).
MOTO_VENV := .venv/moto
MOTO_VERSION := 5.2.5

tools: cargo-lambda iac-tools
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
LAMBDA_FUNCTIONS := scheduler worker push
# Functions are built from their own directories (as `sam build` does): a relative
# CARGO_TARGET_DIR must still mean the same directory there.
ifneq ($(CARGO_TARGET_DIR),)
override CARGO_TARGET_DIR := $(abspath $(CARGO_TARGET_DIR))
export CARGO_TARGET_DIR
endif
# Release zips must stay small: cold starts load the whole package (10 MB, decimal).
LAMBDA_MAX_BYTES := 10000000

cargo-lambda:
	@test -x $(CARGO_LAMBDA_VENV)/bin/cargo-lambda || { \
	  echo "installing cargo-lambda $(CARGO_LAMBDA_VERSION) into $(CARGO_LAMBDA_VENV)"; \
	  python3 -m venv $(CARGO_LAMBDA_VENV) && \
	  $(CARGO_LAMBDA_VENV)/bin/pip install -q --no-cache-dir cargo-lambda==$(CARGO_LAMBDA_VERSION); }

# Release zips of every function, arm64 (Graviton) when the aarch64 target can be added,
# else x86_64 (set Architectures accordingly in infra/). Prints each zip's size.
# Each function is built in its own crate directory, as `sam build` does: cargo unifies features
# per build, so these are the very binaries `make deploy` ships, and `sam build` afterwards
# reuses them instead of compiling again.
lambda: cargo-lambda
	@arch=--arm64; \
	rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu || \
	  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || arch=--x86-64; \
	for f in $(LAMBDA_FUNCTIONS); do \
	  echo "cargo lambda build --release $$arch --bin $$f (functions/$$f)"; \
	  (cd functions/$$f && PATH="$(LAMBDA_PATH)" cargo lambda build --release $$arch \
	    --output-format zip --bin $$f) || \
	  { [ "$$arch" = --arm64 ] && echo "arm64 build failed; falling back to --x86-64" && \
	    arch=--x86-64 && (cd functions/$$f && PATH="$(LAMBDA_PATH)" cargo lambda build \
	    --release --x86-64 --output-format zip --bin $$f); } || exit 1; \
	done
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

# ---------------------------------------------------------------------------------------------
# Infrastructure as code (infra/template.yaml, AWS SAM)
# ---------------------------------------------------------------------------------------------

# One venv per tool: installed together, pip's resolver silently downgrades them (checkov pins
# an old boto3; measured in shared/notes/tooling.md). .venv/sam also provides aws-sam-translator
# to tests/suite/tests/iac.rs, which deploys the translated template into moto.
CFN_LINT_VENV := .venv/cfn-lint
CFN_LINT_VERSION := 1.58.0
CHECKOV_VENV := .venv/checkov
CHECKOV_VERSION := 3.3.30
SAM_VENV := .venv/sam
SAM_VERSION := 1.170.0
IAC_TEMPLATE := infra/template.yaml
CHECKOV_SKIPS := infra/checkov-skips.txt
SAM := SAM_CLI_TELEMETRY=0 $(CURDIR)/$(SAM_VENV)/bin/sam

# $(call venv-tool,VENV,PACKAGE,VERSION): PACKAGE==VERSION in its own VENV unless already there.
define venv-tool
@$(1)/bin/python -c 'import importlib.metadata as m, sys; sys.exit(m.version("$(2)") != "$(3)")' 2>/dev/null || { \
  echo "installing $(2) $(3) into $(1)"; \
  python3 -m venv $(1) && $(1)/bin/pip install -q --no-cache-dir '$(2)==$(3)'; }
endef

iac-tools:
	$(call venv-tool,$(CFN_LINT_VENV),cfn-lint,$(CFN_LINT_VERSION))
	$(call venv-tool,$(CHECKOV_VENV),checkov,$(CHECKOV_VERSION))
	$(call venv-tool,$(SAM_VENV),aws-sam-cli,$(SAM_VERSION))

# checkov skips only the checks listed, each with its reason, in $(CHECKOV_SKIPS). It exits 0
# when it cannot parse the template, so its report is checked for that too.
iac-check: iac-tools
	$(CFN_LINT_VENV)/bin/cfn-lint $(IAC_TEMPLATE)
	@bad=$$(grep -Ev '^[[:space:]]*(#|$$)' $(CHECKOV_SKIPS) | grep -Ev '^CKV[A-Z0-9_]+:[[:space:]]*[^[:space:]]'); \
	if [ -n "$$bad" ]; then echo "$(CHECKOV_SKIPS): every line must be 'CHECK_ID: reason':"; \
	  echo "$$bad"; exit 1; fi
	@skips=$$(sed -n 's/^\(CKV[A-Z0-9_]*\):.*/\1/p' $(CHECKOV_SKIPS) | paste -sd, -); \
	echo "checkov (skipped: $$skips; reasons in $(CHECKOV_SKIPS))"; \
	out=$$($(CHECKOV_VENV)/bin/checkov -f $(IAC_TEMPLATE) --framework cloudformation --compact \
	  --quiet --skip-download --skip-check "$$skips" 2>&1); rc=$$?; \
	echo "$$out"; \
	echo "$$out" | grep -q 'Passed checks: [1-9]' && ! echo "$$out" | grep -Eq 'Parsing errors: [1-9]|YAML error' || \
	  { echo "checkov did not scan $(IAC_TEMPLATE)"; exit 1; }; \
	exit $$rc
	AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --template $(IAC_TEMPLATE)
	$(SAM) validate --lint --template $(IAC_TEMPLATE)

# sam build runs `cargo lambda build --release --arm64 --bin <function>` per function (no
# Docker); cargo-lambda and zig must be on PATH.
sam-build: cargo-lambda iac-tools
	@rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu || \
	  rustup target add aarch64-unknown-linux-gnu
	cd infra && PATH="$(LAMBDA_PATH)" $(SAM) build

# The first deploy asks for the stack name, region and parameters and saves the answers in
# infra/samconfig.toml (git-ignored: it is this installation's); later deploys reuse it.
# Needs AWS credentials, as for the AWS CLI.
deploy: sam-build
	@cd infra && if [ -f samconfig.toml ]; then $(SAM) deploy; else $(SAM) deploy --guided; fi
