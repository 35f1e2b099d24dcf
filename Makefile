# The two commands of the README.
.PHONY: dev test fmt lint build sam-build cli dlq keys webhook

# The tools below talk to the `make dev` stack through the `ingestlayer` command line
# (`--local`): its emulator (MOTO_PORT, or AWS_ENDPOINT_URL); `webhook send` posts to the API
# URL the stack registered (make dev's PORT). Recipes are silent (@): their command lines
# would only repeat these settings.
LOCAL_STACK = AWS_ENDPOINT_URL=$${AWS_ENDPOINT_URL:-http://127.0.0.1:$${MOTO_PORT:-4566}} \
	AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}
# INGESTLAYER_CLI names a built `ingestlayer` instead: make test passes the one its build
# made, which `cargo run -p` would build again with other features.
INGESTLAYER_CLI ?= cargo run --quiet -p ingestlayer-cli --
CLI = $(INGESTLAYER_CLI)

dev: ## the whole system on this machine: ingest on http://127.0.0.1:$${PORT:-3000}
	@bash infra/dev.sh

test: ## every test, as .ci/run calls it
	@bash infra/test.sh

fmt:
	cargo fmt --all

lint:
	python3 infra/check-imports.py
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

build:
	cargo build --workspace

cli: ## install the `ingestlayer` command line into ~/.cargo/bin (cargo install --path infra/cli)
	cargo install --locked --path infra/cli

sam-build: ## the deploy artefacts, as `sam deploy` uploads them (ARCH=x86_64 for Intel)
	@bash infra/tools.sh all && bash infra/template-check.sh

dlq: ## the DLQs of the running `make dev` stack: make dlq ARGS=list|"redrive --channel '#x'"|"redrive --queue events"
	@$(LOCAL_STACK) $(CLI) --local dlq $(ARGS)

keys: ## API keys of the running `make dev` stack: make keys ARGS="create --source web-app"|list|"revoke --id il_…"
	@$(LOCAL_STACK) $(CLI) --local keys $(ARGS)

webhook: ## webhook sources of the running `make dev` stack: make webhook ARGS=list|"send --source demo --file infra/examples/webhooks/demo-user-signed-up.json"|"add --source x --provider stripe --secret whsec_…"
	@$(LOCAL_STACK) $(CLI) --local webhooks $(ARGS)
