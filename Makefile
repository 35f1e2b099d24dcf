# The two commands of the README.
.PHONY: dev test fmt lint build sam-build clean-tools

dev: ## the whole system on this machine: ingest on http://127.0.0.1:$${PORT:-3000}
	bash infra/dev.sh

test: ## every test, as .ci/run calls it
	bash infra/test.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

build:
	cargo build --workspace

sam-build: ## the deploy artefacts, as `sam deploy` uploads them
	bash infra/tools.sh && bash infra/template-check.sh
