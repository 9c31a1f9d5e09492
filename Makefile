# ecom-lambda: the two commands are `make demo` and `make test`; the rest are the pieces they use.
.PHONY: demo test bootstrap up down status lint format compose-check clean-state

ECOM := .venv/bin/ecom

bootstrap:            ## venv + pinned deps, Maven jars, dbt manifest (idempotent)
	@bash stack/bootstrap.sh

demo: bootstrap       ## set up and run the platform end to end on local defaults
	@bash stack/demo.sh

test: bootstrap       ## set up, start the stack, run every test (unit + integration + end-to-end)
	@bash stack/test.sh

up: bootstrap
	@$(ECOM) up

down:
	@$(ECOM) down

status:
	@$(ECOM) status

lint:
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	@.venv/bin/ruff format . && .venv/bin/ruff check --fix .

compose-check:        ## validate docker-compose.yml without a Docker engine
	@docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml is valid"

clean-state: down     ## full reset: all local data (Postgres, Kafka, MLflow, Dagster, checkpoints, logs)
	rm -rf .local
