# The two commands of the README. Each builds its own pinned environment in .venv first.
PY      := .venv/bin/python
VENV_OK := .venv/.installed

.PHONY: reproduce test env sync-check clean-nbs export docs

env: $(VENV_OK)
$(VENV_OK): requirements.lock setup.py settings.ini
	python3 -m venv .venv
	.venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
	.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(VENV_OK)

## Reproduce the paper's results at the default, CPU-sized profile (into results/), then regenerate README.md from them.
reproduce: $(VENV_OK)
	.venv/bin/ikm reproduce --profile cpu
	$(PY) scripts/make_readme.py

## All tests: notebooks and library in sync, the notebooks as tests, pytest; fails if they changed the working tree.
test: $(VENV_OK) sync-check
	@scripts/tree_state.sh > .venv/tree-before
	.venv/bin/nbdev_test --n_workers 2 --timing
	.venv/bin/python -m pytest -q tests
	@scripts/tree_state.sh > .venv/tree-after; if ! diff -q .venv/tree-before .venv/tree-after >/dev/null; then \
	  echo "make test changed the working tree (tests must write to temporary folders only):"; \
	  diff .venv/tree-before .venv/tree-after; exit 1; fi; echo "working tree unchanged by the tests"

## Fails when nbdev_export would change ikm_nb/ (notebooks are the source).
sync-check: $(VENV_OK)
	@tmp=$$(mktemp -d) && cp -a ikm_nb $$tmp/ && .venv/bin/nbdev_export && \
	if ! diff -rq -x __pycache__ $$tmp/ikm_nb ikm_nb; then \
	  rm -rf ikm_nb && cp -a $$tmp/ikm_nb ikm_nb; \
	  echo "ikm_nb/ is out of sync with nbs/: run nbdev_export and commit"; exit 1; fi; \
	rm -rf $$tmp; echo "ikm_nb/ in sync with nbs/"

export: $(VENV_OK)
	.venv/bin/nbdev_export
clean-nbs: $(VENV_OK)
	.venv/bin/nbdev_clean

## The documentation site, into _docs/html: the method notebooks executed, the experiments from results/notebooks.
docs: $(VENV_OK)
	$(PY) scripts/build_docs.py --force

## README.md is generated from nbs/index.ipynb (nbdev_readme needs quarto; this needs nothing more).
readme: $(VENV_OK)
	.venv/bin/python scripts/make_readme.py
